//! PNG line charts (loss curves, Zipf plots) with plotters.
//!
//! Text needs a TrueType font: the first of `LATENT_TERMS_FONT` and a few common system
//! paths that exists is used; without one the chart is drawn without text, and a warning
//! says so, rather than failing the run that wanted the chart.

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;

use crate::error::{Error, Result};

const FONT_CANDIDATES: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
];

/// Registers a sans-serif font once; false when none is available.
fn font_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        let env = std::env::var("LATENT_TERMS_FONT").ok();
        for path in env.iter().map(String::as_str).chain(FONT_CANDIDATES) {
            if let Ok(bytes) = std::fs::read(path) {
                // plotters keeps fonts for the life of the process.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok() {
                    return true;
                }
            }
        }
        eprintln!("plot: no TrueType font found (set LATENT_TERMS_FONT); charts have no text");
        false
    })
}

/// Axis scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Linear axis.
    Linear,
    /// Base-10 logarithmic axis (non-positive values are dropped).
    Log,
}

/// A line chart of several named series over shared x values, written as a PNG.
#[derive(Clone, Debug)]
pub struct LineChart<'a> {
    /// Title above the chart.
    pub title: &'a str,
    /// X-axis label.
    pub x_label: &'a str,
    /// Y-axis label.
    pub y_label: &'a str,
    /// X scale.
    pub x_scale: Scale,
    /// Y scale.
    pub y_scale: Scale,
    /// `(name, x, y)` per series.
    pub series: Vec<(String, Vec<f64>, Vec<f64>)>,
}

fn plot_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::Plot(format!("{}: {e}", path.display()))
}

impl LineChart<'_> {
    /// Draws the chart into a 900 × 540 PNG at `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = font_ready();
        let keep = |v: f64, s: Scale| v.is_finite() && (s == Scale::Linear || v > 0.0);
        let points: Vec<(String, Vec<(f64, f64)>)> = self
            .series
            .iter()
            .map(|(name, xs, ys)| {
                let pts = xs
                    .iter()
                    .zip(ys)
                    .filter(|&(&x, &y)| keep(x, self.x_scale) && keep(y, self.y_scale))
                    .map(|(&x, &y)| (x, y))
                    .collect();
                (name.clone(), pts)
            })
            .collect();
        let all: Vec<(f64, f64)> = points.iter().flat_map(|(_, p)| p.iter().copied()).collect();
        if all.is_empty() {
            return Err(Error::Plot(format!("{}: nothing to plot", path.display())));
        }
        let range = |f: fn(&(f64, f64)) -> f64| {
            let lo = all.iter().map(f).fold(f64::INFINITY, f64::min);
            let hi = all.iter().map(f).fold(f64::NEG_INFINITY, f64::max);
            if hi > lo {
                (lo, hi)
            } else {
                (lo - 0.5 * lo.abs().max(1e-9), hi + 0.5 * hi.abs().max(1e-9))
            }
        };
        let (x0, x1) = range(|p| p.0);
        let (y0, y1) = range(|p| p.1);
        let root = BitMapBackend::new(path, (900, 540)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_err(path, e))?;
        let mut builder = ChartBuilder::on(&root);
        builder
            .margin(16)
            .x_label_area_size(if text { 40 } else { 8 })
            .y_label_area_size(if text { 64 } else { 8 });
        if text {
            builder.caption(self.title, ("sans-serif", 22));
        }
        // plotters types differ per axis kind, so each combination is spelled out.
        macro_rules! draw {
            ($xr:expr, $yr:expr) => {{
                let mut chart = builder
                    .build_cartesian_2d($xr, $yr)
                    .map_err(|e| plot_err(path, e))?;
                let mut mesh = chart.configure_mesh();
                if text {
                    mesh.x_desc(self.x_label).y_desc(self.y_label);
                } else {
                    mesh.disable_x_axis().disable_y_axis();
                }
                mesh.draw().map_err(|e| plot_err(path, e))?;
                for (i, (name, pts)) in points.iter().enumerate() {
                    let colour = Palette99::pick(i).to_rgba();
                    let series = chart
                        .draw_series(LineSeries::new(pts.iter().copied(), colour.stroke_width(2)))
                        .map_err(|e| plot_err(path, e))?;
                    if text {
                        series.label(name.as_str()).legend(move |(x, y)| {
                            PathElement::new(vec![(x, y), (x + 18, y)], colour.stroke_width(2))
                        });
                    }
                }
                if text {
                    chart
                        .configure_series_labels()
                        .background_style(WHITE.mix(0.85))
                        .border_style(BLACK)
                        .label_font(("sans-serif", 16))
                        .draw()
                        .map_err(|e| plot_err(path, e))?;
                }
            }};
        }
        match (self.x_scale, self.y_scale) {
            (Scale::Linear, Scale::Linear) => draw!(x0..x1, y0..y1),
            (Scale::Linear, Scale::Log) => draw!(x0..x1, (y0..y1).log_scale()),
            (Scale::Log, Scale::Linear) => draw!((x0..x1).log_scale(), y0..y1),
            (Scale::Log, Scale::Log) => draw!((x0..x1).log_scale(), (y0..y1).log_scale()),
        }
        root.present().map_err(|e| plot_err(path, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.png");
        let xs: Vec<f64> = (1..50).map(f64::from).collect();
        LineChart {
            title: "t",
            x_label: "x",
            y_label: "y",
            x_scale: Scale::Log,
            y_scale: Scale::Log,
            series: vec![("a".into(), xs.clone(), xs.iter().map(|x| 1.0 / x).collect())],
        }
        .save(&path)
        .unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        let empty = LineChart {
            series: vec![("a".into(), vec![], vec![])],
            ..LineChart {
                title: "t",
                x_label: "x",
                y_label: "y",
                x_scale: Scale::Linear,
                y_scale: Scale::Linear,
                series: vec![],
            }
        };
        assert!(empty.save(&path).is_err());
    }
}
