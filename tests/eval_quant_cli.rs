//! `perch eval quant` from the command line: a tiny real run (f32 on one committed frame at 320),
//! re-rendering its report with `--from` and `--plot`, and bad input failing with exit code 2.

use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn perch(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_perch")).current_dir(repo()).args(args).output().unwrap()
}

#[test]
fn eval_quant_runs_and_rerenders() {
    let out = std::env::temp_dir().join(format!("perch-eval-quant-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let o = out.to_str().unwrap();
    let r = perch(&[
        "eval", "quant", "--variants", "f32", "--frames", "datasets/vtest/img1", "--frames-skip", "149", "--max-frames", "1",
        "--imgsz", "320", "--runs", "1", "--rounds", "1", "--warmup", "0", "--out", o, "--quiet",
    ]);
    let stdout = String::from_utf8_lossy(&r.stdout);
    assert!(r.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&r.stderr));
    assert!(stdout.contains("| f32 | perch | 320 |") && stdout.contains("| 1.0000 | 1.0000 |"), "{stdout}");
    let json = out.join("eval_quant.json");
    assert!(json.exists() && out.join("eval_quant.md").exists());
    let png = out.join("scatter.png");
    let r = perch(&["eval", "quant", "--from", json.to_str().unwrap(), "--plot", png.to_str().unwrap()]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    assert_eq!(String::from_utf8_lossy(&r.stdout), stdout, "--from prints the same table");
    assert!(std::fs::metadata(&png).unwrap().len() > 1000);
    let _ = std::fs::remove_dir_all(&out);
}

#[test]
fn eval_quant_bad_input_exits_2() {
    let r = perch(&["eval", "quant", "--variants", "f32,int8-minmax", "--calib", "datasets/vtest/img1", "--frames", "datasets/vtest/img1"]);
    assert_eq!(r.status.code(), Some(2));
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(err.contains("calibration and evaluation frames overlap"), "{err}");
    let r = perch(&["eval", "quant", "--variants", "f32,int4", "--frames", "datasets/vtest/img1"]);
    assert_eq!(r.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&r.stderr).contains("unknown variant 'int4'"));
}
