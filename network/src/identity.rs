//! The persistent node key: `data_dir/node.key`, the libp2p protobuf encoding of an Ed25519
//! keypair, mode 0600. The peer id derives from it, so it is stable across restarts.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use libp2p::identity::Keypair;

use crate::error::NetworkError;

/// File name of the node key inside the data directory.
pub(crate) const KEY_FILE: &str = "node.key";

/// Loads the node key from `dir`, creating the directory and a new key when missing.
pub(crate) fn load_or_create(dir: &Path) -> Result<Keypair, NetworkError> {
    fs::create_dir_all(dir).map_err(|source| NetworkError::DataDir {
        path: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join(KEY_FILE);
    match fs::read(&path) {
        Ok(bytes) => {
            restrict_permissions(&path)?;
            Keypair::from_protobuf_encoding(&bytes).map_err(|e| NetworkError::KeyDecode {
                path: path.clone(),
                detail: e.to_string(),
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = Keypair::generate_ed25519();
            let bytes = key
                .to_protobuf_encoding()
                .map_err(|e| NetworkError::KeyDecode {
                    path: path.clone(),
                    detail: e.to_string(),
                })?;
            write_private(&path, &bytes)?;
            Ok(key)
        }
        Err(source) => Err(NetworkError::KeyFile {
            action: "read",
            path,
            source,
        }),
    }
}

fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> NetworkError + '_ {
    move |source| NetworkError::KeyFile {
        action: "write",
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to a temporary file created with mode 0600, then renames it into place, so a
/// crash never leaves a truncated key.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), NetworkError> {
    let tmp: PathBuf = path.with_extension("key.tmp");
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(write_err(&tmp))?;
    file.write_all(bytes).map_err(write_err(&tmp))?;
    file.sync_all().map_err(write_err(&tmp))?;
    drop(file);
    restrict_permissions(&tmp)?;
    fs::rename(&tmp, path).map_err(write_err(path))?;
    Ok(())
}

/// Sets mode 0600 (a key copied in by hand may be world-readable).
fn restrict_permissions(path: &Path) -> Result<(), NetworkError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(write_err(path))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_created_once_and_reloaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("nested");
        let a = load_or_create(&sub).expect("create");
        let b = load_or_create(&sub).expect("reload");
        assert_eq!(a.public().to_peer_id(), b.public().to_peer_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(sub.join(KEY_FILE))
                .expect("metadata")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn corrupt_key_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(KEY_FILE), b"garbage").expect("write");
        let err = load_or_create(dir.path()).expect_err("corrupt");
        assert!(matches!(err, NetworkError::KeyDecode { .. }), "{err}");
    }
}
