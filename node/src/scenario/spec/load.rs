//! `[load]`: the transfers offered, their rate and pattern, checked against the bounds. It
//! must never generate a transfer (the runner's `load` does).

use super::raw::RawLoad;
use super::{
    Load, MAX_DURATION_S, MAX_TPS, MAX_TRANSFERS, Network, Pattern, SpecError, index, invalid,
    millis, positive_millis,
};

pub(super) fn load_of(raw: &RawLoad, network: &Network) -> Result<Load, SpecError> {
    if !(1..=MAX_TPS).contains(&raw.tps) {
        return Err(invalid(
            "load.tps",
            raw.tps,
            format!("must be 1 to {MAX_TPS}"),
        ));
    }
    let duration_ms = positive_millis("load.duration_s", raw.duration_s, MAX_DURATION_S)?;
    let start_ms = millis("load.start_s", raw.start_s.unwrap_or(0.0), MAX_DURATION_S)?;
    let accounts = raw.accounts.unwrap_or(8);
    if accounts == 0 {
        return Err(invalid("load.accounts", 0, "at least 1 sending account"));
    }
    let pattern = pattern(raw)?;
    let nodes = match &raw.nodes {
        None => (0..network.nodes).collect(),
        Some(list) if list.is_empty() => {
            return Err(invalid("load.nodes", "[]", "name at least one node"));
        }
        Some(list) => list
            .iter()
            .map(|&i| index("load.nodes", i, network.nodes))
            .collect::<Result<Vec<_>, _>>()?,
    };
    let fee = raw.fee.unwrap_or(network.genesis.min_fee);
    if fee < network.genesis.min_fee {
        return Err(invalid(
            "load.fee",
            fee,
            format!("below the network's min_fee {}", network.genesis.min_fee),
        ));
    }
    let confirm_timeout_ms = millis(
        "load.confirm_timeout_s",
        raw.confirm_timeout_s.unwrap_or(30.0),
        MAX_DURATION_S,
    )?;
    let load = Load {
        tps: raw.tps,
        start_ms,
        duration_ms,
        accounts,
        pattern,
        nodes,
        fee,
        confirm_timeout_ms,
    };
    if load.total() > MAX_TRANSFERS {
        return Err(invalid(
            "load.tps x load.duration_s",
            load.total(),
            format!("at most {MAX_TRANSFERS} transfers (each is kept for the report)"),
        ));
    }
    Ok(load)
}

fn pattern(raw: &RawLoad) -> Result<Pattern, SpecError> {
    match raw.pattern.as_deref().unwrap_or("steady") {
        "steady" => Ok(Pattern::Steady),
        "bursts" => Ok(Pattern::Bursts {
            period_ms: positive_millis(
                "load.burst_period_s",
                raw.burst_period_s.unwrap_or(5.0),
                MAX_DURATION_S,
            )?,
        }),
        other => Err(invalid(
            "load.pattern",
            format!("{other:?}"),
            "must be \"steady\" or \"bursts\"",
        )),
    }
}
