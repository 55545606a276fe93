//! Headless Chromium for the browser tests: finding the tools (Debian's `chromium`, `node` and
//! `playwright-core` in `tests/browser/node_modules`, all installed by `.ci/run`), the rule for
//! their absence (the test says so and passes, unless `PEERCHAIN_REQUIRE_BROWSER` is set, as
//! CI does, which makes it a failure), and the check of scenario reports
//! (`tests/browser/report.mjs`).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The tools a browser test drives.
#[derive(Debug, Clone)]
pub struct Browser {
    /// The Chromium executable (`$CHROMIUM`, else `/usr/bin/chromium`).
    pub chromium: PathBuf,
    /// `tests/browser/`: the playwright scripts and their `node_modules`.
    pub script_dir: PathBuf,
}

/// The browser tools, or why they cannot be used.
pub fn browser_tools() -> Result<Browser, String> {
    let chromium =
        PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    let script_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/browser");
    let script_dir = script_dir.canonicalize().unwrap_or(script_dir);
    if !chromium.exists() {
        return Err(format!(
            "{} not found (apt-get install chromium)",
            chromium.display()
        ));
    }
    if !script_dir.join("node_modules/playwright-core").exists() {
        return Err("playwright-core not installed (cd tests/browser && npm ci)".into());
    }
    if Command::new("node").arg("--version").output().is_err() {
        return Err("node not found".into());
    }
    Ok(Browser {
        chromium,
        script_dir,
    })
}

/// The browser tools for the test `what`; `None` (after printing `SKIPPED <what>: <why>`) when
/// they are missing, and a panic instead when `PEERCHAIN_REQUIRE_BROWSER` is set.
pub fn browser_or_skip(what: &str) -> Option<Browser> {
    match browser_tools() {
        Ok(browser) => Some(browser),
        Err(why) if std::env::var_os("PEERCHAIN_REQUIRE_BROWSER").is_none() => {
            eprintln!("SKIPPED {what}: {why}");
            None
        }
        Err(why) => panic!("{what} is required (PEERCHAIN_REQUIRE_BROWSER) but {why}"),
    }
}

impl Browser {
    /// Runs `tests/browser/report.mjs` on `reports` (report.html files) with full-page
    /// screenshots into `screenshots`: it succeeds when every page opened from disk without a
    /// console error, page error or request beyond the file and shows the verdict, the
    /// assertion table, a chart and the per-node table; its output names each page's faults.
    pub fn check_reports(&self, screenshots: &Path, reports: &[PathBuf]) -> Output {
        Command::new("node")
            .arg(self.script_dir.join("report.mjs"))
            .arg(screenshots)
            .args(reports)
            .current_dir(&self.script_dir)
            .env("CHROMIUM", &self.chromium)
            .output()
            .expect("run node tests/browser/report.mjs")
    }
}
