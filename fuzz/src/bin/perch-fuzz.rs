//! The stable fuzz driver (no special toolchain or flags):
//!
//! * `perch-fuzz list`: the targets.
//! * `perch-fuzz run TARGET PATH...`: run files (or every file of folders) through a target; exit 1
//!   if any panics. How a crash found by AFL++ is reproduced and how regressions are replayed.
//! * `perch-fuzz mutate [--target T]... [--seconds N] [--seed S] [--max-execs N]`: the seeded
//!   mutation loop over `corpus/<target>/` and `regressions/<target>/`, time split evenly between
//!   the targets; inputs that panic are saved to `crashes/<target>/`. Exit 1 if any did.
//! * `perch-fuzz seeds`: (re)write the generated seeds (ONNX, raw frames, model) into `corpus/`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use perch_fuzz::mutate::{mutate, Rng};
use perch_fuzz::{run_caught, Target, TARGETS};

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

fn corpus(t: &Target) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = ["corpus", "regressions"]
        .iter()
        .flat_map(|d| files_in(&fuzz_dir().join(d).join(t.name)))
        .filter_map(|p| std::fs::read(p).ok())
        .collect();
    if v.is_empty() {
        v.push(Vec::new());
    }
    v
}

fn arg_value(args: &[String], key: &str) -> Vec<String> {
    args.windows(2).filter(|w| w[0] == key).map(|w| w[1].clone()).collect()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        Some("list") => {
            for t in TARGETS {
                println!("{:<10} {}", t.name, t.about);
            }
            0
        }
        Some("run") if args.len() >= 3 => run(&args[1], &args[2..]),
        Some("mutate") => mutate_all(&args[1..]),
        Some("seeds") => match perch_fuzz::seeds::write_all(&fuzz_dir().join("corpus")) {
            Ok(n) => {
                println!("wrote {n} generated seeds under fuzz/corpus/");
                0
            }
            Err(e) => {
                eprintln!("seeds: {e:#}");
                1
            }
        },
        _ => {
            eprintln!("usage: perch-fuzz list | run TARGET PATH... | mutate [--target T]... [--seconds N] [--seed S] [--max-execs N] | seeds");
            2
        }
    };
    std::process::exit(code);
}

fn run(name: &str, paths: &[String]) -> i32 {
    let Some(t) = perch_fuzz::target(name) else {
        eprintln!("unknown target {name:?} (perch-fuzz list)");
        return 2;
    };
    let mut failed = 0;
    let mut n = 0;
    for p in paths {
        let p = Path::new(p);
        let files = if p.is_dir() { files_in(p) } else { vec![p.to_path_buf()] };
        for f in files {
            let data = std::fs::read(&f).unwrap_or_else(|e| panic!("reading {}: {e}", f.display()));
            n += 1;
            if let Err(msg) = run_caught(t, &data) {
                eprintln!("FAIL {} {}: {msg}", t.name, f.display());
                failed += 1;
            }
        }
    }
    println!("{name}: {n} inputs, {failed} failed");
    (failed > 0) as i32
}

fn mutate_all(args: &[String]) -> i32 {
    let wanted = arg_value(args, "--target");
    let seconds: f64 = arg_value(args, "--seconds").first().map_or(60.0, |s| s.parse().expect("--seconds N"));
    let seed: u64 = arg_value(args, "--seed").first().map_or(1, |s| s.parse().expect("--seed S"));
    let max_execs: u64 = arg_value(args, "--max-execs").first().map_or(u64::MAX, |s| s.parse().expect("--max-execs N"));
    let targets: Vec<&Target> = TARGETS.iter().filter(|t| wanted.is_empty() || wanted.iter().any(|w| w == t.name)).collect();
    if targets.is_empty() {
        eprintln!("no such target: {wanted:?} (perch-fuzz list)");
        return 2;
    }
    // 6 GiB of address space (a Jetson-class memory): an unbounded allocation aborts the run.
    perch_fuzz::limit_memory(6 << 30);
    // Panics are expected and reported by us; keep the default hook's backtraces out of the log.
    std::panic::set_hook(Box::new(|_| {}));
    let slice = Duration::from_secs_f64(seconds / targets.len() as f64);
    let mut failures = 0;
    for t in targets {
        let seeds = corpus(t);
        let mut rng = Rng::new(seed);
        let (start, mut execs, mut crashes, mut slowest) = (Instant::now(), 0u64, 0u64, Duration::ZERO);
        // Every seed as it is first, then mutations of random seeds.
        while start.elapsed() < slice && execs < max_execs {
            let input = if (execs as usize) < seeds.len() {
                seeds[execs as usize].clone()
            } else {
                let a = &seeds[rng.below(seeds.len())];
                let b = &seeds[rng.below(seeds.len())];
                mutate(&mut rng, a, b, t.max_len)
            };
            let t0 = Instant::now();
            let result = run_caught(t, &input);
            slowest = slowest.max(t0.elapsed());
            execs += 1;
            if let Err(msg) = result {
                crashes += 1;
                let dir = fuzz_dir().join("crashes").join(t.name);
                let _ = std::fs::create_dir_all(&dir);
                let file = dir.join(format!("seed{seed}-exec{execs}"));
                let _ = std::fs::write(&file, &input);
                eprintln!("CRASH {} (seed {seed}, exec {execs}): {msg}\n  input saved to {}", t.name, file.display());
                if crashes >= 5 {
                    break;
                }
            }
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{:<10} {execs:>9} execs in {secs:>5.1} s ({:>7.0}/s), {} seeds, slowest input {:.1} ms, {crashes} crashes",
            t.name,
            execs as f64 / secs.max(1e-9),
            seeds.len(),
            slowest.as_secs_f64() * 1e3
        );
        failures += crashes;
    }
    (failures > 0) as i32
}
