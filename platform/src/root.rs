//! Reading `/proc` and `/sys` below a configurable root, where a missing or unreadable file is
//! `None` (never an error): every reader in this crate reports "not available" instead of failing.

use std::path::{Path, PathBuf};

/// The directory that stands for `/`: `/` on the machine itself, a fake tree in tests.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SysRoot {
    base: PathBuf,
}

impl Default for SysRoot {
    fn default() -> Self {
        Self::host()
    }
}

impl SysRoot {
    /// The running machine's own files.
    pub fn host() -> Self {
        Self { base: PathBuf::from("/") }
    }

    /// Files below `base` (e.g. a copy of a Jetson's `/proc` and `/sys` for tests).
    pub fn new(base: impl Into<PathBuf>) -> Self {
        Self { base: base.into() }
    }

    pub fn base(&self) -> &Path {
        &self.base
    }

    /// Whether this is the running machine's own `/` (then CPU features can also be asked of the CPU).
    pub fn is_host(&self) -> bool {
        self.base == Path::new("/")
    }

    /// Where the absolute path `abs` (e.g. `/proc/cpuinfo`) lives under this root.
    pub fn path(&self, abs: &str) -> PathBuf {
        self.base.join(abs.trim_start_matches('/'))
    }

    /// The file's text with surrounding whitespace and NUL bytes removed (device-tree strings end
    /// in NUL); `None` when it is missing, unreadable or not UTF-8.
    pub fn read(&self, abs: &str) -> Option<String> {
        let bytes = std::fs::read(self.path(abs)).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        Some(text.trim_matches(|c: char| c == '\0' || c.is_whitespace()).to_string())
    }

    /// The file as one integer (sysfs style: `1479000\n`).
    pub fn read_i64(&self, abs: &str) -> Option<i64> {
        self.read(abs)?.parse().ok()
    }

    /// The file as one unsigned integer.
    pub fn read_u64(&self, abs: &str) -> Option<u64> {
        self.read(abs)?.parse().ok()
    }

    /// Entries of directory `abs_dir` named `<prefix><number>` (`cpu0`, `thermal_zone3`), sorted by
    /// number; empty when the directory is missing.
    pub fn numbered(&self, abs_dir: &str, prefix: &str) -> Vec<u32> {
        let Ok(dir) = std::fs::read_dir(self.path(abs_dir)) else {
            return Vec::new();
        };
        let mut out: Vec<u32> = dir
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str()?.strip_prefix(prefix)?.parse().ok())
            .collect();
        out.sort_unstable();
        out
    }

    /// Names of the entries of directory `abs_dir`, sorted; empty when it is missing.
    pub fn names(&self, abs_dir: &str) -> Vec<String> {
        let Ok(dir) = std::fs::read_dir(self.path(abs_dir)) else {
            return Vec::new();
        };
        let mut out: Vec<String> = dir.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect();
        out.sort();
        out
    }
}

/// Parses a kernel CPU list (`0-3`, `0,2-3`, empty) into CPU numbers; `None` if malformed.
pub fn parse_cpu_list(text: &str) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                if b < a || b - a > 4096 {
                    return None;
                }
                out.extend(a..=b);
            }
            None => out.push(part.trim().parse().ok()?),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3"), Some(vec![0, 1, 2, 3]));
        assert_eq!(parse_cpu_list("0-1\n"), Some(vec![0, 1]));
        assert_eq!(parse_cpu_list("0,2-3,7"), Some(vec![0, 2, 3, 7]));
        assert_eq!(parse_cpu_list(""), Some(vec![]));
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("a"), None);
    }

    #[test]
    fn missing_files_are_none() {
        let root = SysRoot::new("/nonexistent-perch-root");
        assert_eq!(root.read("/proc/cpuinfo"), None);
        assert_eq!(root.read_u64("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq"), None);
        assert!(root.numbered("/sys/devices/system/cpu", "cpu").is_empty());
        assert_eq!(root.path("/proc/cpuinfo"), PathBuf::from("/nonexistent-perch-root/proc/cpuinfo"));
    }
}
