//! Where `perch run` puts its results (`--report`, `--detections`): checked and created before the
//! pipeline starts, so an unwritable path fails in the first second instead of losing a long run;
//! written whole (a second Ctrl-C exits only between two writes, see [`exit_between_writes`]); and
//! a failed write fails the run ([`EXIT_OUTPUT_LOST`]).

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

/// Exit status of a run whose results were not all written (a `--report` or `--detections` write
/// failed, or a tap could not flush); the report and stderr say what was lost.
pub const EXIT_OUTPUT_LOST: u8 = 4;

/// Held while a result file is being written (one JSON line, the report). The second-interrupt
/// exit takes it first, so it never cuts a line or a report in half.
static WRITES: Mutex<()> = Mutex::new(());

/// Hold [`WRITES`] for one write.
pub fn write_guard() -> MutexGuard<'static, ()> {
    WRITES.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The `--report` file this run created and has not written yet: the second-interrupt exit
/// removes it rather than leave an empty report behind.
static PENDING_REPORT: Mutex<Option<PathBuf>> = Mutex::new(None);

/// Exit the process with `code` once no result write is in progress (waiting at most 2 s for
/// one, e.g. a write stuck on a dead network share). Every line written so far stays whole.
pub fn exit_between_writes(code: i32) -> ! {
    let until = Instant::now() + Duration::from_secs(2);
    let _guard = loop {
        match WRITES.try_lock() {
            Ok(guard) => break Some(guard),
            Err(std::sync::TryLockError::Poisoned(p)) => break Some(p.into_inner()),
            Err(std::sync::TryLockError::WouldBlock) if Instant::now() >= until => break None,
            Err(std::sync::TryLockError::WouldBlock) => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    if let Some(path) = PENDING_REPORT.lock().ok().and_then(|mut p| p.take()) {
        let _ = std::fs::remove_file(path);
    }
    std::process::exit(code)
}

/// Create the parent folders of `path` and return the path with its folder resolved (so two
/// spellings of one file compare equal).
fn resolve(path: &Path, what: &str) -> anyhow::Result<PathBuf> {
    let dir = match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(d) => d.to_path_buf(),
        None => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("{what} {}: creating the folder {}", path.display(), dir.display()))?;
    let name = path.file_name().with_context(|| format!("{what} {}: not a file name", path.display()))?;
    let dir = dir.canonicalize().with_context(|| format!("{what} {}: resolving {}", path.display(), dir.display()))?;
    Ok(dir.join(name))
}

/// Refuse the same file for two outputs (they would overwrite each other).
pub fn check_distinct(report: Option<&Path>, detections: Option<&Path>) -> anyhow::Result<()> {
    if let (Some(r), Some(d)) = (report, detections) {
        if resolve(r, "--report")? == resolve(d, "--detections")? {
            bail!(
                "--report {} and --detections {} name the same file: the report would overwrite the detections",
                r.display(),
                d.display()
            );
        }
    }
    Ok(())
}

/// Open an output file for writing now (creating its folders), truncating it.
pub fn create(path: &Path, what: &str) -> anyhow::Result<File> {
    resolve(path, what)?;
    File::create(path).with_context(|| format!("{what} {}: cannot create the file", path.display()))
}

/// The `--report` destination, opened before the run. Written once at the end; removed again if
/// the run never got that far and the file did not exist before.
pub struct ReportFile {
    path: PathBuf,
    file: Option<File>,
    created: bool,
}

impl ReportFile {
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        resolve(path, "--report")?;
        let existed = path.exists();
        // Not truncated yet: a run that fails to start leaves an old report as it was.
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("--report {}: cannot open the file for writing", path.display()))?;
        if !existed {
            *PENDING_REPORT.lock().unwrap_or_else(|p| p.into_inner()) = Some(path.to_path_buf());
        }
        Ok(Self { path: path.to_path_buf(), file: Some(file), created: !existed })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replace the file's contents with `text`, whole and synced.
    pub fn write(mut self, text: &str) -> anyhow::Result<()> {
        let mut file = self.file.take().context("the report was already written")?;
        let _guard = write_guard();
        let result = (|| -> std::io::Result<()> {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            file.write_all(text.as_bytes())?;
            file.sync_data()
        })();
        PENDING_REPORT.lock().unwrap_or_else(|p| p.into_inner()).take();
        result.with_context(|| format!("writing the report {}", self.path.display()))
    }
}

impl Drop for ReportFile {
    fn drop(&mut self) {
        // Still open: the run ended before its report. Remove the empty file this run created.
        if self.file.take().is_some() && self.created {
            PENDING_REPORT.lock().unwrap_or_else(|p| p.into_inner()).take();
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// After a run: say on stderr what was lost, write the report (it lists the same errors), and
/// return whether every result was written.
pub fn finish(report: &perch_pipeline::RunReport, report_file: Option<ReportFile>) -> bool {
    let mut all_written = report.output_errors.is_empty();
    for e in &report.output_errors {
        eprintln!("error: {e}");
    }
    if let Some(file) = report_file {
        let path = file.path().display().to_string();
        let json = match serde_json::to_string_pretty(report) {
            Ok(j) => j + "\n",
            Err(e) => {
                eprintln!("error: --report {path}: cannot serialise the report: {e}");
                return false;
            }
        };
        match file.write(&json) {
            Ok(()) => eprintln!("report written to {path}"),
            Err(e) => {
                eprintln!("error: {e:#}: the report is lost (the table above has its numbers)");
                all_written = false;
            }
        }
    }
    all_written
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("perch-outputs-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn the_same_file_for_both_outputs_is_refused() {
        let d = tmp("same");
        let a = d.join("out/r.json");
        let b = d.join("out/../out/./r.json");
        let e = check_distinct(Some(&a), Some(&b)).unwrap_err().to_string();
        assert!(e.contains("same file"), "{e}");
        check_distinct(Some(&a), Some(&d.join("out/d.jsonl"))).unwrap();
        check_distinct(Some(&a), None).unwrap();
    }

    #[test]
    fn the_report_is_created_early_and_removed_if_never_written() {
        let d = tmp("report");
        let p = d.join("deep/er/report.json");
        let r = ReportFile::open(&p).unwrap();
        assert!(p.exists(), "created before the run");
        drop(r);
        assert!(!p.exists(), "an empty report of a run that never finished is removed");
        std::fs::write(&p, "old").unwrap();
        drop(ReportFile::open(&p).unwrap());
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "old", "an existing report is kept when the run fails early");
        let r = ReportFile::open(&p).unwrap();
        r.write("{\"new\": 1}\n").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "{\"new\": 1}\n");
    }

    #[test]
    fn an_unwritable_destination_fails_before_the_run() {
        let e = ReportFile::open(Path::new("/proc/perch-cannot/report.json")).err().unwrap();
        assert!(format!("{e:#}").contains("/proc/perch-cannot"), "{e:#}");
        let e = create(Path::new("/proc/version/x.jsonl"), "--detections").unwrap_err();
        assert!(format!("{e:#}").contains("--detections /proc/version/x.jsonl"), "{e:#}");
    }
}
