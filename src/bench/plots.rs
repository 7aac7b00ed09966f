//! `--plots DIR`: PNG figures of the bench reports, drawn with plotters into a pixel buffer (the
//! embedded font of `perch eval quant`'s scatter, no system fonts).
//! - `latency_cdf.png`: per-stage and end-to-end latency CDF of one step;
//! - `latency_over_time.png`: every published frame's end-to-end latency against time;
//! - `drop_vs_rate.png`: the sweep's drop percentage (and output rate) against the input rate.

use std::path::{Path, PathBuf};

use perch_detect::eval::plot::{draw_err as err, figure, legend, save_png, FONT};
use plotters::prelude::*;

use super::step::Step;
use super::sweep::PipelineBench;

const W: u32 = 1000;
const H: u32 = 620;
const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 96, 39),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(0, 0, 0),
];

/// Sorted values as CDF points (value, fraction <= value).
fn cdf(mut v: Vec<f64>) -> Vec<(f64, f64)> {
    v.sort_by(f64::total_cmp);
    let n = v.len() as f64;
    v.into_iter().enumerate().map(|(i, x)| (x, (i + 1) as f64 / n)).collect()
}

pub fn latency_cdf(step: &Step, title: &str, path: &Path) -> anyhow::Result<()> {
    let s = &step.samples;
    let mut series: Vec<(String, Vec<(f64, f64)>)> = step
        .stages
        .iter()
        .enumerate()
        .map(|(slot, l)| (l.stage.clone(), cdf((0..s.len()).filter_map(|i| s.stage_ms(i, slot)).collect())))
        .filter(|(_, p)| !p.is_empty())
        .collect();
    series.push(("end to end".into(), cdf((0..s.len()).map(|i| s.end_to_end_ms(i)).collect())));
    anyhow::ensure!(series.iter().any(|(_, p)| !p.is_empty()), "nothing to plot: no published frame");
    let xmax = series.iter().flat_map(|(_, p)| p.last()).map(|p| p.0).fold(1.0, f64::max) * 1.5;
    let buf = figure(W, H, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 20))
            .margin(18)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d((0.01f64..xmax).log_scale(), 0.0..1.0)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("latency per frame (ms, log scale)")
            .y_desc("fraction of published frames")
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 16))
            .draw()
            .map_err(err)?;
        for (k, (name, pts)) in series.iter().enumerate() {
            let c = COLORS[k % COLORS.len()];
            chart
                .draw_series(LineSeries::new(pts.iter().map(|&(x, y)| (x.max(0.01), y)), c.stroke_width(2)))
                .map_err(err)?
                .label(name.clone())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)
    })?;
    save_png(buf, W, H, path)
}

pub fn latency_over_time(step: &Step, title: &str, path: &Path) -> anyhow::Result<()> {
    let s = &step.samples;
    anyhow::ensure!(s.len() > 0, "nothing to plot: no published frame");
    let pts: Vec<(f64, f64)> = (0..s.len()).map(|i| (s.published_s(i), s.end_to_end_ms(i))).collect();
    let xmax = pts.iter().map(|p| p.0).fold(1.0, f64::max);
    let ymax = pts.iter().map(|p| p.1).fold(1.0, f64::max) * 1.1;
    let buf = figure(W, H, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 20))
            .margin(18)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..xmax, 0.0..ymax)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("time since the start (s)")
            .y_desc("end-to-end latency (ms)")
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 16))
            .draw()
            .map_err(err)?;
        let fresh = COLORS[0];
        let predicted = COLORS[1];
        for (want, c, label) in [(true, fresh, "frame detected"), (false, predicted, "tracker prediction")] {
            let sel: Vec<(f64, f64)> = (0..s.len()).filter(|&i| s.fresh(i) == want).map(|i| pts[i]).collect();
            if sel.is_empty() {
                continue;
            }
            chart
                .draw_series(sel.into_iter().map(|p| Circle::new(p, 2, c.filled())))
                .map_err(err)?
                .label(label)
                .legend(move |(x, y)| Circle::new((x + 8, y), 4, c.filled()));
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)
    })?;
    save_png(buf, W, H, path)
}

pub fn drop_vs_rate(b: &PipelineBench, path: &Path) -> anyhow::Result<()> {
    let mut pts: Vec<(f64, f64, f64)> = b.steps.iter().map(|s| (s.rate_fps.unwrap_or(0.0), s.drop_fraction * 100.0, s.output_fps)).collect();
    anyhow::ensure!(!pts.is_empty(), "nothing to plot: no step");
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    let xmax = pts.iter().map(|p| p.0).fold(1.0, f64::max) * 1.1;
    let ymax = pts.iter().map(|p| p.1).fold(10.0, f64::max).min(100.0) * 1.1;
    let buf = figure(W, H, |root| {
        let caption = format!("dropped frames vs input rate ({:.0} s per rate)", b.step_s);
        let mut chart = ChartBuilder::on(root)
            .caption(caption, (FONT, 20))
            .margin(18)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..xmax, 0.0..ymax)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("input rate (fps)")
            .y_desc("dropped (% of captured)")
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 16))
            .draw()
            .map_err(err)?;
        let c = COLORS[0];
        chart
            .draw_series(LineSeries::new(pts.iter().map(|p| (p.0, p.1)), c.stroke_width(2)))
            .map_err(err)?
            .label("dropped %")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        chart.draw_series(pts.iter().map(|p| Circle::new((p.0, p.1), 4, c.filled()))).map_err(err)?;
        let limit = b.max_drop_fraction * 100.0;
        let r = COLORS[1];
        chart
            .draw_series(LineSeries::new([(0.0, limit), (xmax, limit)], r.stroke_width(1)))
            .map_err(err)?
            .label(format!("limit {limit:.0} %"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], r.stroke_width(1)));
        if let Some(peak) = b.peak_rate_fps {
            let g = COLORS[2];
            chart
                .draw_series(LineSeries::new([(peak, 0.0), (peak, ymax)], g.stroke_width(1)))
                .map_err(err)?
                .label(format!("peak {peak:.1} fps"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], g.stroke_width(1)));
        }
        legend(&mut chart, SeriesLabelPosition::UpperLeft)
    })?;
    save_png(buf, W, H, path)
}

/// The files a `--plots DIR` of `perch bench pipeline` writes.
pub fn pipeline_plots(b: &PipelineBench, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let p = dir.join("drop_vs_rate.png");
    drop_vs_rate(b, &p)?;
    out.push(p);
    if let (Some(i), Some(r)) = (b.peak_step, b.peak_rate_fps) {
        let st = &b.steps[i];
        let p = dir.join("latency_cdf.png");
        latency_cdf(st, &format!("latency per stage at the peak rate, {r:.1} fps ({} frames)", st.published), &p)?;
        out.push(p);
        let p = dir.join("latency_over_time.png");
        latency_over_time(st, &format!("end-to-end latency per frame at {r:.1} fps"), &p)?;
        out.push(p);
    }
    Ok(out)
}
