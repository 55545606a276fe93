//! A small disk to fill: a tmpfs mounted on a temporary directory (root only), and a filler
//! that takes all of its space. For the full-disk tests.

use std::io::Write;
use std::path::Path;
use std::process::Command;

/// A tmpfs mounted on a temporary directory, unmounted when dropped.
#[derive(Debug)]
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (as `mount -o size=`, e.g. `64m`); `None` where that is not
    /// allowed (not root, no `mount`).
    pub fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Tmpfs { dir })
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Fills the file system of `path` with a file at `path` (1 MiB chunks, then 4 KiB ones);
/// returns the bytes written. Remove the file to give the space back.
pub fn fill_disk(path: &Path) -> u64 {
    let Ok(mut f) = std::fs::File::create(path) else {
        return 0;
    };
    let mut written = 0u64;
    for chunk in [vec![0u8; 1 << 20], vec![0u8; 4096]] {
        while f.write_all(&chunk).is_ok() {
            written = written.saturating_add(chunk.len() as u64);
        }
    }
    let _ = f.sync_all();
    written
}
