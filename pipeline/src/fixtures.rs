//! The one rule for tests that need something fetched or installed outside `cargo` (reference
//! models, Python virtual environments, `python3`): without it a test **skips loudly** (a
//! `SKIPPED: ...` line on stderr and an early return), and with `PERCH_REQUIRE_FIXTURES=1` (what
//! `.ci/run` and the crates' `ci.sh` set after installing everything) it **fails** instead, so CI
//! never passes by skipping.

use std::path::{Path, PathBuf};

/// The environment variable that turns a missing fixture from a skip into a failure.
pub const REQUIRE_ENV: &str = "PERCH_REQUIRE_FIXTURES";

/// Whether missing fixtures fail the test (`PERCH_REQUIRE_FIXTURES=1`).
pub fn required() -> bool {
    std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1")
}

/// Report a missing prerequisite: panics when fixtures are required, else prints `SKIPPED: what`.
/// The caller returns from the test right after.
pub fn missing(what: &str) {
    if required() {
        panic!("{what} ({REQUIRE_ENV}=1: fixtures are required)");
    }
    eprintln!("SKIPPED: {what}");
}

/// `path` when it exists; otherwise [`missing`] with `how` (how to get it) and `None`.
pub fn fixture_path(path: &Path, how: &str) -> Option<PathBuf> {
    if path.exists() {
        return Some(path.to_path_buf());
    }
    missing(&format!("{} is missing ({how})", path.display()));
    None
}
