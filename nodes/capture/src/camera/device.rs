//! Finding, opening and configuring a V4L2 camera: nokhwa lists the cameras and sets the mode
//! (`VIDIOC_S_FMT` / `S_PARM`, checked by reading them back); the `v4l` crate (nokhwa's V4L2 layer)
//! enumerates what is offered without side effects and holds the file descriptor we stream from.

use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use anyhow::{anyhow, bail, Context as _};
use nokhwa::backends::capture::V4LCaptureDevice;
use nokhwa::utils::{ApiBackend, CameraFormat as NokhwaFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType, Resolution};
use perch_pipeline::DeviceInfo;
use v4l::capability::Flags as CapFlags;
use v4l::device::Handle;
use v4l::frameinterval::FrameIntervalEnum;
use v4l::framesize::FrameSizeEnum;
use v4l::video::Capture as _;
use v4l::Device;

use super::convert::WireFormat;
use super::modes::{fourcc_str, negotiate, Choice, FormatModes, Interval, SizeModes, MJPG, YUYV};
use super::queue::MmapQueue;
use super::settings::{CameraRequest, DeviceSpec};

const EBUSY: i32 = 16;

/// A resolved camera node: `/dev/video<index>`, and the name it was found by.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node {
    pub index: u32,
    pub path: String,
    /// The configured name when it was a link (`/dev/v4l/by-id/...`).
    pub via: Option<String>,
}

impl std::fmt::Display for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.via {
            Some(via) => write!(f, "{via} -> {}", self.path),
            None => f.write_str(&self.path),
        }
    }
}

fn node_index(path: &Path) -> Option<u32> {
    let digits = path.to_str()?.strip_prefix("/dev/video")?;
    (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then(|| digits.parse().ok()).flatten()
}

/// `a/b/../c` → `a/c` without touching the file system (the target may not exist as a file, e.g.
/// under the tests' device emulator, and `canonicalize` would fail on it).
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Which node a `source.device` means now. Links (by-id names) are followed afresh every call, so
/// a camera that comes back under another index is found again.
pub fn resolve(spec: &DeviceSpec) -> anyhow::Result<Node> {
    let given = match spec {
        DeviceSpec::Index(i) => return Ok(Node { index: *i, path: format!("/dev/video{i}"), via: None }),
        DeviceSpec::Path(p) => p.clone(),
    };
    let mut cur = PathBuf::from(&given);
    for _ in 0..16 {
        if let Some(index) = node_index(&cur) {
            let via = (cur != Path::new(&given)).then(|| given.clone());
            return Ok(Node { index, path: cur.display().to_string(), via });
        }
        match std::fs::read_link(&cur) {
            Ok(target) => {
                let parent = cur.parent().map(Path::to_path_buf).unwrap_or_default();
                cur = lexical(&if target.is_absolute() { target } else { parent.join(target) });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(missing(&given)),
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => bail!(
                "`{given}` is not a V4L2 camera node: expected /dev/videoN, an index (0) or a link to a node \
                 (/dev/v4l/by-id/...){}",
                if cur.as_os_str() != given.as_str() { format!("; it leads to `{}`", cur.display()) } else { String::new() }
            ),
            Err(e) => return Err(anyhow!("camera `{given}`: {e}")),
        }
    }
    bail!("camera `{given}`: too many levels of symbolic links")
}

/// The cameras present (nokhwa's V4L2 query: the `/dev/video*` nodes and their sysfs names).
pub fn present() -> Vec<(u32, String)> {
    let mut cams: Vec<(u32, String)> = nokhwa::query(ApiBackend::Video4Linux)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|info| match info.index() {
            CameraIndex::Index(i) => Some((*i, info.human_name())),
            CameraIndex::String(_) => None,
        })
        .collect();
    cams.sort();
    cams
}

fn present_list() -> String {
    let cams = present();
    if cams.is_empty() {
        return "no cameras are present (no /dev/video* nodes)".to_string();
    }
    let list: Vec<String> = cams.iter().map(|(i, name)| format!("/dev/video{i} ({name})")).collect();
    format!("cameras present: {}", list.join(", "))
}

/// "Camera X not found" with what exists instead.
pub fn missing(what: &str) -> anyhow::Error {
    anyhow!("camera `{what}` not found; {} (`perch devices` lists them with their formats)", present_list())
}

fn busy(node: &Node) -> anyhow::Error {
    anyhow!(
        "camera {node} is busy: another process is streaming from it (see which with `fuser {}`; \
         a camera serves one stream at a time)",
        node.path
    )
}

fn open_error(node: &Node, e: io::Error) -> anyhow::Error {
    match e.kind() {
        io::ErrorKind::NotFound => missing(node.via.as_deref().unwrap_or(&node.path)),
        io::ErrorKind::PermissionDenied => anyhow!(
            "permission denied opening camera {node}: add the user to group `video` \
             (`sudo usermod -aG video $USER`, then log in again)"
        ),
        _ if e.raw_os_error() == Some(EBUSY) => busy(node),
        _ => anyhow!("opening camera {node}: {e}"),
    }
}

/// Everything the device offers, fastest interval first at every size. `ENUM_*` only: no state changes.
pub fn enumerate(dev: &Device) -> io::Result<Vec<FormatModes>> {
    let mut out: Vec<FormatModes> = Vec::new();
    for f in dev.enum_formats()? {
        if out.iter().any(|o| o.fourcc == f.fourcc.repr) {
            continue;
        }
        let mut sizes = Vec::new();
        for s in dev.enum_framesizes(f.fourcc).unwrap_or_default() {
            for (w, h) in candidate_sizes(&s.size) {
                let mut intervals: Vec<Interval> = dev
                    .enum_frameintervals(f.fourcc, w, h)
                    .unwrap_or_default()
                    .into_iter()
                    .flat_map(|i| candidate_intervals(&i.interval))
                    .collect();
                intervals.sort_by(|a, b| b.fps().partial_cmp(&a.fps()).unwrap_or(std::cmp::Ordering::Equal));
                intervals.dedup();
                if !intervals.is_empty() && !sizes.iter().any(|x: &SizeModes| (x.width, x.height) == (w, h)) {
                    sizes.push(SizeModes { width: w, height: h, intervals });
                }
            }
        }
        out.push(FormatModes { fourcc: f.fourcc.repr, description: f.description.clone(), sizes });
    }
    Ok(out)
}

/// Discrete sizes as they are; a stepwise range as its ends and the usual sizes inside it.
fn candidate_sizes(size: &FrameSizeEnum) -> Vec<(u32, u32)> {
    match size {
        FrameSizeEnum::Discrete(d) => vec![(d.width, d.height)],
        FrameSizeEnum::Stepwise(s) => {
            let on_step = |v: u32, min: u32, step: u32| step == 0 || (v - min).is_multiple_of(step);
            let mut v = vec![(s.min_width, s.min_height)];
            for (w, h) in [(320, 240), (640, 480), (1280, 720), (1920, 1080)] {
                if (s.min_width..=s.max_width).contains(&w)
                    && (s.min_height..=s.max_height).contains(&h)
                    && on_step(w, s.min_width, s.step_width)
                    && on_step(h, s.min_height, s.step_height)
                {
                    v.push((w, h));
                }
            }
            v.push((s.max_width, s.max_height));
            v.dedup();
            v
        }
    }
}

/// Discrete intervals as they are; a stepwise/continuous range as its ends and the whole rates inside.
fn candidate_intervals(iv: &FrameIntervalEnum) -> Vec<Interval> {
    match iv {
        FrameIntervalEnum::Discrete(f) => vec![Interval { numerator: f.numerator, denominator: f.denominator }],
        FrameIntervalEnum::Stepwise(s) => {
            let fps = |f: &v4l::Fraction| if f.numerator == 0 { 0.0 } else { f.denominator as f64 / f.numerator as f64 };
            let (fast, slow) = (fps(&s.min), fps(&s.max));
            let mut v = vec![Interval { numerator: s.min.numerator, denominator: s.min.denominator }];
            for rate in [120, 90, 60, 50, 30, 25, 20, 15, 10, 5] {
                if (rate as f64) < fast && (rate as f64) > slow {
                    v.push(Interval { numerator: 1, denominator: rate });
                }
            }
            v.push(Interval { numerator: s.max.numerator, denominator: s.max.denominator });
            v
        }
    }
}

/// Set the chosen mode through nokhwa's V4L2 backend, which also reads it back and refuses a mode
/// the driver changed. Its device handle is closed again: V4L2 keeps the mode for the next opener.
fn apply(node: &Node, choice: &Choice) -> anyhow::Result<()> {
    let frame_format = match choice.fourcc {
        MJPG => FrameFormat::MJPEG,
        YUYV => FrameFormat::YUYV,
        other => bail!("pixel format {} is not read by perch", fourcc_str(other)),
    };
    let fps = choice.interval.whole_fps().context("nokhwa sets whole frame rates only")?;
    let format = NokhwaFormat::new(Resolution::new(choice.width, choice.height), frame_format, fps);
    let decoders = [frame_format];
    let requested = RequestedFormat::with_formats(RequestedFormatType::Exact(format), &decoders);
    match V4LCaptureDevice::new(&CameraIndex::Index(node.index), requested) {
        Ok(cam) => {
            drop(cam);
            Ok(())
        }
        Err(e) => {
            let text = e.to_string();
            if text.contains("os error 16") || text.contains("busy") {
                Err(busy(node))
            } else {
                Err(anyhow!("camera {node}: setting {choice} failed: {text}"))
            }
        }
    }
}

/// An open, configured camera with its buffers allocated (not streaming yet).
pub struct Opened {
    pub queue: MmapQueue,
    pub wire: WireFormat,
    pub interval: Interval,
    pub info: DeviceInfo,
    pub node: Node,
    /// Holds the file descriptor the queue uses; dropped after it (field order).
    _device: Device,
}

/// Resolve, open, negotiate, configure and allocate `buffers` buffers.
pub fn open(req: &CameraRequest, buffers: u32) -> anyhow::Result<Opened> {
    let node = resolve(&req.device)?;
    let device = Device::new(node.index as usize).map_err(|e| open_error(&node, e))?;
    let caps = device.query_caps().map_err(|e| anyhow!("camera {node}: VIDIOC_QUERYCAP failed: {e}"))?;
    if !caps.capabilities.contains(CapFlags::VIDEO_CAPTURE | CapFlags::STREAMING) {
        bail!(
            "{node} ({}) is not a video capture device with streaming I/O (a UVC camera's second node \
             carries metadata only; use the other one); {}",
            caps.card,
            present_list()
        );
    }
    let offered = enumerate(&device).map_err(|e| anyhow!("camera {node}: listing its formats failed: {e}"))?;
    let choice = negotiate(req, &offered).map_err(|e| anyhow!("camera {node} ({}): {e}", caps.card))?;
    apply(&node, &choice)?;
    let format = device.format().map_err(|e| anyhow!("camera {node}: VIDIOC_G_FMT failed: {e}"))?;
    let params = device.params().map_err(|e| anyhow!("camera {node}: VIDIOC_G_PARM failed: {e}"))?;
    let granted = (format.fourcc.repr, format.width, format.height);
    if granted != (choice.fourcc, choice.width, choice.height) {
        bail!(
            "camera {node} granted {} {}x{} instead of {choice}",
            fourcc_str(granted.0),
            granted.1,
            granted.2
        );
    }
    let interval = Interval { numerator: params.interval.numerator, denominator: params.interval.denominator };
    let handle: Arc<Handle> = device.handle();
    let queue = MmapQueue::new(handle, buffers).map_err(|e| match e.raw_os_error() {
        Some(EBUSY) => busy(&node),
        _ => anyhow!("camera {node}: allocating {buffers} buffers failed: {e}"),
    })?;
    let wire = WireFormat { fourcc: format.fourcc.repr, width: format.width, height: format.height, stride: format.stride };
    let info = DeviceInfo {
        path: node.path.clone(),
        card: caps.card.clone(),
        driver: caps.driver.clone(),
        bus: caps.bus.clone(),
        fourcc: fourcc_str(wire.fourcc),
        interval: [interval.numerator, interval.denominator],
        requested: req.describe(),
    };
    Ok(Opened { queue, wire, interval, info, node, _device: device })
}

/// One camera for `perch devices`.
pub struct Listing {
    pub path: String,
    pub name: String,
    /// `driver`, `bus` (from QUERYCAP), when the node could be opened.
    pub driver: Option<(String, String)>,
    /// Stable names that lead to this node (`/dev/v4l/by-id/...`, `/dev/v4l/by-path/...`).
    pub aliases: Vec<String>,
    /// What it offers, or why that could not be read.
    pub formats: Result<Vec<FormatModes>, String>,
    pub capture: bool,
    /// `name min..max (default d)` of each control.
    pub controls: Vec<String>,
}

fn aliases_of(index: u32) -> Vec<String> {
    let mut out = Vec::new();
    for dir in ["/dev/v4l/by-id", "/dev/v4l/by-path"] {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if resolve(&DeviceSpec::Path(p.display().to_string())).is_ok_and(|n| n.index == index) {
                out.push(p.display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// Every camera present, with what it offers (opened read-only in effect: `ENUM_*` and `QUERYCAP`).
pub fn list() -> Vec<Listing> {
    present()
        .into_iter()
        .map(|(index, name)| {
            let path = format!("/dev/video{index}");
            let node = Node { index, path: path.clone(), via: None };
            let mut l = Listing {
                path,
                name,
                driver: None,
                aliases: aliases_of(index),
                formats: Err(String::new()),
                capture: false,
                controls: Vec::new(),
            };
            match Device::new(index as usize) {
                Err(e) => l.formats = Err(format!("{:#}", open_error(&node, e))),
                Ok(dev) => {
                    if let Ok(caps) = dev.query_caps() {
                        l.capture = caps.capabilities.contains(CapFlags::VIDEO_CAPTURE);
                        l.name = caps.card.clone();
                        l.driver = Some((caps.driver, caps.bus));
                    }
                    l.formats = enumerate(&dev).map_err(|e| e.to_string());
                    l.controls = dev
                        .query_controls()
                        .unwrap_or_default()
                        .into_iter()
                        .map(|c| format!("{} {}..{} (default {})", c.name.to_lowercase(), c.minimum, c.maximum, c.default))
                        .collect();
                }
            }
            l
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_and_nodes_resolve_without_a_device() {
        assert_eq!(resolve(&DeviceSpec::Index(3)).unwrap().path, "/dev/video3");
        let n = resolve(&DeviceSpec::Path("/dev/video12".into())).unwrap();
        assert_eq!((n.index, n.via), (12, None));
    }

    #[test]
    fn links_are_followed_to_the_node() {
        let dir = std::env::temp_dir().join(format!("perch-resolve-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("by-id")).unwrap();
        let link = dir.join("by-id/usb-Cam-video-index0");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink("../../../../dev/video7", &link).unwrap();
        // Relative targets resolve against the link's folder, lexically: the node need not exist.
        let rel = lexical(&dir.join("by-id").join("../../../../dev/video7"));
        let n = resolve(&DeviceSpec::Path(link.display().to_string()));
        if rel == Path::new("/dev/video7") {
            let n = n.unwrap();
            assert_eq!((n.index, n.path.as_str()), (7, "/dev/video7"));
            assert_eq!(n.via.as_deref(), Some(link.to_str().unwrap()));
        }
        let abs = dir.join("by-id/abs");
        let _ = std::fs::remove_file(&abs);
        std::os::unix::fs::symlink("/dev/video5", &abs).unwrap();
        assert_eq!(resolve(&DeviceSpec::Path(abs.display().to_string())).unwrap().index, 5);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_missing_name_says_so_and_lists_what_exists() {
        let e = resolve(&DeviceSpec::Path("/dev/v4l/by-id/usb-nothing-video-index0".into())).unwrap_err().to_string();
        assert!(e.contains("camera `/dev/v4l/by-id/usb-nothing-video-index0` not found"), "{e}");
        assert!(e.contains("cameras present") || e.contains("no cameras are present"), "{e}");
        let e = resolve(&DeviceSpec::Path("/etc/hostname".into())).unwrap_err().to_string();
        assert!(e.contains("is not a V4L2 camera node"), "{e}");
    }
}
