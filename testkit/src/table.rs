//! The result table of the benchmarks that time whole runs over a number of items:
//!
//! ```text
//! name                                              iters        total     per iter           tx/s
//! ------------------------------------------------------------------------------------------------
//! import A (extend the main chain)                      5    65.133 ms    13.027 ms           3071
//! ```

use std::time::Duration;

use crate::stats::fmt_duration;

/// Width of the table (the rule under the header and [`table_rule`]).
pub const TABLE_WIDTH: usize = 96;

/// Prints the header of the result table; the last column is items of `unit` per second.
pub fn table_header(unit: &str) {
    println!(
        "{:<48} {:>6} {:>12} {:>12} {:>14}",
        "name",
        "iters",
        "total",
        "per iter",
        format!("{unit}/s")
    );
    table_rule();
}

/// Prints one row: `iters` runs over `items` items each took `total` altogether.
pub fn table_row(name: &str, iters: usize, total: Duration, items: usize) {
    let per = total / u32::try_from(iters.max(1)).unwrap_or(u32::MAX);
    let rate = (items * iters) as f64 / total.as_secs_f64().max(1e-12);
    println!(
        "{name:<48} {iters:>6} {:>12} {:>12} {rate:>14.0}",
        fmt_duration(total),
        fmt_duration(per)
    );
}

/// Prints a rule as wide as the table.
pub fn table_rule() {
    println!("{}", "-".repeat(TABLE_WIDTH));
}
