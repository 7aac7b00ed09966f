//! The ROS 2 launch files parse (Python `ast` + `compile`, XML well-formed with the expected elements),
//! set the environment variables this crate reads, and name configs that exist. The checks live in
//! `scripts/check_launch.py` (standard library only: no launch wheels exist on PyPI).

use std::path::Path;
use std::process::Command;

#[test]
fn launch_files_parse_and_name_existing_configs() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check_launch.py");
    let out = match Command::new("python3").arg(&script).output() {
        Ok(out) => out,
        Err(e) => {
            perch_pipeline::fixtures::missing(&format!("launch_files: python3 not runnable: {e}"));
            return;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "launch file checks failed:\n{text}");
    assert!(text.contains("launch: 3 passed, 0 failed"), "{text}");
}
