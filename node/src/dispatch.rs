//! The node's two bridges between the async world and the chain thread:
//! - [`dispatch`]: serves one [`NodeRequest`] of the HTTP API: peer requests by the network,
//!   the rest by the chain thread (queued without waiting: a full queue answers `Busy`).
//! - [`forward_network_events`]: a thread that hands network events to the chain thread in
//!   order (blocks to their own lane, transactions to the inbox), waiting when the queue is
//!   full (the network then sheds gossip, its overload rule), and keeps the peer facts current.

use std::sync::Arc;

use crossbeam_channel::{Sender, TrySendError};
use peerchain_ledger::sigcache::SignatureChecker;
use peerchain_network::{LinkFault, NetworkEvent, NetworkHandle};
use peerchain_rpc::config::MAX_BANNED_LISTED;
use peerchain_rpc::metrics::Metrics;
use peerchain_rpc::node_api::{
    BannedPeerInfo, LinkFaultView, NetFacts, NodeError, NodeRequest, PeerInfo,
};
use tokio::sync::{mpsc, watch};

use crate::chain_service::{ChainMsg, ChainRequest, GossipBatch, PeerBlock};
use crate::verdict::network_error;

/// The chain thread's inbox as the dispatcher sees it.
#[derive(Debug, Clone)]
pub struct ChainInbox {
    tx: Sender<ChainRequest>,
    capacity: usize,
}

impl ChainInbox {
    /// Wraps the sender of the chain thread's request lane of `capacity` requests (a lane of
    /// their own, apart from gossiped transactions).
    pub fn new(tx: Sender<ChainRequest>, capacity: usize) -> Self {
        ChainInbox { tx, capacity }
    }

    /// Queues `request` without waiting; when the queue is full or the thread is gone, the
    /// request is answered with the error.
    fn offer(&self, request: ChainRequest) {
        let (r, e) = match self.tx.try_send(request) {
            Ok(()) => return,
            Err(TrySendError::Full(r)) => (
                r,
                NodeError::Busy {
                    queue: "chain thread",
                    capacity: self.capacity,
                },
            ),
            Err(TrySendError::Disconnected(r)) => (r, NodeError::Stopped("the chain thread")),
        };
        answer_with(r, e);
    }
}

fn answer_with(request: ChainRequest, e: NodeError) {
    match request {
        ChainRequest::Submit(_, reply) => {
            let _ = reply.send(Err(e));
        }
        ChainRequest::Mine { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        ChainRequest::SetMining { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        ChainRequest::Invalidate(_, reply)
        | ChainRequest::Reconsider(_, reply)
        | ChainRequest::SetAdversary(_, reply) => {
            let _ = reply.send(Err(e));
        }
    }
}

/// Serves one request of the HTTP API (`facts` records the faulted links for the status
/// route).
pub async fn dispatch(
    request: NodeRequest,
    chain: &ChainInbox,
    net: &NetworkHandle,
    facts: &NetFacts,
) {
    match request {
        NodeRequest::Peers(reply) => {
            let peers = net.peers().await.into_iter().map(peer_info).collect();
            let _ = reply.send(peers);
        }
        NodeRequest::BannedPeers(reply) => {
            let banned = net.banned_peers(MAX_BANNED_LISTED).await;
            let _ = reply.send(
                banned
                    .into_iter()
                    .map(|b| BannedPeerInfo {
                        peer_id: b.peer_id,
                        until_ms: b.until_ms,
                    })
                    .collect(),
            );
        }
        NodeRequest::Dial(addr, reply) => {
            let _ = reply.send(net.dial(&addr).await.map_err(network_error));
        }
        NodeRequest::BlockPeer(peer, reply) => {
            let _ = reply.send(net.block_peer(&peer).await.map_err(network_error));
        }
        NodeRequest::UnblockPeer(peer, reply) => {
            let _ = reply.send(net.unblock_peer(&peer).await.map_err(network_error));
        }
        NodeRequest::Submit(txs, reply) => chain.offer(ChainRequest::Submit(txs, reply)),
        NodeRequest::Mine {
            blocks,
            miner,
            reply,
        } => chain.offer(ChainRequest::Mine {
            blocks,
            miner,
            reply,
        }),
        NodeRequest::SetMining {
            enabled,
            hashrate,
            reply,
        } => chain.offer(ChainRequest::SetMining {
            enabled,
            hashrate,
            reply,
        }),
        NodeRequest::SetLinkFault(view, reply) => {
            let _ = reply.send(set_link_fault(net, facts, view).await);
        }
        NodeRequest::Invalidate(hash, reply) => chain.offer(ChainRequest::Invalidate(hash, reply)),
        NodeRequest::Reconsider(hash, reply) => chain.offer(ChainRequest::Reconsider(hash, reply)),
        NodeRequest::SetAdversary(mode, reply) => {
            chain.offer(ChainRequest::SetAdversary(mode, reply));
        }
    }
}

/// Sets a link fault and records every faulted link in the peer facts (for the status route).
async fn set_link_fault(
    net: &NetworkHandle,
    facts: &NetFacts,
    view: LinkFaultView,
) -> Result<Vec<LinkFaultView>, NodeError> {
    let fault = LinkFault {
        loss: view.loss,
        delay_ms: view.delay_ms,
        bandwidth_kbps: view.bandwidth_kbps,
    };
    let all: Vec<LinkFaultView> = net
        .set_link_fault(&view.peer_id, fault)
        .await
        .map_err(network_error)?
        .into_iter()
        .map(|p| LinkFaultView {
            peer_id: p.peer_id,
            loss: p.fault.loss,
            delay_ms: p.fault.delay_ms,
            bandwidth_kbps: p.fault.bandwidth_kbps,
        })
        .collect();
    facts.set_link_faults(all.clone());
    Ok(all)
}

/// Serves requests in order until the channel closes.
pub async fn serve_requests(
    mut rx: mpsc::Receiver<NodeRequest>,
    chain: ChainInbox,
    net: NetworkHandle,
    facts: Arc<NetFacts>,
) {
    while let Some(request) = rx.recv().await {
        dispatch(request, &chain, &net, &facts).await;
    }
}

fn peer_info(p: peerchain_network::PeerSummary) -> PeerInfo {
    PeerInfo {
        peer_id: p.peer_id,
        address: p.address,
        direction: p.direction.to_owned(),
        connected_since_ms: p.connected_since_ms,
        best_height: p.best_height,
    }
}

/// Where the forwarder reports what it saw besides blocks and transactions.
#[derive(Debug)]
pub struct NetWatch {
    /// Peer facts for the status route.
    pub facts: Arc<NetFacts>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// P2P listen addresses with `/p2p/<peer id>`.
    pub addrs: watch::Sender<Vec<String>>,
}

/// Hands network events to the chain thread (blocks to `blocks`, transaction batches to
/// `chain` once `signatures` checked them) until either side closes. Returns why it ended.
pub fn forward_network_events(
    mut events: mpsc::Receiver<NetworkEvent>,
    chain: Sender<ChainMsg>,
    blocks: Sender<PeerBlock>,
    signatures: SignatureChecker,
    seen: NetWatch,
) -> &'static str {
    let mut peers: usize = 0;
    while let Some(event) = events.blocking_recv() {
        let msg = match event {
            NetworkEvent::Block {
                block,
                peer,
                origin,
            } => {
                let block = PeerBlock::Full {
                    block,
                    peer,
                    origin,
                };
                if blocks.send(block).is_err() {
                    return "the chain thread's block lane closed";
                }
                continue;
            }
            NetworkEvent::CompactBlock { block, peer, msg } => {
                if blocks
                    .send(PeerBlock::Compact { block, peer, msg })
                    .is_err()
                {
                    return "the chain thread's block lane closed";
                }
                continue;
            }
            NetworkEvent::BlockTxs { block, peer, txs } => {
                // Not checked here: the chain thread first matches their txids to the block's,
                // and the import checks the signatures of those that match (on all cores).
                if blocks
                    .send(PeerBlock::MissingTxs { block, peer, txs })
                    .is_err()
                {
                    return "the chain thread's block lane closed";
                }
                continue;
            }
            NetworkEvent::Txs { txs, peer, msg } => {
                // On all cores, before the chain thread sees them: it then only orders and
                // admits (the verified signatures are in the mempool's set).
                let bad_signature = signatures.check(&txs);
                ChainMsg::Txs(GossipBatch {
                    txs,
                    peer,
                    msg,
                    bad_signature,
                })
            }
            NetworkEvent::PeerConnected { .. } => {
                peers = peers.saturating_add(1);
                seen.facts.set_peer_count(peers);
                seen.metrics.set_peers(peers);
                continue;
            }
            NetworkEvent::PeerDisconnected { .. } => {
                peers = peers.saturating_sub(1);
                seen.facts.set_peer_count(peers);
                seen.metrics.set_peers(peers);
                continue;
            }
            NetworkEvent::Syncing(on) => {
                seen.facts.set_syncing(on);
                continue;
            }
            NetworkEvent::Listening { addr } => {
                seen.addrs.send_modify(|a| a.push(addr));
                continue;
            }
        };
        if chain.send(msg).is_err() {
            return "the chain thread's inbox closed";
        }
    }
    "the network's event channel closed"
}
