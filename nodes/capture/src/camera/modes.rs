//! What a camera offers (`VIDIOC_ENUM_FMT` / `ENUM_FRAMESIZES` / `ENUM_FRAMEINTERVALS`) and the choice
//! of one mode for a request. Pure: tested without a device.

use std::fmt;

use super::settings::{CameraFormat, CameraRequest};

pub const MJPG: [u8; 4] = *b"MJPG";
pub const YUYV: [u8; 4] = *b"YUYV";

/// The size perch aims for when the config names none: what most detectors are fed anyway.
const PREFERRED_AREA: u64 = 640 * 480;

/// A frame interval in seconds, `numerator / denominator` (1/30 s is 30 fps).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interval {
    pub numerator: u32,
    pub denominator: u32,
}

impl Interval {
    pub fn fps(self) -> f64 {
        if self.numerator == 0 {
            return 0.0;
        }
        self.denominator as f64 / self.numerator as f64
    }

    /// nokhwa 0.10 sets frame rates as whole numbers: only `1/N`-like intervals can be requested.
    pub fn whole_fps(self) -> Option<u32> {
        (self.numerator > 0 && self.denominator.is_multiple_of(self.numerator)).then(|| self.denominator / self.numerator)
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fps = self.fps();
        if (fps - fps.round()).abs() < 1e-9 {
            write!(f, "{}", fps.round() as u64)
        } else {
            write!(f, "{fps:.2}")
        }
    }
}

/// One frame size of a pixel format and the intervals offered at it.
#[derive(Clone, Debug, PartialEq)]
pub struct SizeModes {
    pub width: u32,
    pub height: u32,
    /// Fastest first.
    pub intervals: Vec<Interval>,
}

/// One pixel format the camera offers.
#[derive(Clone, Debug, PartialEq)]
pub struct FormatModes {
    pub fourcc: [u8; 4],
    /// The driver's description, e.g. `Motion-JPEG`.
    pub description: String,
    pub sizes: Vec<SizeModes>,
}

pub fn fourcc_str(f: [u8; 4]) -> String {
    f.iter().map(|&b| if b.is_ascii_graphic() || b == b' ' { b as char } else { '?' }).collect::<String>().trim_end().to_string()
}

/// The mode picked for a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Choice {
    pub fourcc: [u8; 4],
    pub width: u32,
    pub height: u32,
    pub interval: Interval,
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}x{} @ {} fps", fourcc_str(self.fourcc), self.width, self.height, self.interval)
    }
}

/// Everything offered, one format per line: `MJPG (Motion-JPEG): 1280x720 @ 30, 15 fps; 640x480 @ 30 fps`.
pub fn describe_offer(offered: &[FormatModes]) -> String {
    if offered.is_empty() {
        return "no video capture formats".to_string();
    }
    offered
        .iter()
        .map(|f| {
            let sizes: Vec<String> = f
                .sizes
                .iter()
                .map(|s| {
                    let rates: Vec<String> = s.intervals.iter().map(|i| i.to_string()).collect();
                    format!("{}x{} @ {} fps", s.width, s.height, rates.join(", "))
                })
                .collect();
            format!("{} ({}): {}", fourcc_str(f.fourcc), f.description, sizes.join("; "))
        })
        .collect::<Vec<_>>()
        .join("\n  ")
}

/// Pick the mode to request: the configured format (or, for `auto`, MJPEG and YUYV), the configured
/// size (or the offered one nearest 640x480 by area, the larger on a tie), the configured rate (or
/// the fastest at that size); among what is left, the fastest, then YUYV before MJPEG. Errors say
/// what was asked and list everything the camera offers.
pub fn negotiate(req: &CameraRequest, offered: &[FormatModes]) -> Result<Choice, String> {
    let wanted: &[[u8; 4]] = match req.format {
        CameraFormat::Auto => &[YUYV, MJPG],
        CameraFormat::Mjpeg => &[MJPG],
        CameraFormat::Yuyv => &[YUYV],
    };
    let offer = || describe_offer(offered);
    let formats: Vec<&FormatModes> = offered.iter().filter(|f| wanted.contains(&f.fourcc)).collect();
    if formats.is_empty() {
        let names: Vec<String> = wanted.iter().map(|f| fourcc_str(*f)).collect();
        return Err(format!(
            "the camera does not offer {} (perch reads MJPG and YUYV); it offers:\n  {}",
            names.join(" or "),
            offer()
        ));
    }
    // (fourcc, width, height, interval) for every requestable mode.
    let mut modes: Vec<Choice> = Vec::new();
    for f in &formats {
        for s in &f.sizes {
            for &interval in &s.intervals {
                if interval.whole_fps().is_some() {
                    modes.push(Choice { fourcc: f.fourcc, width: s.width, height: s.height, interval });
                }
            }
        }
    }
    let fmt_names = formats.iter().map(|f| fourcc_str(f.fourcc)).collect::<Vec<_>>().join("/");
    if modes.is_empty() {
        return Err(format!("the camera offers no whole frame rate in {fmt_names} (nokhwa 0.10 sets whole rates only); it offers:\n  {}", offer()));
    }
    let (w, h) = match req.size {
        Some(size) => {
            if !modes.iter().any(|m| (m.width, m.height) == size) {
                return Err(format!("the camera offers no {}x{} in {fmt_names}; it offers:\n  {}", size.0, size.1, offer()));
            }
            size
        }
        None => {
            let key = |m: &Choice| {
                let area = m.width as u64 * m.height as u64;
                (area.abs_diff(PREFERRED_AREA), std::cmp::Reverse(area))
            };
            let best = modes.iter().min_by_key(|m| key(m)).expect("modes is not empty");
            (best.width, best.height)
        }
    };
    modes.retain(|m| (m.width, m.height) == (w, h));
    if let Some(fps) = req.fps {
        let at_size: Vec<String> = modes.iter().map(|m| format!("{} {}", fourcc_str(m.fourcc), m.interval)).collect();
        modes.retain(|m| (m.interval.fps() - fps).abs() < 0.01);
        if modes.is_empty() {
            return Err(format!(
                "the camera offers no {fps} fps at {w}x{h} in {fmt_names} (at this size: {} fps); it offers:\n  {}",
                at_size.join(", "),
                offer()
            ));
        }
    }
    let rank = |m: &Choice| (m.interval.fps(), if m.fourcc == YUYV { 1 } else { 0 });
    let best = modes.iter().copied().max_by(|a, b| rank(a).partial_cmp(&rank(b)).unwrap_or(std::cmp::Ordering::Equal));
    Ok(best.expect("modes is not empty"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::settings::{DeviceSpec, Reconnect};
    use std::time::Duration;

    fn iv(fps: &[u32]) -> Vec<Interval> {
        fps.iter().map(|&d| Interval { numerator: 1, denominator: d }).collect()
    }

    /// A USB 2 webcam: MJPEG fast at every size, YUYV slow at large sizes.
    fn webcam() -> Vec<FormatModes> {
        vec![
            FormatModes {
                fourcc: YUYV,
                description: "YUYV 4:2:2".into(),
                sizes: vec![
                    SizeModes { width: 640, height: 480, intervals: iv(&[30, 15]) },
                    SizeModes { width: 1280, height: 720, intervals: iv(&[10, 5]) },
                ],
            },
            FormatModes {
                fourcc: MJPG,
                description: "Motion-JPEG".into(),
                sizes: vec![
                    SizeModes { width: 640, height: 480, intervals: iv(&[30, 15]) },
                    SizeModes { width: 1280, height: 720, intervals: iv(&[30, 15]) },
                    SizeModes { width: 1920, height: 1080, intervals: iv(&[30]) },
                ],
            },
        ]
    }

    fn req(format: CameraFormat, size: Option<(u32, u32)>, fps: Option<f64>) -> CameraRequest {
        CameraRequest {
            device: DeviceSpec::Index(0),
            format,
            size,
            fps,
            timeout: Duration::from_secs(2),
            reconnect_every: Duration::from_secs(1),
            reconnect: Reconnect::Always,
            end_frame: None,
        }
    }

    fn pick(format: CameraFormat, size: Option<(u32, u32)>, fps: Option<f64>) -> String {
        negotiate(&req(format, size, fps), &webcam()).map(|c| c.to_string()).unwrap_or_else(|e| e)
    }

    #[test]
    fn auto_prefers_the_faster_format_and_yuyv_on_a_tie() {
        assert_eq!(pick(CameraFormat::Auto, None, None), "YUYV 640x480 @ 30 fps");
        assert_eq!(pick(CameraFormat::Auto, Some((1280, 720)), None), "MJPG 1280x720 @ 30 fps");
        assert_eq!(pick(CameraFormat::Auto, Some((1280, 720)), Some(10.0)), "YUYV 1280x720 @ 10 fps");
        assert_eq!(pick(CameraFormat::Auto, Some((1920, 1080)), None), "MJPG 1920x1080 @ 30 fps");
    }

    #[test]
    fn a_named_format_is_kept() {
        assert_eq!(pick(CameraFormat::Mjpeg, None, None), "MJPG 640x480 @ 30 fps");
        assert_eq!(pick(CameraFormat::Yuyv, Some((1280, 720)), None), "YUYV 1280x720 @ 10 fps");
        assert_eq!(pick(CameraFormat::Mjpeg, None, Some(15.0)), "MJPG 640x480 @ 15 fps");
    }

    #[test]
    fn without_a_size_the_one_nearest_640x480_is_taken() {
        let only_big = vec![FormatModes {
            fourcc: MJPG,
            description: "Motion-JPEG".into(),
            sizes: vec![
                SizeModes { width: 1920, height: 1080, intervals: iv(&[30]) },
                SizeModes { width: 800, height: 600, intervals: iv(&[30]) },
                SizeModes { width: 320, height: 240, intervals: iv(&[30]) },
            ],
        }];
        let c = negotiate(&req(CameraFormat::Auto, None, None), &only_big).unwrap();
        assert_eq!((c.width, c.height), (800, 600));
    }

    #[test]
    fn an_unsupported_size_lists_the_offer() {
        let e = pick(CameraFormat::Yuyv, Some((1920, 1080)), None);
        assert!(e.starts_with("the camera offers no 1920x1080 in YUYV; it offers:"), "{e}");
        assert!(e.contains("YUYV (YUYV 4:2:2): 640x480 @ 30, 15 fps; 1280x720 @ 10, 5 fps"), "{e}");
        assert!(e.contains("MJPG (Motion-JPEG): 640x480 @ 30, 15 fps; 1280x720 @ 30, 15 fps; 1920x1080 @ 30 fps"), "{e}");
    }

    #[test]
    fn an_unsupported_rate_lists_the_rates_at_that_size() {
        let e = pick(CameraFormat::Yuyv, Some((1280, 720)), Some(30.0));
        assert!(e.starts_with("the camera offers no 30 fps at 1280x720 in YUYV (at this size: YUYV 10, YUYV 5 fps)"), "{e}");
    }

    #[test]
    fn a_missing_format_says_what_perch_reads() {
        let h264 = vec![FormatModes {
            fourcc: *b"H264",
            description: "H.264".into(),
            sizes: vec![SizeModes { width: 1920, height: 1080, intervals: iv(&[30]) }],
        }];
        let e = negotiate(&req(CameraFormat::Auto, None, None), &h264).unwrap_err();
        assert!(e.starts_with("the camera does not offer YUYV or MJPG (perch reads MJPG and YUYV)"), "{e}");
        assert!(e.contains("H264 (H.264): 1920x1080 @ 30 fps"), "{e}");
        let e = negotiate(&req(CameraFormat::Mjpeg, None, None), &webcam()[..1]).unwrap_err();
        assert!(e.starts_with("the camera does not offer MJPG"), "{e}");
    }

    #[test]
    fn fractional_rates_are_listed_but_not_requested() {
        let odd = vec![FormatModes {
            fourcc: YUYV,
            description: "YUYV 4:2:2".into(),
            sizes: vec![SizeModes {
                width: 640,
                height: 480,
                intervals: vec![Interval { numerator: 1001, denominator: 30000 }, Interval { numerator: 2, denominator: 15 }],
            }],
        }];
        let e = negotiate(&req(CameraFormat::Auto, None, None), &odd).unwrap_err();
        assert!(e.contains("no whole frame rate") && e.contains("640x480 @ 29.97, 7.50 fps"), "{e}");
    }
}
