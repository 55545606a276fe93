//! Block bodies in append-only files beside the sled trees, as Bitcoin Core keeps its
//! `blk*.dat` files: `bodies/00000.dat`, `00001.dat`, ..., each up to [`MAX_FILE_BYTES`]. The
//! `blocks` tree holds a [`BodyLocation`] per block (file, offset, length, CRC-32), written in
//! the same sled transaction as the block's index record. It owns the files and the location
//! layout; it must never decide what is stored or read sled.
//!
//! Why: a 5,000-transfer body is 740 KB. As a sled value it lived in a leaf with up to 15
//! others, and sled rewrote that whole leaf (megabytes) as a blob file whenever it consolidated
//! it: about 45% of a receiver's import (docs/BENCHMARKS.md, section 16). Here a body is
//! written once.
//!
//! Durability and order: a body is written (to the page cache) before its location is
//! inserted, so a killed process never leaves a location without its body. Every flush the
//! store makes itself ([`super::Store::flush`], the per-block flush, the disk probe, the saved
//! mempool's snapshot, a dropped or reopened database) syncs the block files before sled, so a
//! flushed location's body is on the disk. sled's own flusher
//! (every 500 ms) may make a location durable before the body it names; only a power loss in
//! that window can leave one whose body is gone or torn, and the CRC turns it into
//! [`StoreError::DamagedBody`] on read, never into a wrong block.
//!
//! A write that fails (a full disk) leaves the file's end where it was: the next body is
//! written over what the failed one left. Bytes no location names (a failed write, a body
//! stored again after a reopen) are dead space, never read.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::error::{DecodeError, StoreError};
use crate::types::{Hash, Reader};

/// A block file is closed for writing once the next body would take it past this size
/// (Bitcoin Core's `MAX_BLOCKFILE_SIZE` is 128 MiB too).
pub(super) const MAX_FILE_BYTES: u64 = 128 * 1024 * 1024;

/// The name of the directory of block files inside the store's directory.
pub(super) const DIR_NAME: &str = "bodies";

/// Where a block's body is: the `blocks` tree's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct BodyLocation {
    /// The file's number (`{file:05}.dat`).
    pub(super) file: u32,
    /// The body's first byte in the file.
    pub(super) offset: u64,
    /// The body's length in bytes.
    pub(super) len: u32,
    /// CRC-32 (IEEE) of the body.
    pub(super) crc: u32,
}

impl BodyLocation {
    /// The encoded length. No encoded block is this short (a header alone is longer), which
    /// tells a location from a body stored inline by a format-2 store.
    pub(super) const LEN: usize = 4 + 8 + 4 + 4;

    /// `file ‖ offset ‖ len ‖ crc`, little-endian.
    pub(super) fn encode(&self) -> [u8; Self::LEN] {
        let mut out = [0u8; Self::LEN];
        let (file, rest) = out.split_at_mut(4);
        let (offset, rest) = rest.split_at_mut(8);
        let (len, crc) = rest.split_at_mut(4);
        file.copy_from_slice(&self.file.to_le_bytes());
        offset.copy_from_slice(&self.offset.to_le_bytes());
        len.copy_from_slice(&self.len.to_le_bytes());
        crc.copy_from_slice(&self.crc.to_le_bytes());
        out
    }

    /// Decodes [`BodyLocation::encode`]'s output.
    pub(super) fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() != Self::LEN {
            return Err(DecodeError::Length {
                what: "block body location",
                expected: Self::LEN,
                got: bytes.len(),
            });
        }
        let mut r = Reader::new(bytes);
        Ok(BodyLocation {
            file: r.u32()?,
            offset: r.u64()?,
            len: r.u32()?,
            crc: r.u32()?,
        })
    }
}

/// The block files of one store: appended to by the store's one writer, read by any handle.
#[derive(Debug)]
pub(super) struct BodyFiles {
    dir: PathBuf,
    /// The open files, by number. Readers clone the handle they need.
    files: RwLock<Vec<Arc<File>>>,
    /// The file written to and its length: the next body's offset.
    end: Mutex<FileEnd>,
    /// Whether the file written to holds bytes not synced yet.
    unsynced: AtomicBool,
    /// Held across a sync: a second caller waits for the first's fsync instead of taking the
    /// cleared flag for a finished one.
    syncing: Mutex<()>,
    /// A sync failed. Linux reports a failed writeback once and marks the pages clean, so a
    /// retry would succeed without the bytes being on the disk: every later sync fails too,
    /// until the store is reopened (new `BodyFiles`), as the same kind of error (a full disk
    /// stays a full disk, which the node's disk guard recovers from by reopening).
    sync_failed: Mutex<Option<SyncFailure>>,
    /// A temporary store's files are removed with it.
    remove_on_drop: bool,
}

/// What kind of failure a sync of the block files met.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SyncFailure {
    DiskFull,
    Other,
}

#[derive(Clone, Copy, Debug)]
struct FileEnd {
    file: u32,
    len: u64,
}

impl BodyFiles {
    /// Opens the block files in `dir` (created if missing); bodies are appended to the last.
    /// The files must be numbered from 0 without a gap.
    pub(super) fn open(dir: &Path) -> Result<Self, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, &e))?;
        let count = file_count(dir)?;
        let mut files = Vec::with_capacity(count.max(1));
        for number in 0..count {
            files.push(Arc::new(open_file(
                &file_path(dir, index_u32(number)),
                false,
            )?));
        }
        if files.is_empty() {
            files.push(Arc::new(open_file(&file_path(dir, 0), false)?));
        }
        let file = index_u32(files.len().saturating_sub(1));
        let len = match files.last() {
            Some(last) => last
                .metadata()
                .map_err(|e| io_error(&file_path(dir, file), &e))?
                .len(),
            None => 0,
        };
        Ok(BodyFiles {
            dir: dir.to_path_buf(),
            files: RwLock::new(files),
            end: Mutex::new(FileEnd { file, len }),
            // What an earlier run wrote may not be synced: the first sync syncs it.
            unsynced: AtomicBool::new(true),
            syncing: Mutex::new(()),
            sync_failed: Mutex::new(None),
            remove_on_drop: false,
        })
    }

    /// Block files in a new directory in memory (`/dev/shm`, where sled keeps a temporary
    /// database) or else under the system's temporary directory, removed when dropped (a
    /// temporary store's).
    pub(super) fn temporary() -> Result<Self, StoreError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!(
            "peerchain-bodies-{}-{n}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        ));
        let mut files = Self::open(&dir)?;
        files.remove_on_drop = true;
        Ok(files)
    }

    /// Writes `body` at the end of the last file (a new file when it would pass
    /// [`MAX_FILE_BYTES`]) and says where. Not synced: see the module docs.
    pub(super) fn append(&self, body: &[u8]) -> Result<BodyLocation, StoreError> {
        let len = u32::try_from(body.len())
            .ok()
            .filter(|len| u64::from(*len) <= MAX_FILE_BYTES)
            .ok_or(StoreError::BodyTooLarge { len: body.len() })?;
        let mut end = self.end.lock().unwrap_or_else(|p| p.into_inner());
        let body_len = u64::from(len);
        if end.len > 0 && end.len.saturating_add(body_len) > MAX_FILE_BYTES {
            self.start_next_file(&mut end)?;
        }
        let file = self.file(end.file)?;
        file.write_all_at(body, end.len)
            .map_err(|e| io_error(&file_path(&self.dir, end.file), &e))?;
        self.unsynced.store(true, Ordering::Release);
        let location = BodyLocation {
            file: end.file,
            offset: end.len,
            len,
            crc: crc32fast::hash(body),
        };
        end.len = end.len.saturating_add(body_len);
        Ok(location)
    }

    /// Syncs the file written to and opens the next.
    fn start_next_file(&self, end: &mut FileEnd) -> Result<(), StoreError> {
        let path = file_path(&self.dir, end.file);
        self.file(end.file)?
            .sync_data()
            .map_err(|e| io_error(&path, &e))?;
        let next = end.file.saturating_add(1);
        // A new file: never one that exists (and may hold bodies sled names).
        let file = Arc::new(open_file(&file_path(&self.dir, next), true)?);
        self.files
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(file);
        *end = FileEnd { file: next, len: 0 };
        Ok(())
    }

    /// The body of block `hash` at `at`, its CRC checked.
    pub(super) fn read(&self, hash: &Hash, at: &BodyLocation) -> Result<Vec<u8>, StoreError> {
        let damaged = |reason: &'static str| StoreError::DamagedBody {
            hash: *hash,
            file: at.file,
            offset: at.offset,
            reason,
        };
        let file = self
            .file(at.file)
            .map_err(|_| damaged("no such block file"))?;
        if u64::from(at.len) > MAX_FILE_BYTES {
            return Err(damaged("longer than a block file"));
        }
        let len = usize::try_from(at.len).map_err(|_| damaged("longer than memory"))?;
        let mut body = vec![0u8; len];
        match file.read_exact_at(&mut body, at.offset) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                return Err(damaged("the file ends before the body"));
            }
            Err(e) => return Err(io_error(&file_path(&self.dir, at.file), &e)),
        }
        if crc32fast::hash(&body) != at.crc {
            return Err(damaged("its checksum does not match"));
        }
        Ok(body)
    }

    /// Makes every body appended so far durable. Safe beside [`BodyFiles::append`] on another
    /// thread (a body appended after the flag is taken marks the file again) and beside
    /// another sync (which it waits for).
    pub(super) fn sync(&self) -> Result<(), StoreError> {
        let _one_at_a_time = self.syncing.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(earlier) = *self.sync_failed.lock().unwrap_or_else(|p| p.into_inner()) {
            let text = format!(
                "an earlier sync of the block files in {} failed: the store must be reopened",
                self.dir.display()
            );
            return Err(match earlier {
                SyncFailure::DiskFull => StoreError::DiskFull(text),
                SyncFailure::Other => StoreError::Db(text),
            });
        }
        if !self.unsynced.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let current = self.end.lock().unwrap_or_else(|p| p.into_inner()).file;
        let result = self.file(current).and_then(|file| {
            file.sync_data()
                .map_err(|e| io_error(&file_path(&self.dir, current), &e))
        });
        if let Err(e) = &result {
            self.unsynced.store(true, Ordering::Release);
            *self.sync_failed.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(if e.is_disk_full() {
                    SyncFailure::DiskFull
                } else {
                    SyncFailure::Other
                });
        }
        result
    }

    /// The bytes in the block files (dead space included).
    pub(super) fn size_on_disk(&self) -> Result<u64, StoreError> {
        let files = self.files.read().unwrap_or_else(|p| p.into_inner());
        let mut total = 0u64;
        for (number, file) in files.iter().enumerate() {
            let len = file
                .metadata()
                .map_err(|e| io_error(&file_path(&self.dir, index_u32(number)), &e))?
                .len();
            total = total.saturating_add(len);
        }
        Ok(total)
    }

    fn file(&self, number: u32) -> Result<Arc<File>, StoreError> {
        let files = self.files.read().unwrap_or_else(|p| p.into_inner());
        usize::try_from(number)
            .ok()
            .and_then(|i| files.get(i))
            .map(Arc::clone)
            .ok_or_else(|| StoreError::Db(format!("block file {number} is not open")))
    }
}

impl Drop for BodyFiles {
    fn drop(&mut self) {
        if self.remove_on_drop {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

fn file_path(dir: &Path, number: u32) -> PathBuf {
    dir.join(format!("{number:05}.dat"))
}

fn index_u32(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

/// How many block files `dir` holds, numbered from 0; a gap (a later file without an earlier
/// one) is an error, so that no file is ever created over one that exists.
fn file_count(dir: &Path) -> Result<usize, StoreError> {
    let mut numbers = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| io_error(dir, &e))? {
        let entry = entry.map_err(|e| io_error(dir, &e))?;
        let name = entry.file_name();
        let number = name
            .to_str()
            .and_then(|n| n.strip_suffix(".dat"))
            .and_then(|n| n.parse::<u32>().ok())
            // Only the names this module writes (`00001.dat`, not `1.dat`).
            .filter(|n| file_path(dir, *n).file_name() == Some(name.as_os_str()));
        if let Some(number) = number {
            numbers.push(number);
        }
    }
    numbers.sort_unstable();
    for (expected, number) in numbers.iter().enumerate() {
        if usize::try_from(*number).ok() != Some(expected) {
            return Err(StoreError::Db(format!(
                "block files in {}: {} exists but {} does not",
                dir.display(),
                file_path(dir, *number).display(),
                file_path(dir, index_u32(expected)).display()
            )));
        }
    }
    Ok(numbers.len())
}

/// Opens a block file for reading and writing; `new` refuses one that exists.
fn open_file(path: &Path, new: bool) -> Result<File, StoreError> {
    let mut options = OpenOptions::new();
    options.read(true).write(true);
    if new {
        options.create_new(true);
    } else {
        options.create(true).truncate(false);
    }
    options.open(path).map_err(|e| io_error(path, &e))
}

/// A block file's I/O failure: [`StoreError::DiskFull`] for a full disk or quota, as sled's.
fn io_error(path: &Path, e: &std::io::Error) -> StoreError {
    let text = format!("{}: {e}", path.display());
    match e.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => {
            StoreError::DiskFull(text)
        }
        _ => StoreError::Db(text),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
mod tests {
    use super::*;

    fn hash() -> Hash {
        Hash([7u8; 32])
    }

    #[test]
    fn a_location_round_trips_and_a_short_one_is_refused() {
        let at = BodyLocation {
            file: 3,
            offset: 1 << 40,
            len: 740_000,
            crc: 0xdead_beef,
        };
        assert_eq!(BodyLocation::decode(&at.encode()).unwrap(), at);
        assert!(matches!(
            BodyLocation::decode(&at.encode()[..19]),
            Err(DecodeError::Length { got: 19, .. })
        ));
    }

    #[test]
    fn bodies_read_back_after_a_reopen_and_new_ones_follow_them() {
        let dir = tempfile::tempdir().unwrap();
        let files = BodyFiles::open(dir.path()).unwrap();
        let a = files.append(b"first body").unwrap();
        let b = files.append(b"second").unwrap();
        assert_eq!((a.offset, b.offset), (0, 10));
        files.sync().unwrap();
        drop(files);
        let files = BodyFiles::open(dir.path()).unwrap();
        assert_eq!(files.read(&hash(), &a).unwrap(), b"first body");
        assert_eq!(files.read(&hash(), &b).unwrap(), b"second");
        let c = files.append(b"third").unwrap();
        assert_eq!((c.file, c.offset), (0, 16));
    }

    #[test]
    fn a_torn_or_missing_body_is_damaged_not_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let files = BodyFiles::open(dir.path()).unwrap();
        let at = files.append(b"a body that will be torn").unwrap();
        let path = file_path(dir.path(), 0);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .write_all_at(b"X", 3)
            .unwrap();
        let reason = |r: Result<Vec<u8>, StoreError>| match r {
            Err(StoreError::DamagedBody { reason, .. }) => reason,
            other => panic!("not damaged: {other:?}"),
        };
        assert_eq!(
            reason(files.read(&hash(), &at)),
            "its checksum does not match"
        );
        let past_the_end = BodyLocation { offset: 20, ..at };
        assert_eq!(
            reason(files.read(&hash(), &past_the_end)),
            "the file ends before the body"
        );
        let other_file = BodyLocation { file: 9, ..at };
        assert_eq!(
            reason(files.read(&hash(), &other_file)),
            "no such block file"
        );
    }

    #[test]
    fn a_body_that_would_pass_the_file_bound_starts_the_next_file() {
        let dir = tempfile::tempdir().unwrap();
        let files = BodyFiles::open(dir.path()).unwrap();
        files.end.lock().unwrap().len = MAX_FILE_BYTES - 4;
        let at = files.append(b"five!").unwrap();
        assert_eq!((at.file, at.offset), (1, 0));
        assert_eq!(files.read(&hash(), &at).unwrap(), b"five!");
        drop(files);
        let files = BodyFiles::open(dir.path()).unwrap();
        let next = files.append(b"more").unwrap();
        assert_eq!((next.file, next.offset), (1, 5));
    }

    #[test]
    fn a_gap_in_the_numbers_is_refused_and_a_new_file_never_overwrites_one() {
        let dir = tempfile::tempdir().unwrap();
        drop(BodyFiles::open(dir.path()).unwrap());
        std::fs::write(file_path(dir.path(), 2), b"bodies sled names").unwrap();
        match BodyFiles::open(dir.path()) {
            Err(StoreError::Db(text)) => assert!(text.contains("00001.dat does not"), "{text}"),
            other => panic!("a gap must be refused: {other:?}"),
        }
        std::fs::remove_file(file_path(dir.path(), 2)).unwrap();
        let files = BodyFiles::open(dir.path()).unwrap();
        std::fs::write(file_path(dir.path(), 1), b"written behind its back").unwrap();
        files.end.lock().unwrap().len = MAX_FILE_BYTES;
        assert!(matches!(files.append(b"body"), Err(StoreError::Db(_))));
        assert_eq!(
            std::fs::read(file_path(dir.path(), 1)).unwrap(),
            b"written behind its back"
        );
    }

    #[test]
    fn the_first_sync_after_an_open_syncs_and_a_body_over_the_bound_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let files = BodyFiles::open(dir.path()).unwrap();
        assert!(
            files.unsynced.load(Ordering::Acquire),
            "an earlier run's bytes"
        );
        files.sync().unwrap();
        assert!(!files.unsynced.load(Ordering::Acquire));
        let at = files.append(b"x").unwrap();
        assert!(files.unsynced.load(Ordering::Acquire));
        let huge = BodyLocation {
            len: u32::MAX,
            ..at
        };
        assert!(matches!(
            files.read(&hash(), &huge),
            Err(StoreError::DamagedBody {
                reason: "longer than a block file",
                ..
            })
        ));
    }

    #[test]
    fn a_second_sync_waits_for_the_first_and_a_body_over_the_bound_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let files = Arc::new(BodyFiles::open(dir.path()).unwrap());
        files.append(b"body").unwrap();
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let first = files.syncing.lock().unwrap(); // a sync in progress
        let second = {
            let files = Arc::clone(&files);
            std::thread::spawn(move || {
                let result = files.sync();
                done_tx.send(()).unwrap();
                result
            })
        };
        assert!(
            done_rx
                .recv_timeout(std::time::Duration::from_millis(200))
                .is_err(),
            "the second sync returned while the first was in progress"
        );
        drop(first);
        second.join().unwrap().unwrap();
        assert!(
            !files.unsynced.load(Ordering::Acquire),
            "it synced the body"
        );
        let too_large = vec![0u8; usize::try_from(MAX_FILE_BYTES).unwrap() + 1];
        assert!(matches!(
            files.append(&too_large),
            Err(StoreError::BodyTooLarge { .. })
        ));
        assert_eq!(files.end.lock().unwrap().len, 4, "nothing written");
    }

    /// A failed sync stays failed, as the kind of failure it was: a full disk must stay a full
    /// disk for the node's guard, which reopens the store once space returns.
    #[test]
    fn after_a_failed_sync_every_sync_fails_the_same_way() {
        let dir = tempfile::tempdir().unwrap();
        let files = BodyFiles::open(dir.path()).unwrap();
        *files.sync_failed.lock().unwrap() = Some(SyncFailure::DiskFull);
        assert!(matches!(files.sync(), Err(StoreError::DiskFull(_))));
        files.append(b"more").unwrap();
        assert!(matches!(files.sync(), Err(StoreError::DiskFull(_))));
        *files.sync_failed.lock().unwrap() = Some(SyncFailure::Other);
        assert!(matches!(files.sync(), Err(StoreError::Db(_))));
        drop(files);
        let reopened = BodyFiles::open(dir.path()).unwrap();
        reopened.sync().unwrap();
    }

    #[test]
    fn a_temporary_set_of_files_is_removed_when_dropped() {
        let files = BodyFiles::temporary().unwrap();
        let dir = files.dir.clone();
        files.append(b"body").unwrap();
        assert!(dir.exists());
        drop(files);
        assert!(!dir.exists());
    }
}
