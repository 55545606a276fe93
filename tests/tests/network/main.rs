//! P2P tests: gossip, sync and peer protection between real nodes started in-process with
//! `peerchain::start` (every honest node), and raw network instances as adversaries (see
//! `common`).

mod common;
mod gossip;
mod protection;
mod sync;
