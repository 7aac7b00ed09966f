//! CPU time per thread and memory of a process, from `/proc/<pid>/task/<tid>/{stat,comm}`,
//! `/proc/<pid>/stat` and `/proc/<pid>/status` (`pid` is a number or `self`).
//!
//! CPU times in `stat` are clock ticks (`USER_HZ`); they are converted with `sysconf(_SC_CLK_TCK)` from
//! the `libc` crate (already in the workspace's dependency graph), or 100, Linux's `USER_HZ` on every
//! architecture, where that is not available.

use serde::Serialize;

use crate::root::SysRoot;

/// One thread's CPU time (user + system) so far.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ThreadTime {
    pub tid: u32,
    pub name: String,
    pub cpu_s: f64,
}

/// Every thread of process `pid` (`"self"` for this process), in tid order. Threads that exit while
/// being read are left out; empty when `/proc/<pid>/task` is not available.
pub fn thread_times(root: &SysRoot, pid: &str) -> Vec<ThreadTime> {
    let task = format!("/proc/{pid}/task");
    let tick = ticks_per_s();
    root.numbered(&task, "")
        .into_iter()
        .filter_map(|tid| {
            let stat = parse_stat(&root.read(&format!("{task}/{tid}/stat"))?)?;
            let name = root.read(&format!("{task}/{tid}/comm")).unwrap_or(stat.comm);
            Some(ThreadTime { tid, name, cpu_s: stat.ticks as f64 / tick })
        })
        .collect()
}

/// Peak resident set (`VmHWM` of `/proc/<pid>/status`), KiB.
pub fn peak_rss_kib(root: &SysRoot, pid: &str) -> Option<u64> {
    status_kib(root, pid, "VmHWM:")
}

/// Resident set now (`VmRSS`), KiB.
pub fn rss_kib(root: &SysRoot, pid: &str) -> Option<u64> {
    status_kib(root, pid, "VmRSS:")
}

/// Resets this process's `VmHWM` to its current RSS (writes `5` to `/proc/self/clear_refs`, Linux >= 4.0),
/// so a benchmark can measure the peak of one phase. `false` when not permitted or not available.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// CPU seconds (user + system) of the whole process, all threads including exited ones.
pub fn process_cpu_s(root: &SysRoot, pid: &str) -> Option<f64> {
    let stat = parse_stat(&root.read(&format!("/proc/{pid}/stat"))?)?;
    Some(stat.ticks as f64 / ticks_per_s())
}

fn status_kib(root: &SysRoot, pid: &str, key: &str) -> Option<u64> {
    let status = root.read(&format!("/proc/{pid}/status"))?;
    // `VmHWM:	   10240 kB`
    status.lines().find_map(|l| l.strip_prefix(key)?.trim().strip_suffix("kB")?.trim().parse().ok())
}

struct Stat {
    comm: String,
    /// utime + stime, clock ticks.
    ticks: u64,
}

/// `pid (comm) state ppid ...`: `comm` may hold spaces and `)`, so the fields are counted from the last
/// `)`. utime and stime are fields 14 and 15 of the line, the 12th and 13th after `comm`.
fn parse_stat(line: &str) -> Option<Stat> {
    let (head, rest) = line.rsplit_once(')')?;
    let comm = head.split_once('(')?.1.to_string();
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(Stat { comm, ticks: utime.saturating_add(stime) })
}

fn ticks_per_s() -> f64 {
    #[cfg(unix)]
    {
        // SAFETY: sysconf only reads a configuration value; it has no memory-safety preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if hz > 0 {
            return hz as f64;
        }
    }
    100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_comm() {
        let s = parse_stat("4243 (a) b (c)) R 1 2 3 0 -1 4194368 10 0 0 0 250 30 0 0 20 0 1 0 99 0 0").unwrap();
        assert_eq!((s.comm.as_str(), s.ticks), ("a) b (c)", 280));
        assert!(parse_stat("4243 (x) R 1 2").is_none(), "too few fields");
        assert!(parse_stat("garbage").is_none());
    }
}
