//! AFL++ driver: `PERCH_FUZZ_TARGET=<name> cargo afl fuzz -i corpus/<name> -o out/<name> target/.../perch-fuzz-afl`
//! (fuzz/run-afl.sh does all of it). Persistent mode: one process runs many inputs.

fn main() {
    // `PERCH_FUZZ_WRITE_SEEDS=fuzz/corpus perch-fuzz-afl`: the generated seeds, as `perch-fuzz seeds`.
    if let Some(dir) = std::env::var_os("PERCH_FUZZ_WRITE_SEEDS") {
        let n = perch_fuzz::seeds::write_all(std::path::Path::new(&dir)).expect("writing seeds");
        println!("wrote {n} generated seeds");
        return;
    }
    if std::env::args().any(|a| a == "--list") {
        for t in perch_fuzz::TARGETS {
            println!("{}", t.name);
        }
        return;
    }
    let name = std::env::var("PERCH_FUZZ_TARGET").unwrap_or_default();
    let Some(target) = perch_fuzz::target(&name) else {
        let names: Vec<&str> = perch_fuzz::TARGETS.iter().map(|t| t.name).collect();
        eprintln!("PERCH_FUZZ_TARGET={name:?}: set it to one of {}", names.join(", "));
        std::process::exit(2);
    };
    afl::fuzz!(|data: &[u8]| {
        if data.len() <= target.max_len {
            (target.run)(data);
        }
    });
}
