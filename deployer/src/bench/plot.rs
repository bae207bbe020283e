//! `plot.png`: throughput, publish-to-visible latency and queue depth over
//! the run, one panel each, so people can look rather than read.

use std::path::Path;

use anyhow::{anyhow, bail, Context, Result};
use plotters::prelude::*;

use super::report::BenchResult;

/// Font files tried, in order, for the plot's text (Debian's fonts-dejavu-core first).
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

fn register_font() -> Result<()> {
    use std::sync::OnceLock;
    static DONE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| {
        let path = FONTS
            .iter()
            .find(|p| Path::new(p).exists())
            .ok_or_else(|| {
                format!(
                    "no font for the plot (tried {}); install fonts-dejavu-core",
                    FONTS.join(", ")
                )
            })?;
        let bytes: &'static [u8] = Box::leak(
            std::fs::read(path)
                .map_err(|e| format!("{path}: {e}"))?
                .into_boxed_slice(),
        );
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| format!("{path}: not a usable font"))
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

/// Per-interval rates of a cumulative counter: (t, delta/dt) between consecutive samples.
pub fn rates(points: &[(f64, u64)]) -> Vec<(f64, f64)> {
    points
        .windows(2)
        .filter(|w| w[1].0 > w[0].0)
        .map(|w| {
            (
                w[1].0,
                w[1].1.saturating_sub(w[0].1) as f64 / (w[1].0 - w[0].0),
            )
        })
        .collect()
}

/// Draw the three panels into `path` (PNG, 1200x1000).
pub fn draw(result: &BenchResult, path: &Path) -> Result<()> {
    register_font()?;
    let tl = &result.timeline;
    if tl.len() < 2 {
        bail!("not enough samples to plot ({})", tl.len());
    }
    let t_max = tl.last().map(|s| s.t).unwrap_or(1.0).max(1.0);
    let series = |f: fn(&super::report::Sample) -> u64| {
        rates(&tl.iter().map(|s| (s.t, f(s))).collect::<Vec<_>>())
    };
    let published = series(|s| s.published);
    let acked = series(|s| s.acked);
    let fired = series(|s| s.fired);
    let p50: Vec<(f64, f64)> = tl
        .iter()
        .filter_map(|s| s.latency_p50_ms.map(|v| (s.t, v)))
        .collect();
    let p99: Vec<(f64, f64)> = tl
        .iter()
        .filter_map(|s| s.latency_p99_ms.map(|v| (s.t, v)))
        .collect();
    let cells = tl.iter().map(|s| s.queue_depth.len()).max().unwrap_or(0);
    let depth: Vec<Vec<(f64, f64)>> = (0..cells)
        .map(|c| {
            tl.iter()
                .map(|s| (s.t, s.queue_depth.get(c).copied().unwrap_or(0) as f64))
                .collect()
        })
        .collect();

    let root = BitMapBackend::new(path, (1200, 1000)).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let title = format!(
        "stv3 bench: {} notifications, {} cells, {} workers; end to end {:.0}/s, p99 {:.0} ms",
        result.published,
        result.cells,
        result.workers,
        result.end_to_end_rate,
        result.latency.p99_ms
    );
    let root = root.titled(&title, ("sans-serif", 22)).map_err(plot_err)?;
    let panels = root.split_evenly((3, 1));

    let y_max = published
        .iter()
        .chain(&acked)
        .chain(&fired)
        .map(|p| p.1)
        .fold(1.0, f64::max)
        * 1.1;
    let mut c = chart(&panels[0], "throughput", t_max, 0.0..y_max, "per second")?;
    for (data, color, label) in [
        (&published, BLUE, "published/s"),
        (&acked, GREEN, "acked (stored + archived)/s"),
        (&fired, RED, "streams fired or expired/s"),
    ] {
        line(&mut c, data, color, label)?;
    }
    legend(&mut c)?;

    let y_max = p99.iter().chain(&p50).map(|p| p.1).fold(1.0, f64::max) * 1.1;
    let mut c = chart(
        &panels[1],
        "publish -> visible in the API",
        t_max,
        0.0..y_max,
        "ms",
    )?;
    line(&mut c, &p50, BLUE, "p50 per interval")?;
    line(&mut c, &p99, RED, "p99 per interval")?;
    legend(&mut c)?;

    let y_max = depth.iter().flatten().map(|p| p.1).fold(1.0, f64::max) * 1.1;
    let mut c = chart(&panels[2], "queue depth", t_max, 0.0..y_max, "messages")?;
    for (i, d) in depth.iter().enumerate() {
        line(
            &mut c,
            d,
            Palette99::pick(i).to_rgba(),
            &format!("cell{}", i + 1),
        )?;
    }
    legend(&mut c)?;
    root.present()
        .with_context(|| format!("write {}", path.display()))?;
    Ok(())
}

type Chart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

fn chart<'a, 'b>(
    area: &'a DrawingArea<BitMapBackend<'b>, plotters::coord::Shift>,
    caption: &str,
    t_max: f64,
    y: std::ops::Range<f64>,
    y_desc: &str,
) -> Result<Chart<'a, 'b>> {
    let mut c = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(35)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..t_max, y)
        .map_err(plot_err)?;
    c.configure_mesh()
        .x_desc("seconds since the first publish")
        .y_desc(y_desc)
        .draw()
        .map_err(plot_err)?;
    Ok(c)
}

fn line<C: Color>(c: &mut Chart<'_, '_>, data: &[(f64, f64)], color: C, label: &str) -> Result<()> {
    let style = ShapeStyle::from(color.to_rgba()).stroke_width(2);
    c.draw_series(LineSeries::new(data.iter().copied(), style))
        .map_err(plot_err)?
        .label(label)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
    Ok(())
}

fn legend<'a, 'b: 'a>(c: &mut Chart<'a, 'b>) -> Result<()> {
    c.configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(plot_err)
}

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plot: {e:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_deltas_over_time() {
        assert_eq!(
            rates(&[(0.0, 0), (2.0, 100), (4.0, 100), (4.0, 500), (5.0, 600)]),
            vec![(2.0, 50.0), (4.0, 0.0), (5.0, 100.0)]
        );
        assert!(rates(&[(1.0, 5)]).is_empty());
    }
}
