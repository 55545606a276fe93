//! The error enum of the network crate.

use std::path::PathBuf;

use peerchain_ledger::StoreError;

/// Failures of the network service. Each carries the values involved.
#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    /// The data directory cannot be created.
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The node key cannot be read or written.
    #[error("cannot {action} the node key {path}: {source}")]
    KeyFile {
        /// "read" or "write".
        action: &'static str,
        /// The key file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The node key file does not hold a valid key.
    #[error("the node key {path} is not a valid libp2p key: {detail}")]
    KeyDecode {
        /// The key file.
        path: PathBuf,
        /// Decoder message.
        detail: String,
    },
    /// A node key file given by the operator (`--node-key-file`) does not hold a seed.
    #[error("bad node key file {path}: {detail}")]
    KeySeedFile {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it (never its content).
        detail: String,
    },
    /// A multiaddr does not parse.
    #[error("invalid multiaddr {addr:?}: {detail}")]
    BadAddress {
        /// The text given.
        addr: String,
        /// Parser message.
        detail: String,
    },
    /// A bootnode address lacks its `/p2p/<peer id>` part.
    #[error("bootnode address {addr:?} has no /p2p/<peer id> component")]
    BootnodeWithoutPeerId {
        /// The address given.
        addr: String,
    },
    /// A peer id does not parse.
    #[error("invalid peer id {peer:?}: {detail}")]
    BadPeerId {
        /// The text given.
        peer: String,
        /// Parser message.
        detail: String,
    },
    /// Listening on an address failed.
    #[error("cannot listen on {addr}: {detail}")]
    Listen {
        /// The address.
        addr: String,
        /// Transport message.
        detail: String,
    },
    /// Dialling an address failed at once.
    #[error("cannot dial {addr}: {detail}")]
    Dial {
        /// The address.
        addr: String,
        /// Swarm message.
        detail: String,
    },
    /// The local peer cannot be dialled or blocked.
    #[error("{peer} is the local peer")]
    LocalPeer {
        /// The local peer id.
        peer: String,
    },
    /// An operator block names a peer this node does not know: not connected, not seen since
    /// start, not banned and not a bootnode.
    #[error(
        "unknown peer {peer}: not connected, not seen since start, not banned and not a bootnode"
    )]
    UnknownPeer {
        /// The peer id given.
        peer: String,
    },
    /// An operator unblock names a peer that is neither blocked nor banned.
    #[error("peer {peer} is not blocked")]
    NotBlocked {
        /// The peer id given.
        peer: String,
    },
    /// A link fault value is out of range.
    #[error("link fault {field} = {value}: must be {rule}")]
    BadLinkFault {
        /// The field.
        field: &'static str,
        /// The value given.
        value: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// Every link-fault slot is taken.
    #[error("at most {max} peers may have a link fault at once; clear one first")]
    TooManyLinkFaults {
        /// The bound (`MAX_LINK_FAULTS`).
        max: usize,
    },
    /// Building the transport or a behaviour failed.
    #[error("cannot set up libp2p {what}: {detail}")]
    Setup {
        /// Which part.
        what: &'static str,
        /// Its message.
        detail: String,
    },
    /// Reading the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The network service has stopped (after `shutdown`).
    #[error("the network service has stopped")]
    Stopped,
}

/// `error`'s message followed by its sources', joined by ": ", leaving out empty ones:
/// libp2p's `TransportError::Other` displays as nothing and keeps its cause as its source,
/// so its plain message would say "cannot listen on ADDR: " and no more.
pub(crate) fn with_sources(error: &dyn std::error::Error) -> String {
    let mut parts = Vec::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let text = e.to_string();
        if !text.is_empty() && parts.last() != Some(&text) {
            parts.push(text);
        }
        next = e.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Defect: a port already taken made a node stop with "cannot listen on
    /// /ip4/127.0.0.1/tcp/38317: " and nothing after it (seen in a benchmark run).
    #[test]
    fn a_transport_error_says_its_cause() {
        let taken = std::io::Error::new(std::io::ErrorKind::AddrInUse, "address already in use");
        let err = libp2p::TransportError::Other(taken);
        assert_eq!(err.to_string(), "", "libp2p's own message is empty");
        assert_eq!(with_sources(&err), "address already in use");
        let listen = NetworkError::Listen {
            addr: "/ip4/127.0.0.1/tcp/1".into(),
            detail: with_sources(&err),
        };
        assert_eq!(
            listen.to_string(),
            "cannot listen on /ip4/127.0.0.1/tcp/1: address already in use"
        );
    }
}
