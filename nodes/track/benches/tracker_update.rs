//! Criterion: one tracker update (or coast) per iteration, in steady state, with 10, 100 and 300
//! objects. Goal: <= 0.1 ms per frame at 100 objects on one core.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use perch_track::{Tracker, TrackerKind, TrackerParams};

mod common;
use common as scene;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("tracker_update");
    for kind in [TrackerKind::Bytetrack, TrackerKind::Sort] {
        for n in [10usize, 100, 300] {
            let frames = scene::scene(n);
            let mut t = Tracker::new(TrackerParams {
                kind,
                ..TrackerParams::default()
            });
            let mut out = Vec::new();
            for f in &frames {
                t.update(f, &mut out); // warm up: all tracks confirmed
            }
            assert!(
                out.len() > n * 8 / 10,
                "{kind:?} {n}: only {} tracks",
                out.len()
            );
            let mut k = 0;
            g.bench_with_input(
                BenchmarkId::new(format!("{kind:?}").to_lowercase(), n),
                &n,
                |b, _| {
                    b.iter(|| {
                        t.update(&frames[k % frames.len()], &mut out);
                        k += 1;
                    })
                },
            );
        }
    }
    for n in [100usize] {
        let frames = scene::scene(n);
        let mut t = Tracker::new(TrackerParams::default());
        let mut out = Vec::new();
        for f in &frames {
            t.update(f, &mut out);
        }
        g.bench_with_input(BenchmarkId::new("coast", n), &n, |b, _| {
            // Alternate coast and update so tracks stay alive.
            let mut k = 0;
            b.iter(|| {
                if k % 2 == 0 {
                    t.coast(&mut out)
                } else {
                    t.update(&frames[k % frames.len()], &mut out)
                }
                k += 1;
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
