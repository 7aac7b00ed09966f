//! Log output: `tracing` to stderr, filtered by `PERCH_LOG` (an `EnvFilter`, e.g.
//! `PERCH_LOG=debug`, `PERCH_LOG=perch=debug,rustdds=info`). By default perch's own crates log at
//! `info` and dependencies only warnings and errors (the DDS stack alone logs ~110 lines at `info`
//! per ROS 2 run). Colours only when stderr is a terminal, so files and journald get plain text.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// The filter when `PERCH_LOG` is unset: perch's crates (`perch`, `perch_*`) at info, the rest at warn.
pub const DEFAULT_FILTER: &str = "warn,perch=info";

/// Whether the status line is on screen without a newline (a log line must clear it first).
static STATUS_DRAWN: AtomicBool = AtomicBool::new(false);

pub fn set_status_drawn(drawn: bool) {
    STATUS_DRAWN.store(drawn, Ordering::SeqCst);
}

/// stderr that first clears a status line drawn in place (the status thread redraws it next tick).
struct Stderr;

impl Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut err = std::io::stderr().lock();
        if STATUS_DRAWN.swap(false, Ordering::SeqCst) {
            err.write_all(b"\r\x1b[2K")?;
        }
        err.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

pub fn init() {
    let filter = match std::env::var("PERCH_LOG") {
        Ok(spec) if !spec.trim().is_empty() => tracing_subscriber::EnvFilter::try_new(&spec).unwrap_or_else(|e| {
            eprintln!("warning: PERCH_LOG={spec:?} is not a valid filter ({e}); using {DEFAULT_FILTER:?}");
            tracing_subscriber::EnvFilter::new(DEFAULT_FILTER)
        }),
        _ => tracing_subscriber::EnvFilter::new(DEFAULT_FILTER),
    };
    tracing_subscriber::fmt()
        .with_writer(|| Stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_env_filter(filter)
        .init();
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    /// The default filter keeps perch's crates at info and silences dependencies' info lines (the
    /// DDS stack logs through `log` under targets like `rustdds::...`).
    #[test]
    fn dependencies_are_quiet_by_default() {
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let sub = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_env_filter(tracing_subscriber::EnvFilter::new(super::DEFAULT_FILTER))
            .finish();
        tracing::subscriber::with_default(sub, || {
            tracing::info!(target: "rustdds::discovery", "dds chatter");
            tracing::warn!(target: "rustdds::network", "dds problem");
            tracing::info!(target: "perch_pipeline::runtime", "stage news");
            tracing::info!(target: "perch::cli", "binary news");
            tracing::debug!(target: "perch_detect", "detail");
        });
        let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        assert!(!out.contains("dds chatter") && out.contains("dds problem"), "{out}");
        assert!(out.contains("stage news") && out.contains("binary news") && !out.contains("detail"), "{out}");
    }
}
