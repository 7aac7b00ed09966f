//! The layout a viewer opens with: the camera with its overlays beside the latency and drop plots.

use rerun::blueprint::{Blueprint, Horizontal, Spatial2DView, TimeSeriesView, Vertical};

use crate::logger::paths;

pub fn default_blueprint() -> Blueprint {
    let camera = Spatial2DView::new("camera").with_origin(paths::IMAGE);
    let latency = TimeSeriesView::new("latency per stage (ms)").with_origin(paths::LATENCY);
    let drops = TimeSeriesView::new("dropped frames and deadline misses (cumulative)")
        .with_origin("metrics")
        .with_contents([format!("+ /{}/**", paths::DROPS), format!("+ /{}", paths::DEADLINE_MISSES)]);
    Blueprint::new(
        Horizontal::new([camera.into(), Vertical::new([latency.into(), drops.into()]).with_row_shares([2.0, 1.0]).into()])
            .with_column_shares([3.0, 2.0]),
    )
}
