//! Mining on the chain thread: templates for the background miner, blocks it finds, and
//! "mine n blocks now" jobs (one block per loop turn, so other messages are served between).

use std::time::Instant;

use peerchain_consensus::{TemplateBuilder, Verdict, build_template, solve};
use peerchain_ledger::{Address, Block, Hash};
use peerchain_rpc::node_api::{NodeError, Reply};

use super::miner_template::Renewal;
use super::{ChainService, clock_ms};
use crate::verdict::node_error;

/// A "mine n blocks now" request in progress.
#[derive(Debug)]
pub(super) struct MineJob {
    pub(super) remaining: u32,
    pub(super) miner: Option<Address>,
    pub(super) done: Vec<Hash>,
    pub(super) reply: Reply<Result<Vec<Hash>, NodeError>>,
}

impl ChainService {
    /// Mines one block of the oldest "mine now" job and replies when it is complete. A job
    /// whose caller has gone (timeout, hung up) is dropped without mining further.
    pub(super) fn mine_step(&mut self) {
        let Some(mut job) = self.mine_jobs.pop_front() else {
            return;
        };
        if job.reply.is_closed() {
            tracing::info!(
                mined = job.done.len(),
                "mine request abandoned by its caller"
            );
            return;
        }
        if job.remaining == 0 {
            self.publish_now();
            let _ = job.reply.send(Ok(job.done));
            return;
        }
        match self.mine_now(1, job.miner) {
            Ok(hashes) => {
                job.done.extend(hashes);
                job.remaining = job.remaining.saturating_sub(1);
                if job.remaining == 0 {
                    self.publish_now();
                    let _ = job.reply.send(Ok(job.done));
                } else {
                    self.mine_jobs.push_front(job);
                }
            }
            Err(e) => {
                let _ = job.reply.send(Err(e));
            }
        }
    }

    pub(super) fn mine_now(
        &mut self,
        blocks: u32,
        miner: Option<Address>,
    ) -> Result<Vec<Hash>, NodeError> {
        self.refuse_if_disk_full()?;
        let mut out = Vec::new();
        for _ in 0..blocks {
            let mut template = build_template(
                &self.chain,
                miner.unwrap_or(self.miner_address),
                clock_ms(self.clock_offset_ms),
            )
            .map_err(node_error)?;
            // Right after `invalidate` the same template can rebuild the very block that was
            // invalidated (same clock millisecond): move the timestamp on until it is new.
            let block = loop {
                let Some(block) = solve(template.clone()) else {
                    template.header.timestamp_ms += 1;
                    continue;
                };
                if self.chain.block_info(&block.hash()).is_none() {
                    break block;
                }
                template.header.timestamp_ms += 1;
            };
            out.push(self.import_own(block)?);
        }
        Ok(out)
    }

    /// Imports a block made here and publishes it when it joined the main chain.
    pub(super) fn import_own(&mut self, block: Block) -> Result<Hash, NodeError> {
        self.refuse_if_disk_full()?;
        let hash = block.hash();
        let height = block.header.height;
        let txs = block.transactions.len();
        let reports = self
            .chain
            .import(block.clone(), None, clock_ms(self.clock_offset_ms))
            .map_err(|e| {
                self.store_write_failed(&e);
                node_error(e)
            })?;
        self.tips_dirty = true;
        let verdict = reports.iter().find(|r| r.hash == hash).map(|r| &r.verdict);
        match verdict {
            Some(Verdict::Accepted { on_main: true }) => {
                tracing::info!(%hash, height, txs, "mined block");
                let publish = match self.adversary.as_mut() {
                    Some(a) => a.on_mined(block, &self.chain),
                    None => vec![block],
                };
                self.publish_blocks(publish);
                self.publish_events();
                Ok(hash)
            }
            // Lost a race: another block of the same work arrived first (first seen wins).
            Some(Verdict::Accepted { on_main: false } | Verdict::Duplicate) => {
                tracing::info!(%hash, height, "mined block lost a race to a block seen first");
                Err(NodeError::MinedBlockRefused {
                    hash,
                    reason: "another block of the same work was seen first".into(),
                })
            }
            other => {
                tracing::warn!(%hash, ?other, "mined block not on the main chain");
                Err(NodeError::MinedBlockRefused {
                    hash,
                    reason: format!("{other:?}"),
                })
            }
        }
    }

    /// Gives the miner a new template when it needs one (`miner_template`): rebuilt at once
    /// when the tip changed, extended with what was admitted at most every
    /// `miner_template::TEMPLATE_REFRESH` when only the mempool changed.
    pub(super) fn refresh_template(&mut self, tip_changed: bool) {
        if !self.mining || self.disk_full().is_some() {
            if self.miner.is_working() {
                self.miner.set_job(None);
            }
            self.template.clear();
            return;
        }
        let now = Instant::now();
        let forced = tip_changed || !self.miner.is_working();
        let renewal = self.template.renewal(self.chain.tip(), now, forced);
        match renewal {
            Renewal::None => {}
            Renewal::Extend => self.extend_template(now),
            Renewal::Rebuild => self.rebuild_template(now),
        }
    }

    fn rebuild_template(&mut self, now: Instant) {
        match TemplateBuilder::new(
            &self.chain,
            self.miner_address,
            clock_ms(self.clock_offset_ms),
        ) {
            Ok(builder) => {
                self.miner.set_job(Some(builder.template()));
                self.template.rebuilt(builder, now);
            }
            Err(e) => {
                // The held job may be on the old tip: stop rather than mine a stale block.
                tracing::error!(error = %e, "cannot build a block template; trying again shortly");
                self.miner.set_job(None);
                self.template.rebuild_failed(now);
            }
        }
    }

    fn extend_template(&mut self, now: Instant) {
        let Some((builder, admitted)) = self.template.extension(now) else {
            return;
        };
        match builder.extend(&self.chain, &admitted, clock_ms(self.clock_offset_ms)) {
            Ok(0) => {}
            Ok(_) => self.miner.set_job(Some(builder.template())),
            Err(e) => {
                tracing::error!(error = %e, "cannot extend the block template; rebuilding");
                self.rebuild_template(now);
            }
        }
    }
}
