//! Accounts: balance and nonces, and the paged history (pending first, then confirmed newest
//! first).
//!
//! The history is walked in two phases, and the cursor says which:
//! - Pending phase, `p{H0}.{first_seen_ms}.{txid}`: `H0` is the tip height when the walk began.
//!   Its items are the transactions that are pending now, together with those confirmed above
//!   `H0` that this node saw pending (they were pending during the walk), ordered by
//!   (first-seen time, txid), newest first. A transaction keeps its place in this order when it
//!   confirms mid-walk, so it is neither skipped nor shown twice.
//! - Confirmed phase, `c{height}-{index}`: main-chain transactions at or below `H0`, newest
//!   first by (height, index), strictly older than the cursor. New blocks land above `H0` and
//!   never shift this walk.
//!
//! Transactions that arrive after the walk began may or may not appear, but at most once.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, State};
use peerchain_ledger::{AccountReader, Address, Hash, HistoryCursor, StoreReader, TxLocation};
use serde::Serialize;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::extract::{ApiQuery, parse_address};
use crate::pagination::{Page, PageParams};
use crate::reads::tx_at;
use crate::state::{AppState, blocking};
use crate::views::TransactionView;

/// Most transactions confirmed since a walk began that one page looks through.
const MAX_CONFIRMED_DURING_WALK: usize = 10_000;

/// An account.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AccountView {
    /// The address.
    pub address: String,
    /// Confirmed balance.
    pub balance: u64,
    /// Confirmed nonce (transactions sent in the main chain).
    pub nonce: u64,
    /// The nonce of its next transaction, counting its pending ones.
    pub next_nonce: u64,
    /// Main-chain transactions that sent from or paid to it.
    pub tx_count: u64,
}

const ADDRESS_PARAM: &str = "Address (40 hex digits)";

/// Balance, nonces and transaction count of an address (zero for one never credited).
#[utoipa::path(
    get, path = "/v1/accounts/{address}", tag = "accounts",
    params(("address" = String, Path, description = ADDRESS_PARAM, pattern = "^(0[xX])?[0-9a-fA-F]{40}$")),
    responses((status = 200, body = AccountView))
)]
pub(crate) async fn get_account(
    State(state): State<AppState>,
    Path(address): Path<String>,
) -> Result<Json<AccountView>, ApiError> {
    let address = parse_address(&address)?;
    let store = state.api().store.clone();
    let (account, tx_count) =
        blocking(move || Ok((store.account(&address)?, store.tx_count(&address)?))).await?;
    let next_nonce = state
        .api()
        .snapshot()
        .mempool
        .next_nonce(&address, account.nonce);
    Ok(Json(AccountView {
        address: address.to_hex(),
        balance: account.balance,
        nonce: account.nonce,
        next_nonce: next_nonce.max(account.nonce),
        tx_count,
    }))
}

/// Where a history walk stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Walk {
    Pending { h0: u64, after: Option<(u64, Hash)> },
    Confirmed(HistoryCursor),
}

pub(crate) fn parse_walk(text: &str) -> Option<Walk> {
    if let Some(rest) = text.strip_prefix('p') {
        let mut parts = rest.splitn(3, '.');
        let h0 = parts.next()?.parse().ok()?;
        let ms = parts.next()?.parse().ok()?;
        let txid = parts.next()?;
        if txid.len() != 64 {
            return None;
        }
        return Some(Walk::Pending {
            h0,
            after: Some((ms, txid.parse().ok()?)),
        });
    }
    let rest = text.strip_prefix('c')?;
    let c = HistoryCursor::from_text(rest)?;
    (c.to_text() == rest).then_some(Walk::Confirmed(c))
}

pub(crate) fn pending_cursor(h0: u64, key: (u64, Hash)) -> String {
    format!("p{h0}.{}.{}", key.0, key.1)
}

pub(crate) fn confirmed_cursor(c: HistoryCursor) -> String {
    format!("c{}", c.to_text())
}

/// Transactions that sent from or paid to an address: pending first, then confirmed, newest
/// first.
#[utoipa::path(
    get, path = "/v1/accounts/{address}/transactions", tag = "accounts",
    params(
        ("address" = String, Path, description = ADDRESS_PARAM, pattern = "^(0[xX])?[0-9a-fA-F]{40}$"),
        PageParams,
    ),
    responses(
        (status = 200, body = Page<TransactionView>),
        (status = 400, description = "invalid_address, invalid_limit or invalid_cursor", body = ErrorBody),
    )
)]
pub(crate) async fn account_history(
    State(state): State<AppState>,
    Path(address): Path<String>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<Json<Page<TransactionView>>, ApiError> {
    let address = parse_address(&address)?;
    let limit = page.limit()?;
    let walk = page.cursor(parse_walk)?;
    let page = match walk {
        Some(Walk::Confirmed(c)) => {
            let store = state.api().store.clone();
            blocking(move || confirmed_page(&store, &address, c, limit, Vec::new())).await?
        }
        Some(Walk::Pending { h0, after }) => {
            pending_page(&state, address, h0, after, limit).await?
        }
        None => {
            // The tip is read before the mempool: a transaction confirmed in between is then
            // above H0 and found among the recently confirmed, never below H0 as well.
            let store = state.api().store.clone();
            let h0 = blocking(move || Ok(store.tip_record()?.header.height)).await?;
            pending_page(&state, address, h0, None, limit).await?
        }
    };
    Ok(Json(page))
}

/// An item of the pending phase before its view is built: only the page's items get one.
enum PendingItem {
    /// Confirmed above H0 at this position (the view reads its block).
    Confirmed(HistoryCursor),
    /// Still pending.
    Pending(Box<TransactionView>),
}

/// A page of the pending phase, continued into the confirmed phase when it runs out. Its
/// cost: one scan of the address's history index above H0 (keys only, at most
/// [`MAX_CONFIRMED_DURING_WALK`]), the address's pending transactions, and block reads for
/// the page's items only.
async fn pending_page(
    state: &AppState,
    address: Address,
    h0: u64,
    after: Option<(u64, Hash)>,
    limit: usize,
) -> Result<Page<TransactionView>, ApiError> {
    // One snapshot for the whole page: no round trip to the chain thread per transaction.
    let snapshot = state.api().snapshot();
    let store = state.api().store.clone();
    let recent = blocking(move || confirmed_above(&store, &address, h0)).await?;
    let mut entries: HashMap<Hash, ((u64, Hash), PendingItem)> = HashMap::new();
    for (pos, txid) in recent {
        if let Some(ms) = snapshot.first_seen_ms(&txid) {
            entries.insert(txid, ((ms, txid), PendingItem::Confirmed(pos)));
        }
    }
    for e in snapshot.mempool.involving(&address) {
        // The snapshot was taken first: a transaction in both confirmed in between.
        entries.entry(e.txid).or_insert_with(|| {
            let view = TransactionView::pending(&e.tx, Some(e.first_seen_ms));
            (
                (e.first_seen_ms, e.txid),
                PendingItem::Pending(Box::new(view)),
            )
        });
    }
    let mut ordered: Vec<((u64, Hash), PendingItem)> = entries
        .into_values()
        .filter(|(key, _)| after.is_none_or(|a| *key < a))
        .collect();
    ordered.sort_by_key(|entry| std::cmp::Reverse(entry.0));
    let more = ordered.len() > limit;
    ordered.truncate(limit);
    let next = more
        .then(|| ordered.last().map(|(key, _)| pending_cursor(h0, *key)))
        .flatten();
    let store = state.api().store.clone();
    blocking(move || {
        let items = pending_views(&store, ordered)?;
        if more {
            return Ok(Page {
                items,
                next_cursor: next,
            });
        }
        let below = HistoryCursor {
            height: h0.saturating_add(1),
            index: 0,
        };
        confirmed_page(&store, &address, below, limit, items)
    })
    .await
}

/// The views of a pending-phase page, in its order (confirmed items read their blocks; one
/// a reorg moved away is skipped).
fn pending_views(
    store: &StoreReader,
    ordered: Vec<((u64, Hash), PendingItem)>,
) -> Result<Vec<TransactionView>, ApiError> {
    let tip = store.tip_record()?.header.height;
    let mut out = Vec::with_capacity(ordered.len());
    for ((first_seen, txid), item) in ordered {
        match item {
            PendingItem::Pending(view) => out.push(*view),
            PendingItem::Confirmed(pos) => {
                if let Some((_, mut view)) = views_at(store, &[(pos, txid)], tip)?.pop() {
                    view.first_seen_ms = Some(first_seen);
                    out.push(view);
                }
            }
        }
    }
    Ok(out)
}

/// Positions of the transactions of `address` confirmed above height `h0`, newest first (at
/// most [`MAX_CONFIRMED_DURING_WALK`]; index keys only, no block is read).
fn confirmed_above(
    store: &StoreReader,
    address: &Address,
    h0: u64,
) -> Result<Vec<(HistoryCursor, Hash)>, ApiError> {
    let mut positions = Vec::new();
    let mut before = None;
    'scan: loop {
        let (items, next) = store.history(address, before, 256)?;
        for item in items {
            if item.0.height <= h0 || positions.len() >= MAX_CONFIRMED_DURING_WALK {
                break 'scan;
            }
            positions.push(item);
        }
        match next {
            Some(n) => before = Some(n),
            None => break,
        }
    }
    Ok(positions)
}

/// The confirmed phase: up to `limit - prefix.len()` transactions strictly older than
/// `before`, appended to `prefix`.
fn confirmed_page(
    store: &StoreReader,
    address: &Address,
    before: HistoryCursor,
    limit: usize,
    prefix: Vec<TransactionView>,
) -> Result<Page<TransactionView>, ApiError> {
    let room = limit.saturating_sub(prefix.len());
    let mut items = prefix;
    if room == 0 {
        let (peek, _) = store.history(address, Some(before), 1)?;
        return Ok(Page {
            items,
            next_cursor: (!peek.is_empty()).then(|| confirmed_cursor(before)),
        });
    }
    let tip = store.tip_record()?.header.height;
    let (positions, next) = store.history(address, Some(before), room)?;
    items.extend(
        views_at(store, &positions, tip)?
            .into_iter()
            .map(|(_, v)| v),
    );
    Ok(Page {
        items,
        next_cursor: next.map(confirmed_cursor),
    })
}

/// Views of confirmed history entries, reading each block once.
fn views_at(
    store: &StoreReader,
    positions: &[(HistoryCursor, Hash)],
    tip: u64,
) -> Result<Vec<(Hash, TransactionView)>, ApiError> {
    let mut out = Vec::with_capacity(positions.len());
    let mut cached: Option<(u64, Hash, Vec<u8>)> = None;
    for (pos, txid) in positions {
        if cached.as_ref().is_none_or(|c| c.0 != pos.height) {
            // A reorg may move the chain under a page; such entries are skipped.
            let Some(hash) = store.main_hash(pos.height)? else {
                continue;
            };
            let Some(bytes) = store.block_bytes(&hash)? else {
                continue;
            };
            cached = Some((pos.height, hash, bytes));
        }
        let Some((_, block_hash, bytes)) = &cached else {
            continue;
        };
        let Some(tx) = tx_at(bytes, pos.index as usize)? else {
            continue;
        };
        let location = TxLocation {
            block_hash: *block_hash,
            height: pos.height,
            index: pos.index,
        };
        out.push((*txid, TransactionView::confirmed(&tx, &location, tip)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        let txid = Hash([7; 32]);
        let p = pending_cursor(12, (1_700, txid));
        assert_eq!(
            parse_walk(&p),
            Some(Walk::Pending {
                h0: 12,
                after: Some((1_700, txid))
            })
        );
        let c = HistoryCursor {
            height: 5,
            index: 3,
        };
        assert_eq!(parse_walk(&confirmed_cursor(c)), Some(Walk::Confirmed(c)));
        for bad in [
            "", "p", "p1.2", "p1.2.xyz", "c", "c5", "c5-x", "x5-3", "c05-3",
        ] {
            assert_eq!(parse_walk(bad), None, "{bad}");
        }
    }
}
