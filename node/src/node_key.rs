//! A node key known before the node starts: `peerchain node --node-key-file PATH` or
//! `--node-key-seed SECRET [--node-ordinal N]` (the ordinal otherwise comes from the host
//! name's trailing `-N`, as in a Kubernetes StatefulSet pod `peerchain-3`), and the
//! `peerchain node-key` command that prints the peer ids of such keys so bootnode addresses
//! can be written down in advance. The derivation itself lives in one place,
//! `peerchain_network::NodeKeySeed`; this module only resolves the flags into a seed.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use peerchain_network::NodeKeySeed;

use crate::cli::NodeKeyArgs;

/// Most peer ids one `peerchain node-key --count` prints.
pub const MAX_COUNT: u32 = 10_000;

/// The node key an operator gave, and where it came from (for the startup log).
#[derive(Debug, Clone)]
pub struct NodeKey {
    /// The Ed25519 secret seed.
    pub seed: NodeKeySeed,
    /// Where it came from, e.g. `--node-key-seed, ordinal 3 (from the host name
    /// "peerchain-3" in HOSTNAME)`.
    pub origin: String,
}

impl NodeKey {
    /// Node `ordinal`'s key of a testnet sharing `secret` (as `--node-key-seed` derives it).
    pub fn derived(secret: &str, ordinal: u32) -> Self {
        NodeKey {
            seed: NodeKeySeed::derive(secret.as_bytes(), ordinal),
            origin: format!("--node-key-seed, ordinal {ordinal}"),
        }
    }
}

/// The host name and where it was read, for the ordinal of `--node-key-seed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostName {
    /// The name.
    pub name: String,
    /// `HOSTNAME` or `/proc/sys/kernel/hostname`.
    pub source: &'static str,
}

/// This machine's (or container's) host name: the `HOSTNAME` environment variable when set
/// and not empty (container engines set it), else `/proc/sys/kernel/hostname`.
pub fn host_name() -> Option<HostName> {
    if let Ok(name) = std::env::var("HOSTNAME")
        && !name.trim().is_empty()
    {
        return Some(HostName {
            name: name.trim().to_owned(),
            source: "HOSTNAME",
        });
    }
    let path = "/proc/sys/kernel/hostname";
    let name = std::fs::read_to_string(path).ok()?;
    let name = name.trim();
    (!name.is_empty()).then(|| HostName {
        name: name.to_owned(),
        source: path,
    })
}

/// The ordinal at the end of a host name: `peerchain-3` → 3 (a Kubernetes StatefulSet pod),
/// also `peerchain-3.peerchain.default.svc` (only the first label counts). `None` when the
/// first label does not end in `-` and decimal digits that fit a u32.
pub fn ordinal_from_host_name(name: &str) -> Option<u32> {
    let label = name.split('.').next()?;
    let (_, digits) = label.rsplit_once('-')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The operator's node key from the resolved settings (flags, environment or config file):
/// `None` when neither a key file nor a seed is given (then the data directory's `node.key`).
pub fn resolve(
    file: Option<PathBuf>,
    seed: Option<String>,
    ordinal: Option<u32>,
) -> anyhow::Result<Option<NodeKey>> {
    resolve_with(file, seed, ordinal, host_name)
}

/// [`resolve`] with the host name lookup given (tests).
pub fn resolve_with(
    file: Option<PathBuf>,
    seed: Option<String>,
    ordinal: Option<u32>,
    host: impl FnOnce() -> Option<HostName>,
) -> anyhow::Result<Option<NodeKey>> {
    match (file, seed) {
        (Some(path), Some(_)) => bail!(
            "give either --node-key-file ({}) or --node-key-seed, not both (each may come from \
             a flag, a PEERCHAIN_* variable or the config file)",
            path.display()
        ),
        (Some(path), None) => {
            if let Some(n) = ordinal {
                bail!(
                    "--node-ordinal {n} only applies to --node-key-seed, but the key comes from \
                     --node-key-file {}",
                    path.display()
                );
            }
            Ok(Some(NodeKey {
                seed: read_file(&path)?,
                origin: format!("--node-key-file {}", path.display()),
            }))
        }
        (None, Some(secret)) => {
            if secret.is_empty() {
                bail!("--node-key-seed is empty: give the testnet's shared secret");
            }
            let (ordinal, from) = match ordinal {
                Some(n) => (n, "--node-ordinal".to_owned()),
                None => ordinal_from_host(host())?,
            };
            let mut key = NodeKey::derived(&secret, ordinal);
            key.origin = format!("--node-key-seed, ordinal {ordinal} (from {from})");
            Ok(Some(key))
        }
        (None, None) => {
            if let Some(n) = ordinal {
                bail!(
                    "--node-ordinal {n} needs --node-key-seed: the ordinal picks one of the keys \
                     derived from that secret"
                );
            }
            Ok(None)
        }
    }
}

fn ordinal_from_host(host: Option<HostName>) -> anyhow::Result<(u32, String)> {
    const HOW: &str = "--node-key-seed needs this node's ordinal: give --node-ordinal N (or \
                       PEERCHAIN_NODE_ORDINAL), or run the node on a host whose name ends in -N, \
                       like a Kubernetes StatefulSet pod (peerchain-3 is ordinal 3)";
    let Some(host) = host else {
        bail!(
            "{HOW}; this host's name cannot be read (HOSTNAME is unset and /proc/sys/kernel/hostname is unreadable)"
        );
    };
    match ordinal_from_host_name(&host.name) {
        Some(n) => Ok((
            n,
            format!("the host name {:?} in {}", host.name, host.source),
        )),
        None => bail!(
            "{HOW}; the host name {:?} (from {}) does not end in -N",
            host.name,
            host.source
        ),
    }
}

fn read_file(path: &Path) -> anyhow::Result<NodeKeySeed> {
    NodeKeySeed::from_file(path).context("--node-key-file")
}

/// `peerchain node-key`: the peer id of a key file, or of the keys derived from a secret for
/// `count` ordinals from `ordinal`, one per line in ordinal order.
pub fn print(args: &NodeKeyArgs) -> anyhow::Result<()> {
    for line in peer_ids(args)? {
        println!("{line}");
    }
    Ok(())
}

/// The lines `peerchain node-key` prints.
pub fn peer_ids(args: &NodeKeyArgs) -> anyhow::Result<Vec<String>> {
    if let Some(path) = &args.file {
        return Ok(vec![read_file(path)?.peer_id()]);
    }
    let (Some(secret), Some(first)) = (&args.seed, args.ordinal) else {
        bail!("give --file PATH, or --seed SECRET with --ordinal N");
    };
    if secret.is_empty() {
        bail!("--seed is empty: give the testnet's shared secret");
    }
    if args.count == 0 || args.count > MAX_COUNT {
        bail!("--count {} is outside 1..={MAX_COUNT}", args.count);
    }
    let last = first.checked_add(args.count - 1).with_context(|| {
        format!(
            "--ordinal {first} with --count {} goes past the largest ordinal, {}",
            args.count,
            u32::MAX
        )
    })?;
    Ok((first..=last)
        .map(|n| NodeKey::derived(secret, n).seed.peer_id())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str) -> impl FnOnce() -> Option<HostName> + use<> {
        let name = name.to_owned();
        move || {
            Some(HostName {
                name,
                source: "HOSTNAME",
            })
        }
    }

    #[test]
    fn ordinals_come_from_the_end_of_the_first_label() {
        assert_eq!(ordinal_from_host_name("peerchain-3"), Some(3));
        assert_eq!(ordinal_from_host_name("my-testnet-node-12"), Some(12));
        assert_eq!(
            ordinal_from_host_name("peerchain-0.peerchain.default.svc"),
            Some(0)
        );
        assert_eq!(ordinal_from_host_name("peerchain-007"), Some(7));
        for name in [
            "peerchain",
            "peerchain-",
            "peerchain-x1",
            "3",
            "a.b-4",
            "n-99999999999",
        ] {
            assert_eq!(ordinal_from_host_name(name), None, "{name}");
        }
    }

    #[test]
    fn a_seed_takes_the_flag_ordinal_else_the_host_name() {
        let seed = Some("s3cret".to_owned());
        let key = resolve_with(None, seed.clone(), Some(5), || None)
            .expect("resolves")
            .expect("a key");
        assert_eq!(key.seed, NodeKeySeed::derive(b"s3cret", 5));
        assert!(key.origin.contains("--node-ordinal"), "{}", key.origin);
        let key = resolve_with(None, seed.clone(), None, host("peerchain-3"))
            .expect("resolves")
            .expect("a key");
        assert_eq!(key.seed, NodeKeySeed::derive(b"s3cret", 3));
        assert!(key.origin.contains("peerchain-3"), "{}", key.origin);
        // The flag beats the host name.
        let key = resolve_with(None, seed.clone(), Some(1), host("peerchain-3"))
            .expect("resolves")
            .expect("a key");
        assert_eq!(key.seed, NodeKeySeed::derive(b"s3cret", 1));
    }

    #[test]
    fn missing_or_contradictory_settings_are_clear_errors() {
        let seed = Some("s3cret".to_owned());
        let err = resolve_with(None, seed.clone(), None, host("laptop")).expect_err("no -N");
        let text = err.to_string();
        assert!(
            text.contains("--node-ordinal") && text.contains("\"laptop\""),
            "{text}"
        );
        let err = resolve_with(None, seed.clone(), None, || None).expect_err("no host name");
        assert!(err.to_string().contains("cannot be read"), "{err}");
        let err = resolve_with(None, Some(String::new()), Some(0), || None).expect_err("empty");
        assert!(err.to_string().contains("empty"), "{err}");
        let err = resolve_with(Some("k".into()), seed, None, || None).expect_err("both");
        assert!(err.to_string().contains("not both"), "{err}");
        let err = resolve_with(None, None, Some(2), || None).expect_err("ordinal alone");
        assert!(err.to_string().contains("needs --node-key-seed"), "{err}");
        assert!(
            resolve_with(None, None, None, || None)
                .expect("none")
                .is_none()
        );
    }

    #[test]
    fn a_key_file_names_itself_in_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("node.hex");
        std::fs::write(&path, "12345").expect("write");
        let err = resolve_with(Some(path.clone()), None, None, || None).expect_err("short");
        let text = format!("{err:#}");
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("64 hex digits"), "{text}");
        std::fs::write(&path, format!("{}\n", "5a".repeat(32))).expect("write");
        let key = resolve_with(Some(path), None, None, || None)
            .expect("resolves")
            .expect("a key");
        assert_eq!(key.seed, NodeKeySeed::from_bytes([0x5a; 32]));
    }

    #[test]
    fn node_key_prints_consecutive_ordinals_and_bounds_the_count() {
        let args = |ordinal, count| NodeKeyArgs {
            seed: Some("s".into()),
            ordinal: Some(ordinal),
            count,
            file: None,
        };
        let ids = peer_ids(&args(2, 3)).expect("three");
        let expected: Vec<String> = (2..5)
            .map(|n| NodeKeySeed::derive(b"s", n).peer_id())
            .collect();
        assert_eq!(ids, expected);
        assert!(peer_ids(&args(0, MAX_COUNT + 1)).is_err());
        let err = peer_ids(&args(u32::MAX, 2)).expect_err("past u32::MAX");
        assert!(err.to_string().contains("largest ordinal"), "{err}");
        assert_eq!(peer_ids(&args(u32::MAX, 1)).expect("last").len(), 1);
    }
}
