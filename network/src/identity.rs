//! The node key, the libp2p identity whose public half is the peer id. Two sources:
//!
//! - By default the persistent `data_dir/node.key`, the libp2p protobuf encoding of an
//!   Ed25519 keypair, mode 0600, created at the first start; the peer id is stable across
//!   restarts.
//! - A [`NodeKeySeed`] given by the operator, so the peer id is known before the node starts
//!   (bootnode addresses written down in advance, as container engines need): read from a
//!   key file of 64 hex digits ([`NodeKeySeed::from_file`]), or derived from a shared secret
//!   and the node's ordinal ([`NodeKeySeed::derive`], testnets only). `data_dir/node.key` is
//!   then neither read nor written.
//!
//! This is the one place that turns seeds into keys and peer ids; the node's flags and its
//! `peerchain node-key` command go through it, with plain bytes and strings.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use libp2p::identity::Keypair;
use sha2::{Digest, Sha256};

use crate::error::NetworkError;

/// File name of the node key inside the data directory.
pub(crate) const KEY_FILE: &str = "node.key";

/// The secret seed (32 bytes) of an Ed25519 node key. Its `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeKeySeed([u8; 32]);

impl std::fmt::Debug for NodeKeySeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NodeKeySeed(<secret>, peer id {})", self.peer_id())
    }
}

impl NodeKeySeed {
    /// Domain string of [`NodeKeySeed::derive`]: the first bytes hashed, so these seeds
    /// cannot collide with a hash of the same secret made for another purpose.
    pub const DERIVATION_DOMAIN: &'static str = "peerchain node key v1";

    /// The seed itself (an Ed25519 secret key: any 32 bytes are valid).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        NodeKeySeed(bytes)
    }

    /// The seed of node `ordinal` of a testnet sharing `secret`:
    /// `SHA-256(DERIVATION_DOMAIN || secret || ordinal as u32 big-endian)`. Anyone who knows
    /// the secret can derive every node's key and impersonate it: for testnets only.
    pub fn derive(secret: &[u8], ordinal: u32) -> Self {
        let mut h = Sha256::new();
        h.update(Self::DERIVATION_DOMAIN.as_bytes());
        h.update(secret);
        h.update(ordinal.to_be_bytes());
        NodeKeySeed(h.finalize().into())
    }

    /// Parses 64 hex digits (upper or lower case; whitespace around them is ignored). The
    /// error describes what was found without repeating the secret.
    pub fn from_hex(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            let what = if text.is_empty() {
                "it is empty".to_owned()
            } else if text.bytes().all(|b| b.is_ascii_hexdigit()) {
                format!("it holds {} hex digits", text.len())
            } else {
                format!(
                    "it holds {} characters that are not all hex digits",
                    text.chars().count()
                )
            };
            return Err(format!(
                "expected exactly 64 hex digits (an Ed25519 secret seed, e.g. from \
                 `openssl rand -hex 32`), but {what}; a data directory's binary node.key is \
                 not accepted here"
            ));
        }
        let mut seed = [0u8; 32];
        for (i, pair) in text.as_bytes().chunks_exact(2).enumerate() {
            let digits = std::str::from_utf8(pair).map_err(|e| e.to_string())?;
            seed[i] = u8::from_str_radix(digits, 16).map_err(|e| e.to_string())?;
        }
        Ok(NodeKeySeed(seed))
    }

    /// Reads a node key file: 64 hex digits of the secret seed, whitespace trimmed. Any other
    /// content is an error naming the file.
    pub fn from_file(path: &Path) -> Result<Self, NetworkError> {
        let bytes = fs::read(path).map_err(|source| NetworkError::KeyFile {
            action: "read",
            path: path.to_path_buf(),
            source,
        })?;
        let text = String::from_utf8_lossy(&bytes);
        Self::from_hex(&text).map_err(|detail| NetworkError::KeySeedFile {
            path: path.to_path_buf(),
            detail,
        })
    }

    /// The peer id of this key (base58), as `/p2p/<peer id>` in a multiaddr.
    pub fn peer_id(&self) -> String {
        self.keypair().public().to_peer_id().to_string()
    }

    pub(crate) fn keypair(&self) -> Keypair {
        // Any 32 bytes are an Ed25519 secret key, so this cannot fail; the match keeps the
        // code free of unwrap all the same.
        match Keypair::ed25519_from_bytes(self.0) {
            Ok(key) => key,
            Err(e) => unreachable!("32 bytes are always an Ed25519 secret key: {e}"),
        }
    }
}

/// The node key: `seed` when given (then `dir/node.key` is neither read nor written), else
/// the data directory's key, created when missing.
pub(crate) fn node_key(dir: &Path, seed: Option<&NodeKeySeed>) -> Result<Keypair, NetworkError> {
    match seed {
        Some(seed) => Ok(seed.keypair()),
        None => load_or_create(dir),
    }
}

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
    fn derived_seeds_are_stable_and_differ_by_secret_and_ordinal() {
        let a0 = NodeKeySeed::derive(b"testnet secret", 0);
        assert_eq!(a0, NodeKeySeed::derive(b"testnet secret", 0));
        assert_ne!(a0, NodeKeySeed::derive(b"testnet secret", 1));
        assert_ne!(a0, NodeKeySeed::derive(b"another secret", 0));
        // The derivation as documented (docs/DEPLOY.md): SHA-256 of the domain, the secret
        // and the ordinal as 4 big-endian bytes.
        let mut preimage = b"peerchain node key v1".to_vec();
        preimage.extend_from_slice(b"s");
        preimage.extend_from_slice(&[0, 0, 1, 2]);
        let expected: [u8; 32] = Sha256::digest(&preimage).into();
        assert_eq!(
            NodeKeySeed::derive(b"s", 258),
            NodeKeySeed::from_bytes(expected)
        );
        assert!(a0.peer_id().starts_with("12D3KooW"), "{}", a0.peer_id());
        assert!(
            !format!("{a0:?}").contains(&format!("{:?}", a0.0)),
            "Debug hides the seed"
        );
    }

    #[test]
    fn key_files_hold_exactly_64_hex_digits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let good = dir.path().join("good.key");
        let hex: String = (0..32).map(|i| format!("{:02X}", i * 7)).collect();
        fs::write(&good, format!("  {hex}\n\n")).expect("write");
        let seed = NodeKeySeed::from_file(&good).expect("64 hex digits, trimmed");
        let bytes: Vec<u8> = (0..32).map(|i| (i * 7) as u8).collect();
        assert_eq!(seed.0.to_vec(), bytes);
        for (name, text) in [
            ("empty", String::new()),
            ("short", "ab".repeat(31)),
            ("prefixed", format!("0x{}", "ab".repeat(32))),
            ("words", "not a key at all".to_owned()),
        ] {
            let path = dir.path().join(name);
            fs::write(&path, &text).expect("write");
            let err = NodeKeySeed::from_file(&path).expect_err(name).to_string();
            assert!(err.contains(&path.display().to_string()), "{err}");
            assert!(err.contains("64 hex digits"), "{err}");
        }
        let binary = dir.path().join("binary");
        fs::write(&binary, [0xffu8, 0x00, 0x12]).expect("write");
        assert!(NodeKeySeed::from_file(&binary).is_err());
        let missing = dir.path().join("missing");
        let err = NodeKeySeed::from_file(&missing)
            .expect_err("missing")
            .to_string();
        assert!(
            err.contains("missing") && err.contains("cannot read"),
            "{err}"
        );
    }

    #[test]
    fn a_given_seed_leaves_the_data_directory_alone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let seed = NodeKeySeed::derive(b"x", 7);
        let key = node_key(dir.path(), Some(&seed)).expect("key");
        assert_eq!(key.public().to_peer_id().to_string(), seed.peer_id());
        assert!(!dir.path().join(KEY_FILE).exists(), "node.key not written");
        fs::write(dir.path().join(KEY_FILE), b"garbage").expect("write");
        let again = node_key(dir.path(), Some(&seed)).expect("node.key not read");
        assert_eq!(again.public().to_peer_id().to_string(), seed.peer_id());
    }

    #[test]
    fn corrupt_key_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(KEY_FILE), b"garbage").expect("write");
        let err = load_or_create(dir.path()).expect_err("corrupt");
        assert!(matches!(err, NetworkError::KeyDecode { .. }), "{err}");
    }
}
