//! `--plot DIR`: SVG charts of a comparison. Latency by percentile per arm on a log "nines"
//! axis, as HdrHistogram's plots draw it, and one bar chart per resource row, each bar with the
//! 95% confidence interval of its mean over repetitions.

use std::path::Path;

use hdrhistogram::Histogram;
use meshbench_formats::comparison::{Comparison, METRICS};
use plotters::prelude::*;

use crate::Error;
use crate::metrics::RepValues;

const COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

fn failed(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Write {
        path: path.display().to_string(),
        source: std::io::Error::other(e.to_string()),
    }
}

/// The 95% confidence interval of the mean of `xs` (Student's t); `None` below two values. (Not a
/// percentile bootstrap: with a benchmark's few repetitions that is far too narrow, see
/// `metrics::interval`.)
#[allow(clippy::cast_precision_loss)]
fn mean_interval(xs: &[f64]) -> Option<(f64, f64)> {
    if xs.len() < 2 {
        return None;
    }
    let n = xs.len() as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let variance = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    let half = crate::metrics::t975(n - 1.0) * (variance / n).sqrt();
    Some((mean - half, mean + half))
}

/// x of a quantile on the nines axis: 0 at p0, 1 at p90, 2 at p99, 3 at p99.9.
fn nines(q: f64) -> f64 {
    -(1.0 - q).max(1e-6).log10()
}

/// Writes `latency.svg` and one SVG per resource row into `dir`.
pub(crate) fn write(
    dir: &Path,
    comparison: &Comparison,
    latency: &[Option<Histogram<u64>>],
    reps: &[Vec<RepValues>],
) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| failed(dir, e))?;
    latency_chart(&dir.join("latency.svg"), &comparison.arms, latency)?;
    for (i, (metric, unit)) in METRICS.iter().enumerate().take(6) {
        bars(
            &dir.join(format!("{metric}.svg")),
            metric,
            unit,
            &comparison.arms,
            reps,
            i,
        )?;
    }
    Ok(())
}

// Axis positions are small (0 to 5 nines, or an arm's index): the casts cannot truncate.
#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
fn latency_chart(
    path: &Path,
    arms: &[String],
    latency: &[Option<Histogram<u64>>],
) -> Result<(), Error> {
    let series: Vec<(usize, Vec<(f64, f64)>)> = latency
        .iter()
        .enumerate()
        .filter_map(|(a, h)| {
            let h = h.as_ref().filter(|h| !h.is_empty())?;
            let points = h
                .iter_quantiles(5)
                .map(|v| {
                    (
                        nines(v.quantile_iterated_to()),
                        v.value_iterated_to() as f64 / 1000.0,
                    )
                })
                .filter(|(x, _)| *x <= 5.0)
                .collect();
            Some((a, points))
        })
        .collect();
    let max_y = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|(_, y)| *y))
        .fold(1.0_f64, f64::max);
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(path, e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Latency by percentile (from intended send time)",
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..5.0, 0.0..max_y * 1.1)
        .map_err(|e| failed(path, e))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_label_formatter(&|x: &f64| match x.round() as i64 {
            0 => "0%".to_owned(),
            1 => "90%".to_owned(),
            2 => "99%".to_owned(),
            3 => "99.9%".to_owned(),
            4 => "99.99%".to_owned(),
            _ => "99.999%".to_owned(),
        })
        .x_labels(6)
        .draw()
        .map_err(|e| failed(path, e))?;
    for (a, points) in series {
        let color = COLORS[a % COLORS.len()];
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| failed(path, e))?
            .label(arms[a].clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| failed(path, e))?;
    root.present().map_err(|e| failed(path, e))
}

#[allow(
    clippy::cast_precision_loss,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss
)]
fn bars(
    path: &Path,
    metric: &str,
    unit: &str,
    arms: &[String],
    reps: &[Vec<RepValues>],
    index: usize,
) -> Result<(), Error> {
    let scale = if unit == "bytes" {
        1.0 / 1_048_576.0
    } else {
        1.0
    };
    let shown_unit = if unit == "bytes" { "MiB" } else { unit };
    // Per arm: the mean over repetitions and its 95% confidence interval (none with one).
    let stats: Vec<Option<(f64, f64, f64)>> = reps
        .iter()
        .map(|rs| {
            let xs: Vec<f64> = rs
                .iter()
                .filter_map(|r| r.values[index])
                .map(|v| v * scale)
                .collect();
            (!xs.is_empty()).then(|| {
                let mean = xs.iter().sum::<f64>() / xs.len() as f64;
                let (low, high) = mean_interval(&xs).unwrap_or((mean, mean));
                (mean, low, high)
            })
        })
        .collect();
    let top = stats.iter().flatten().map(|s| s.2).fold(1.0_f64, f64::max) * 1.15;
    let root = SVGBackend::new(path, (640, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| failed(path, e))?;
    let n = arms.len() as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{metric} (whiskers: 95% interval of the mean)"),
            ("sans-serif", 16),
        )
        .margin(15)
        .x_label_area_size(35)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.5..n - 0.5, 0.0..top)
        .map_err(|e| failed(path, e))?;
    let names = arms.to_vec();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .y_desc(shown_unit)
        .x_labels(arms.len())
        .x_label_formatter(&|x: &f64| {
            let i = x.round();
            if (x - i).abs() < 1e-6 && i >= 0.0 {
                names.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .draw()
        .map_err(|e| failed(path, e))?;
    for (a, s) in stats.iter().enumerate() {
        let Some((mean, min, max)) = *s else { continue };
        let x = a as f64;
        let color = COLORS[a % COLORS.len()];
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(x - 0.3, 0.0), (x + 0.3, mean)],
                color.filled(),
            )))
            .map_err(|e| failed(path, e))?;
        chart
            .draw_series(std::iter::once(ErrorBar::new_vertical(
                x,
                min,
                mean,
                max,
                BLACK.stroke_width(1),
                10,
            )))
            .map_err(|e| failed(path, e))?;
    }
    root.present().map_err(|e| failed(path, e))
}
