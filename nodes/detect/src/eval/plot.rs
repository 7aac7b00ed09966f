//! `perch eval quant --plot FILE`: a PNG scatter of latency (median, ms) against agreement
//! mAP50-95, one point per row (variant and input size), perch's variants and the peer's apart.
//! Drawn by plotters into a pixel buffer with the DejaVu Sans font embedded in the binary (no system
//! fonts), encoded by `image`.

use std::path::Path;
use std::sync::Once;

use anyhow::{anyhow, Context};
use plotters::prelude::*;
use plotters::style::FontStyle;

use super::table::{QuantTable, Runtime};

/// The family name the embedded font is registered under (other plots of perch use it too).
pub const FONT: &str = "sans-serif";

/// Register the embedded font once (before any text is drawn).
pub fn register_font() -> anyhow::Result<()> {
    static ONCE: Once = Once::new();
    let mut res = Ok(());
    ONCE.call_once(|| {
        res = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
            .map_err(|_| anyhow!("the embedded DejaVu Sans font did not load"));
    });
    res
}

/// Draw a `w` x `h` figure on white with `draw` and return its RGB pixels (for [`save_png`]).
pub fn figure(w: u32, h: u32, draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> anyhow::Result<()>) -> anyhow::Result<Vec<u8>> {
    register_font()?;
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        draw(&root)?;
        root.present().map_err(draw_err)?;
    }
    Ok(buf)
}

/// A plotters drawing error as an anyhow error.
pub fn draw_err<E: std::error::Error + Send + Sync>(e: DrawingAreaErrorKind<E>) -> anyhow::Error {
    anyhow!("drawing the plot: {e:?}")
}

/// The legend box every perch figure uses, at `pos`.
pub fn legend<'a, CT: plotters::coord::CoordTranslate>(chart: &mut ChartContext<'a, BitMapBackend<'a>, CT>, pos: SeriesLabelPosition) -> anyhow::Result<()> {
    chart
        .configure_series_labels()
        .position(pos)
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(draw_err)
}

/// One point of the scatter.
#[derive(Clone, Debug, PartialEq)]
pub struct Point {
    pub label: String,
    pub imgsz: u32,
    pub peer: bool,
    pub latency_ms: f64,
    pub map50_95: f64,
}

/// The rows that have both a latency and an agreement mAP.
pub fn points(t: &QuantTable) -> Vec<Point> {
    t.rows
        .iter()
        .filter_map(|r| {
            Some(Point {
                label: r.variant.clone(),
                imgsz: r.imgsz,
                peer: r.runtime == Runtime::Peer,
                latency_ms: r.latency_ms.as_ref()?.median,
                map50_95: r.agreement.as_ref()?.map50_95?,
            })
        })
        .collect()
}

/// Renders the scatter as RGB pixels (`w` x `h`).
pub fn render(t: &QuantTable, w: u32, h: u32) -> anyhow::Result<Vec<u8>> {
    let pts = points(t);
    anyhow::ensure!(!pts.is_empty(), "nothing to plot: no row has both a latency and an agreement mAP");
    let xmax = pts.iter().map(|p| p.latency_ms).fold(0.0, f64::max) * 1.15;
    let ymin = pts.iter().map(|p| p.map50_95).fold(1.0, f64::min);
    let ymin = ((ymin - 0.05).max(0.0) * 20.0).floor() / 20.0;
    figure(w, h, |root| {
        let caption = format!(
            "{}: latency vs agreement mAP50-95 ({} threads, {} held-out frames)",
            t.model, t.protocol.threads, t.heldout.count
        );
        let mut chart = ChartBuilder::on(root)
            .caption(caption, (FONT, 20))
            .margin(18)
            .x_label_area_size(50)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..xmax.max(1.0), ymin..1.005)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc("latency, median per frame (ms)")
            .y_desc(format!("agreement mAP50-95 vs {}", t.protocol.reference))
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_label_formatter(&|y| format!("{y:.2}"))
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 16))
            .draw()
            .map_err(draw_err)?;
        let perch_c = RGBColor(31, 119, 180);
        let peer_c = RGBColor(214, 96, 39);
        let mut sizes: Vec<u32> = pts.iter().map(|p| p.imgsz).collect();
        sizes.sort_unstable();
        sizes.dedup();
        for (si, &size) in sizes.iter().rev().enumerate() {
            for peer in [false, true] {
                let c = if peer { peer_c } else { perch_c };
                let sel: Vec<&Point> = pts.iter().filter(|p| p.imgsz == size && p.peer == peer).collect();
                if sel.is_empty() {
                    continue;
                }
                let series = chart
                    .draw_series(sel.iter().map(|p| {
                        let marker: DynElement<_, _> = if si == 0 {
                            Circle::new((0, 0), 6, c.filled()).into_dyn()
                        } else {
                            TriangleMarker::new((0, 0), 7, c.filled()).into_dyn()
                        };
                        EmptyElement::at((p.latency_ms, p.map50_95))
                            + marker
                            + Text::new(p.label.clone(), (9, -14), (FONT, 14).into_font().color(&BLACK))
                    }))
                    .map_err(draw_err)?;
                let who = if peer { "ONNX Runtime" } else { "perch" };
                series.label(format!("{who} @{size}")).legend(move |(x, y)| {
                    if si == 0 {
                        Circle::new((x + 8, y), 5, c.filled()).into_dyn()
                    } else {
                        TriangleMarker::new((x + 8, y), 6, c.filled()).into_dyn()
                    }
                });
            }
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)
    })
}

/// Writes the scatter to `path` as PNG.
pub fn write_png(t: &QuantTable, path: &Path) -> anyhow::Result<()> {
    let (w, h) = (1000, 640);
    save_png(render(t, w, h)?, w, h, path)
}

/// Encode an RGB pixel buffer (`w` x `h`) as PNG at `path`, through a temporary name.
pub fn save_png(buf: Vec<u8>, w: u32, h: u32, path: &Path) -> anyhow::Result<()> {
    let img = image::RgbImage::from_raw(w, h, buf).context("plot buffer size")?;
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let tmp = path.with_extension("partial.png");
    img.save_with_format(&tmp, image::ImageFormat::Png).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}
