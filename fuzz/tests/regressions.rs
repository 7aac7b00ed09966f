//! Every seed and every input that once made a target fail (`regressions/<target>/`) passes every
//! target it belongs to; and the mutator is deterministic (a CI failure is reproducible from its seed).

use std::path::Path;

use perch_fuzz::mutate::{mutate, Rng};
use perch_fuzz::{run_caught, TARGETS};

#[test]
fn corpus_and_regressions_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut n = 0;
    for t in TARGETS {
        for dir in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(dir).join(t.name)) else { continue };
            for e in entries {
                let p = e.unwrap().path();
                let data = std::fs::read(&p).unwrap();
                run_caught(t, &data).unwrap_or_else(|msg| panic!("{} {}: {msg}", t.name, p.display()));
                n += 1;
            }
        }
    }
    assert!(n >= 40, "only {n} inputs");
}

#[test]
fn mutations_are_deterministic_and_bounded() {
    let seed = b"[pipeline]\nbudget_ms = 100\n".to_vec();
    let (mut a, mut b) = (Rng::new(7), Rng::new(7));
    let mut changed = 0;
    for _ in 0..1000 {
        let x = mutate(&mut a, &seed, b"fps=10", 64);
        assert_eq!(x, mutate(&mut b, &seed, b"fps=10", 64));
        assert!(x.len() <= 64);
        changed += (x != seed) as u32;
    }
    assert!(changed > 900, "{changed} of 1000 mutations changed the input");
}
