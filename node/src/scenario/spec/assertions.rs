//! `[assert]`: what the report judges, and the run's duration it implies. It must never
//! judge a run (the runner's `assert` does) or read anything but the parsed file.

use super::raw::RawAssert;
use super::{
    Assertions, DEFAULT_TAIL_S, Load, MAX_DURATION_S, SpecError, Step, invalid, positive_millis,
};

pub(super) fn assertions(raw: &RawAssert, has_load: bool) -> Result<Assertions, SpecError> {
    if let Some(rate) = raw.max_stale_rate
        && !(rate.is_finite() && (0.0..=1.0).contains(&rate))
    {
        return Err(invalid(
            "assert.max_stale_rate",
            rate,
            "must be from 0 to 1",
        ));
    }
    let adversary_banned_within_ms = raw
        .adversary_banned_within_s
        .map(|s| positive_millis("assert.adversary_banned_within_s", s, MAX_DURATION_S))
        .transpose()?;
    let converge_within_ms = raw
        .converge_within_s
        .map(|s| positive_millis("assert.converge_within_s", s, MAX_DURATION_S))
        .transpose()?;
    let needs_load = |field: &str| {
        if has_load {
            Ok(())
        } else {
            Err(invalid(field, "(set)", "needs a [load] section"))
        }
    };
    let no_transfer_lost = raw.no_transfer_lost.unwrap_or(false);
    if no_transfer_lost {
        needs_load("assert.no_transfer_lost")?;
    }
    if let Some(tps) = raw.min_confirmed_tps {
        needs_load("assert.min_confirmed_tps")?;
        if !tps.is_finite() || tps < 0.0 {
            return Err(invalid(
                "assert.min_confirmed_tps",
                tps,
                "must be 0 or more",
            ));
        }
    }
    if let Some(p99) = raw.max_p99_confirmation_s {
        needs_load("assert.max_p99_confirmation_s")?;
        if !p99.is_finite() || p99 <= 0.0 {
            return Err(invalid(
                "assert.max_p99_confirmation_s",
                p99,
                "must be more than 0",
            ));
        }
    }
    Ok(Assertions {
        converge_within_ms,
        no_transfer_lost,
        max_reorg_depth: raw.max_reorg_depth,
        min_confirmed_tps: raw.min_confirmed_tps,
        max_p99_confirmation_s: raw.max_p99_confirmation_s,
        max_stale_rate: raw.max_stale_rate,
        adversary_banned_within_ms,
    })
}

/// `duration_s`, or enough to cover the steps, the load and the convergence window plus
/// [`DEFAULT_TAIL_S`]; a given `duration_s` must cover them.
pub(super) fn duration(
    given: Option<f64>,
    steps: &[Step],
    load: Option<&Load>,
    assert: &Assertions,
) -> Result<u64, SpecError> {
    // The latest a step can be due whatever the seed draws, so a given duration_s is
    // accepted or refused alike for every seed.
    let last_step = steps.iter().map(Step::latest_ms).max().unwrap_or(0);
    let needed = (last_step + assert.converge_within_ms.unwrap_or(0))
        .max(last_step)
        .max(load.map_or(0, Load::end_ms));
    let max_ms = (MAX_DURATION_S * 1000.0) as u64;
    if needed > max_ms {
        return Err(invalid(
            "duration_s",
            needed as f64 / 1000.0,
            format!(
                "the last step, the load and the convergence window need more than the \
                 longest run ({MAX_DURATION_S} s)"
            ),
        ));
    }
    let Some(seconds) = given else {
        let tail = (DEFAULT_TAIL_S * 1000.0) as u64;
        let wanted = needed
            .max(last_step + tail)
            .max(load.map_or(0, |l| l.end_ms() + tail));
        return Ok(wanted.min(max_ms));
    };
    let ms = positive_millis("duration_s", seconds, MAX_DURATION_S)?;
    if ms < needed {
        return Err(invalid(
            "duration_s",
            seconds,
            format!(
                "ends before the scenario does: the last step, the load and the convergence \
                 window need {} s",
                needed as f64 / 1000.0
            ),
        ));
    }
    Ok(ms)
}
