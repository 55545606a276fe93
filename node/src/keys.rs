//! Key files and the admin token files (`<data-dir>/admin.token`, created with mode 0600, and
//! `--admin-token-file`): read with clear errors.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, bail};
use peerchain_ledger::crypto::Keypair;

/// Writes `contents` to a new file with mode 0600; refuses to overwrite.
pub fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Generates a key and writes it as 64 hex digits to `path` (mode 0600).
pub fn generate_key_file(path: &Path) -> anyhow::Result<Keypair> {
    let key = Keypair::generate();
    write_private(path, &format!("{}\n", hex::encode(key.seed())))?;
    Ok(key)
}

/// Reads a key file: 64 hex digits of the secret seed (whitespace around is ignored).
pub fn read_key_file(path: &Path) -> anyhow::Result<Keypair> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read key file {}", path.display()))?;
    let seed = peerchain_ledger::types::parse_hex::<32>(text.trim()).map_err(|e| {
        anyhow::anyhow!(
            "bad key file {}: expected 64 hex digits of a secret seed ({e})",
            path.display()
        )
    })?;
    Ok(Keypair::from_seed(&seed))
}

/// Reads the admin token from a file the operator gave (`--admin-token-file`, e.g. a mounted
/// secret): its content with whitespace trimmed. An unreadable or empty file is an error
/// naming it (an empty token would silently disable every admin call).
pub fn read_admin_token_file(path: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the admin token file {}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        bail!(
            "the admin token file {} is empty: put the token in it",
            path.display()
        );
    }
    Ok(token.to_owned())
}

/// Reads `<dir>/admin.token`, creating it with a random token (mode 0600) when missing.
pub fn admin_token(dir: &Path) -> anyhow::Result<String> {
    let path = dir.join("admin.token");
    if path.exists() {
        let token = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let token = token.trim().to_owned();
        if token.is_empty() {
            bail!(
                "{} is empty: delete it to create a new token",
                path.display()
            );
        }
        let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "admin token is readable by others");
        }
        return Ok(token);
    }
    let token = hex::encode(Keypair::generate().seed());
    write_private(&path, &format!("{token}\n"))?;
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_round_trip_and_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k.key");
        let key = generate_key_file(&path).expect("generate");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_key_file(&path).expect("read").address(), key.address());
        assert!(generate_key_file(&path).is_err(), "never overwrites");
        std::fs::write(dir.path().join("bad"), "xyz").expect("write");
        let err = read_key_file(&dir.path().join("bad")).expect_err("bad key");
        assert!(err.to_string().contains("64 hex digits"), "{err}");
    }

    #[test]
    fn admin_token_file_is_trimmed_and_must_hold_a_token() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token");
        std::fs::write(&path, "  s3cret-token\n").expect("write");
        assert_eq!(read_admin_token_file(&path).expect("read"), "s3cret-token");
        std::fs::write(&path, " \n\t").expect("write");
        let err = read_admin_token_file(&path).expect_err("empty");
        assert!(err.to_string().contains("is empty"), "{err}");
        assert!(
            err.to_string().contains(&path.display().to_string()),
            "{err}"
        );
        let missing = dir.path().join("missing");
        let err = read_admin_token_file(&missing).expect_err("missing");
        assert!(
            err.to_string().contains("cannot read the admin token file"),
            "{err}"
        );
    }

    #[test]
    fn admin_token_is_created_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = admin_token(dir.path()).expect("create");
        let b = admin_token(dir.path()).expect("read");
        assert_eq!(a, b);
        assert_eq!(a.len(), 64);
    }
}
