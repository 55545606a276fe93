//! What the host took from a measured run: the time the hypervisor ran something else on
//! this machine's virtual CPUs (`steal` in `/proc/stat`). On a shared host it comes and goes
//! (0-1% idle, a third of the cores' time under load on 2026-12-03), and every figure of a
//! benchmark across processes moves with it, so the benchmarks print it beside their figures.

/// The machine's CPU time so far, from the `cpu` line of `/proc/stat` (clock ticks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuTimes {
    /// user + nice + system + idle + iowait + irq + softirq + steal.
    pub total: u64,
    /// Ticks the virtual CPUs waited while the hypervisor ran something else.
    pub steal: u64,
}

impl CpuTimes {
    /// Now (`None` where `/proc/stat` cannot be read, as off Linux).
    pub fn now() -> Option<Self> {
        parse_cpu_line(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    /// The share of the cores' time stolen between `earlier` and `self` (0 to 1), `None`
    /// when no time passed.
    pub fn steal_since(&self, earlier: &CpuTimes) -> Option<f64> {
        let total = self.total.checked_sub(earlier.total).filter(|t| *t > 0)?;
        let steal = self.steal.saturating_sub(earlier.steal);
        Some(steal as f64 / total as f64)
    }
}

/// "host steal 12.3% of the cores' time" since `earlier`, or a note that it is unknown.
pub fn steal_note(earlier: Option<CpuTimes>) -> String {
    match earlier
        .zip(CpuTimes::now())
        .and_then(|(e, n)| n.steal_since(&e))
    {
        Some(share) => format!("host steal {:.1}% of the cores' time", share * 100.0),
        None => "host steal unknown".to_owned(),
    }
}

/// The first line of `/proc/stat`: `cpu  user nice system idle iowait irq softirq steal ..`.
fn parse_cpu_line(stat: &str) -> Option<CpuTimes> {
    let line = stat.lines().next()?;
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let ticks: Vec<u64> = fields
        .take(8)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let steal = *ticks.get(7)?;
    Some(CpuTimes {
        total: ticks.iter().sum(),
        steal,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn the_cpu_line_gives_total_and_steal_and_the_share_between_two_readings() {
        let before = parse_cpu_line("cpu  100 0 50 800 10 0 5 35 0 0\ncpu0 1 2 3\n").unwrap();
        assert_eq!(
            before,
            CpuTimes {
                total: 1_000,
                steal: 35
            }
        );
        let after = parse_cpu_line("cpu  400 0 100 1200 10 0 5 285 0 0\n").unwrap();
        assert_eq!(after.steal_since(&before), Some(0.25));
        assert_eq!(before.steal_since(&before), None);
    }

    #[test]
    fn a_line_without_steal_or_another_first_line_is_unknown() {
        assert_eq!(parse_cpu_line("cpu  1 2 3 4\n"), None);
        assert_eq!(parse_cpu_line("intr 1 2 3 4 5 6 7 8 9\n"), None);
        assert_eq!(parse_cpu_line(""), None);
    }
}
