//! AFL++ driver: `PERCH_FUZZ_TARGET=<name> cargo afl fuzz -i corpus/<name> -o out/<name> target/.../perch-fuzz-afl`
//! (fuzz/run-afl.sh does all of it). Persistent mode: one process runs many inputs.

fn main() {
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
