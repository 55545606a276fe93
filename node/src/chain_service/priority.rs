//! The CPU priority of the chain thread's helper threads (`store-writer`, `store-probe`,
//! `reclaim`): work
//! that can wait gives way to imports and admissions where cores are short, as with a test
//! network on one machine.
//!
//! It must never lower the priority of a thread other than the caller.

/// The helpers' nice value: a thread at 10 gets about a tenth of a core's share next to a
/// busy thread at the default 0.
pub(super) const NICE: i32 = 10;

/// Lowers the calling thread's CPU priority to [`NICE`] (`what` names it in the log if that
/// fails). On Linux the nice value belongs to the thread (`setpriority(2)`, NOTES), so the
/// rest of the process keeps its own.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub(super) fn lower_priority(what: &'static str) {
    // SAFETY: setpriority takes plain integers and changes only the scheduling weight of the
    // calling thread (who = 0); it touches no memory of this process.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, NICE) };
    if rc != 0 {
        tracing::debug!(
            error = %std::io::Error::last_os_error(),
            thread = what,
            "cannot lower the thread's priority"
        );
    }
}

/// Elsewhere the helpers keep the default priority.
#[cfg(not(target_os = "linux"))]
pub(super) fn lower_priority(_what: &'static str) {}

/// The nice values of this process's threads named `comm`, from `/proc/self/task`.
#[cfg(all(test, target_os = "linux"))]
#[allow(clippy::expect_used, clippy::indexing_slicing)]
pub(super) fn nice_values_of(comm: &str) -> Vec<i32> {
    let mut values = Vec::new();
    for task in std::fs::read_dir("/proc/self/task").expect("tasks") {
        let path = task.expect("task").path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if name.trim() == comm {
            let stat = std::fs::read_to_string(path.join("stat")).expect("stat");
            values.push(nice_field(&stat));
        }
    }
    values
}

/// The nice value in a `/proc/.../stat` line: fields after the command's closing
/// parenthesis start at field 3 (state), and the nice value is field 19.
#[cfg(all(test, target_os = "linux"))]
#[allow(clippy::expect_used, clippy::indexing_slicing)]
pub(super) fn nice_field(stat: &str) -> i32 {
    let after = &stat[stat.rfind(')').expect("comm") + 1..];
    after
        .split_whitespace()
        .nth(16)
        .expect("nice")
        .parse()
        .expect("int")
}
