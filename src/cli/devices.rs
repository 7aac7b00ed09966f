//! `perch devices`: the cameras present, with their formats, sizes and frame rates.

use std::process::ExitCode;

use clap::Args;

#[derive(Args)]
pub struct DevicesArgs {}

#[cfg(feature = "camera")]
pub fn run(_: &DevicesArgs) -> anyhow::Result<ExitCode> {
    use perch_capture::camera::modes::fourcc_str;

    let cameras = perch_capture::camera::list();
    if cameras.is_empty() {
        println!(
            "no cameras found (no /dev/video* device nodes). Plug a USB camera in and check `ls /dev/video*`; \
             the user needs to be in group `video`."
        );
        return Ok(ExitCode::SUCCESS);
    }
    for cam in &cameras {
        let driver = cam.driver.as_ref().map(|(d, bus)| format!(" (driver {d}, {bus})")).unwrap_or_default();
        println!("{}: {}{driver}", cam.path, cam.name);
        for alias in &cam.aliases {
            println!("  also: {alias}");
        }
        match &cam.formats {
            Err(e) => println!("  cannot be opened: {e}"),
            Ok(formats) if !cam.capture || formats.is_empty() => {
                println!("  no video capture formats (a camera's metadata node, or not a camera)")
            }
            Ok(formats) => {
                for f in formats {
                    println!("  {} ({})", fourcc_str(f.fourcc), f.description);
                    for s in &f.sizes {
                        let rates: Vec<String> = s.intervals.iter().map(|i| i.to_string()).collect();
                        println!("    {}x{} @ {} fps", s.width, s.height, rates.join(", "));
                    }
                }
                if !cam.controls.is_empty() {
                    println!("  controls: {}", cam.controls.join(", "));
                }
                println!("  run: perch run --source {}", cam.path);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(not(feature = "camera"))]
pub fn run(_: &DevicesArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("perch devices: {}", perch_capture::camera::NO_CAMERA_SUPPORT)
}
