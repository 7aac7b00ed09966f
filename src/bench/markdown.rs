//! The Markdown side of the bench reports (the JSON is the same structs, serialised).

use std::fmt::Write;

use perch_detect::eval::table::LatencyStats;

use super::cold::ColdStartBench;
use super::step::Step;
use super::sustained::SustainedBench;
use super::sweep::PipelineBench;
use super::Header;

const NA: &str = "not available";

fn ms(s: &Option<LatencyStats>) -> String {
    match s {
        Some(s) => format!("{:.1} / {:.1} / {:.1} / {:.1}", s.median, s.p95, s.p99, s.max),
        None => "–".into(),
    }
}

fn opt(v: Option<f64>, unit: &str, digits: usize) -> String {
    v.map_or(NA.to_string(), |v| format!("{v:.digits$}{unit}"))
}

pub fn header(h: &Header) -> String {
    let m = &h.machine;
    let load = |l: Option<[f64; 3]>| l.map_or(NA.to_string(), |l| format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2]));
    let mut s = String::new();
    let _ = writeln!(s, "- command: `{}`", h.command);
    let _ = writeln!(s, "- machine: {} ({} logical CPUs), load average at start {} / end {}", m.cpu, m.logical_cpus, load(m.loadavg_start), load(m.loadavg_end));
    let _ = writeln!(
        s,
        "- build: perch {} {} {}{}; kernels: f32 GEMM {}, int8 {}, preprocess {}",
        h.perch_version,
        h.build.target_arch,
        h.build.profile,
        if h.build.features.is_empty() { String::new() } else { format!(" (features {})", h.build.features.join(", ")) },
        h.kernels.detect_f32_gemm,
        h.kernels.int8,
        h.kernels.preprocess
    );
    let d = &h.detector;
    let _ = writeln!(s, "- detector: {} @{}, {} threads (0 = all cores), schedule {}, budget {:.0} ms", d.model, d.imgsz, d.threads, d.schedule, d.budget_ms);
    let _ = writeln!(s, "- input: {} ({} files, {} bytes, sha256 {})", h.input.path, h.input.files, h.input.bytes, h.input.sha256.as_deref().unwrap_or(NA));
    s
}

/// Per-stage, end-to-end and output-interval latency, CPU per thread, memory and energy of a step.
pub fn step_detail(st: &Step) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "| latency (ms) | n | p50 / p95 / p99 / max |\n|---|---:|---|");
    for l in &st.stages {
        let _ = writeln!(s, "| {} | {} | {} |", l.stage, l.latency_ms.as_ref().map_or(0, |x| x.n), ms(&l.latency_ms));
    }
    let _ = writeln!(s, "| end to end (capture to publish) | {} | {} |", st.end_to_end_ms.as_ref().map_or(0, |x| x.n), ms(&st.end_to_end_ms));
    let _ = writeln!(s, "| output interval | {} | {} |", st.output_interval_ms.as_ref().map_or(0, |x| x.n), ms(&st.output_interval_ms));
    let _ = writeln!(s, "\noutput jitter (std. dev. of the interval): {}\n", opt(st.jitter_ms, " ms", 2));
    for w in &st.report.workers {
        // With the async schedules the detector runs here, off the stage thread.
        let _ = writeln!(
            s,
            "side worker `{}`: {} jobs ({:.1}/s), latency p50 {:.1} / p99 {:.1} ms, duty cycle {:.2}\n",
            w.name,
            w.jobs,
            if st.wall_s > 0.0 { w.jobs as f64 / st.wall_s } else { 0.0 },
            w.latency.p50_ms,
            w.latency.p99_ms,
            w.duty_cycle
        );
    }
    let m = &st.machine;
    let _ = writeln!(s, "| thread | threads | CPU s | utilisation (1 = one core) |\n|---|---:|---:|---:|");
    for t in &m.threads {
        let _ = writeln!(s, "| {} | {} | {:.2} | {:.2} |", t.thread, t.threads, t.cpu_s, t.utilisation);
    }
    let _ = writeln!(
        s,
        "\nCPU time sampled every {} ms over {:.1} s; peak RSS {}{}; energy {}",
        m.interval_ms,
        m.window_s,
        opt(m.peak_rss_mib, " MiB", 1),
        if m.peak_rss_reset { "" } else { " (since the process started: the kernel refused the reset)" },
        match &m.energy_total {
            Some((name, j)) => format!("{j:.1} J ({name}, {})", m.energy_method.unwrap_or("?")),
            None => format!("{NA} (no readable RAPL or INA3221 counter)"),
        }
    );
    s
}

pub fn pipeline(b: &PipelineBench) -> String {
    let mut s = String::from("# perch bench pipeline\n\n");
    s += &header(&b.header);
    let _ = writeln!(s, "- method: each rate replays the input (looping) for {:.0} s; a rate passes when under {:.0} % of its frames are dropped (frames still in flight when the step ends are `shutdown`, not counted)\n", b.step_s, b.max_drop_fraction * 100.0);
    let _ = writeln!(s, "| input fps | captured | published | dropped | drop % | output fps | detector results (on own frame) | end to end p50 / p99 (ms) | pass |");
    let _ = writeln!(s, "|---:|---:|---:|---:|---:|---:|---:|---|---|");
    for st in &b.steps {
        let e = st.end_to_end_ms.as_ref().map_or("–".into(), |e| format!("{:.1} / {:.1}", e.median, e.p99));
        let _ = writeln!(
            s,
            "| {:.1} | {} | {} | {} | {:.1} | {:.1} | {} ({}) | {} | {} |",
            st.rate_fps.unwrap_or(0.0),
            st.captured,
            st.published,
            st.dropped,
            st.drop_fraction * 100.0,
            st.output_fps,
            st.detector_results,
            st.fresh,
            e,
            if st.drop_fraction < b.max_drop_fraction { "yes" } else { "no" }
        );
    }
    match (b.peak_rate_fps, b.peak_step) {
        (Some(r), Some(i)) => {
            let _ = writeln!(s, "\n**Highest input rate with < {:.0} % dropped: {r:.1} fps**{}\n", b.max_drop_fraction * 100.0, if b.capped { " (the search's upper limit: the peak is at least this)" } else { "" });
            let _ = writeln!(s, "## At {r:.1} fps\n");
            s += &step_detail(&b.steps[i]);
        }
        _ => {
            let _ = writeln!(s, "\n**No rate tried dropped fewer than {:.0} % of its frames.**", b.max_drop_fraction * 100.0);
        }
    }
    s
}

pub fn sustained(b: &SustainedBench) -> String {
    let mut s = String::from("# perch bench sustained\n\n");
    s += &header(&b.header);
    let _ = writeln!(s, "- method: one run of {:.1} min at {}, cut into {:.0} s windows\n", b.minutes, opt(b.rate_fps, " fps", 1), b.window_s);
    let _ = writeln!(s, "| window (s) | published | output fps | detector results (on own frame) | end to end p50 / p99 (ms) | hottest zone (°C) | mean CPU clock (MHz) | energy (J) | mJ / frame |");
    let _ = writeln!(s, "|---|---:|---:|---:|---|---|---:|---:|---:|");
    for w in &b.windows {
        let e = w.end_to_end_ms.as_ref().map_or("–".into(), |e| format!("{:.1} / {:.1}", e.median, e.p99));
        let t = w.max_temp.as_ref().map_or(NA.into(), |(k, v)| format!("{v:.1} ({k})"));
        let _ = writeln!(
            s,
            "| {:.0}–{:.0} | {} | {:.2} | {} ({}) | {e} | {t} | {} | {} | {} |",
            w.from_s,
            w.to_s,
            w.published,
            w.output_fps,
            w.detector_results,
            w.fresh,
            opt(w.mean_cpu_mhz, "", 0),
            opt(w.energy_j, "", 1),
            opt(w.energy_per_frame_mj, "", 1)
        );
    }
    let _ = writeln!(
        s,
        "\nlast window / first window throughput: {}; energy per frame over the run: {}; mean power: {}\n",
        opt(b.last_over_first, "", 3),
        opt(b.energy_per_frame_mj, " mJ", 1),
        opt(b.mean_power_w, " W", 2)
    );
    s += &step_detail(&b.step);
    s
}

pub fn cold_start(b: &ColdStartBench) -> String {
    let mut s = String::from("# perch bench cold-start\n\n");
    s += &header(&b.header);
    let _ = writeln!(s, "- method: `{}`, {} runs one after the other (the model file is in the page cache after the first)\n", b.child, b.runs.len());
    let _ = writeln!(s, "| run | exec → first frame (ms) | exec → first detection (ms) | model load (ms) | warm-up pass (ms) | exec → exit (ms) |\n|---:|---:|---:|---:|---:|---:|");
    for (i, r) in b.runs.iter().enumerate() {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {:.0} |",
            i + 1,
            opt(r.first_frame_ms, "", 0),
            opt(r.first_detection_ms, "", 0),
            opt(r.model_load_ms, "", 0),
            opt(r.warm_up_ms, "", 0),
            r.exit_ms
        );
    }
    let med = |x: &Option<LatencyStats>| x.as_ref().map(|x| x.median);
    let _ = writeln!(
        s,
        "\nmedian exec → first detection: {} (goal < {:.0} ms); of which model load {}, warm-up {}",
        opt(med(&b.first_detection_ms), " ms", 0),
        b.goal_ms,
        opt(med(&b.model_load_ms), " ms", 0),
        opt(med(&b.warm_up_ms), " ms", 0)
    );
    s
}
