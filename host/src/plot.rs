//! PNG line charts for reports (training curves, sweep tables, and any other x-y series).
//! Rendering uses plotters' bitmap backend with the DejaVu Sans font bundled in
//! `host/assets/DejaVuSans.ttf` (registered once, at first use, as `sans-serif`), so no system
//! font library is needed. Files are drawn to a temporary sibling and renamed into place.

use anyhow::{anyhow, Context, Result};
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The bundled font.
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Registers the bundled font once; later calls return the first outcome.
fn ensure_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| plotters::style::register_font("sans-serif", FontStyle::Normal, FONT).is_ok());
    ok.then_some(()).ok_or_else(|| anyhow!("the bundled font host/assets/DejaVuSans.ttf could not be loaded"))
}

/// One named line of a chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend entry.
    pub name: String,
    /// `(x, y)` points in drawing order; non-finite points are skipped.
    pub points: Vec<(f64, f64)>,
}

impl Series {
    /// A series from a name and points.
    pub fn new(name: impl Into<String>, points: Vec<(f64, f64)>) -> Self {
        Self { name: name.into(), points }
    }
}

/// A line chart: title, axis labels and one or more series.
#[derive(Debug, Clone, PartialEq)]
pub struct LineChart {
    /// Title above the plot.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// The lines, drawn in order with distinct colours and a legend.
    pub series: Vec<Series>,
}

/// Line colours, in series order (cycled): a colour-blind-safe set (Okabe-Ito).
const COLORS: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(230, 159, 0),
    RGBColor(0, 158, 115),
    RGBColor(213, 94, 0),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
];

/// Picture size in pixels.
const SIZE: (u32, u32) = (900, 600);

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    let pad = if hi > lo { (hi - lo) * 0.05 } else { lo.abs().max(1.0) * 0.05 };
    (lo - pad, hi + pad)
}

/// Draws a PNG with `draw` into a temporary sibling of `path`, then renames it into place, so
/// `path` holds the whole picture or nothing.
fn render(path: &Path, draw: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let tmp: PathBuf = path.with_extension("tmp.png");
    if let Err(e) = draw(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(e.context(format!("drawing {}", path.display())));
    }
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))
}

/// Draws `chart` as a PNG at `path` (whole file or none).
pub fn line_chart(path: &Path, chart: &LineChart) -> Result<()> {
    ensure_font()?;
    let finite: Vec<Vec<(f64, f64)>> =
        chart.series.iter().map(|s| s.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect()).collect();
    let (x0, x1) = bounds(finite.iter().flatten().map(|p| p.0));
    let (y0, y1) = bounds(finite.iter().flatten().map(|p| p.1));
    render(path, |tmp| {
        let root = BitMapBackend::new(tmp, SIZE).into_drawing_area();
        root.fill(&WHITE)?;
        let mut c = ChartBuilder::on(&root)
            .caption(&chart.title, ("sans-serif", 24))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(70)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        c.configure_mesh()
            .x_desc(chart.x_label.as_str())
            .y_desc(chart.y_label.as_str())
            .label_style(("sans-serif", 15))
            .draw()?;
        for (i, (s, pts)) in chart.series.iter().zip(&finite).enumerate() {
            let color = COLORS[i % COLORS.len()];
            c.draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))?
                .label(s.name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
            c.draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))?;
        }
        c.configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 15))
            .draw()?;
        root.present()?;
        Ok(())
    })
}

/// A grouped bar chart: one group of bars per category, one bar per series in each group.
#[derive(Debug, Clone, PartialEq)]
pub struct BarChart {
    /// Title above the plot.
    pub title: String,
    /// Y axis label.
    pub y_label: String,
    /// Category labels along the x axis, in order.
    pub categories: Vec<String>,
    /// `(series name, one value per category)`; non-finite values draw no bar.
    pub series: Vec<(String, Vec<f64>)>,
}

/// Width in pixels of a category label of `chars` characters at the labels' 11-point font,
/// with a margin.
fn label_width(chars: usize) -> usize {
    7 * chars + 15
}

/// Widest picture [`bar_chart`] draws with its categories along the x axis; past it, the bars
/// run horizontally, one category per row.
const WIDE: usize = 1600;

/// Draws `chart` as a PNG at `path` (whole file or none). Group `i` is centred on coordinate
/// `i` of the category axis. The categories run along the x axis, the picture widening until
/// every label fits under its group; when that would take more than 1600 pixels, they run down
/// the y axis instead (the first at the top), one row each, with their labels at the left.
pub fn bar_chart(path: &Path, chart: &BarChart) -> Result<()> {
    ensure_font()?;
    let n = chart.categories.len().max(1);
    let groups = chart.series.len().max(1);
    let top = chart.series.iter().flat_map(|s| s.1.iter().copied()).filter(|v| v.is_finite()).fold(0f64, f64::max);
    let v1 = if top > 0.0 { top * 1.05 } else { 1.0 };
    let longest = label_width(chart.categories.iter().map(|c| c.chars().count()).max().unwrap_or(0));
    let horizontal = 130 + n * longest.max(95) > WIDE;
    // Picture size, and the label areas below and left of the plot.
    let (size, x_area, y_area) = if horizontal {
        ((SIZE.0, 140 + (n * (8 * groups + 10)) as u32), 45, longest as u32 + 10)
    } else {
        ((SIZE.0.max((130 + n * longest.max(95)) as u32), SIZE.1), 45, 90)
    };
    // Category `i`'s position on its axis (from the top when horizontal).
    let at = move |i: usize| if horizontal { (n - 1 - i) as f64 } else { i as f64 };
    let categories = -0.5f64..n as f64 - 0.5;
    render(path, |tmp| {
        let root = BitMapBackend::new(tmp, size).into_drawing_area();
        root.fill(&WHITE)?;
        let builder = ChartBuilder::on(&root)
            .caption(&chart.title, ("sans-serif", 24))
            .margin(15)
            .x_label_area_size(x_area)
            .y_label_area_size(y_area)
            .build_cartesian_2d(
                if horizontal { 0f64..v1 } else { categories.clone() },
                if horizontal { categories.clone() } else { 0f64..v1 },
            );
        let mut c = builder?;
        let cats = chart.categories.clone();
        let label = |x: &f64| {
            let p = x.round();
            let i = if horizontal { n as f64 - 1.0 - p } else { p };
            if (x - p).abs() < 1e-6 && i >= 0.0 {
                cats.get(i as usize).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        };
        let mut mesh = c.configure_mesh();
        if horizontal {
            mesh.disable_y_mesh().y_labels(n).y_label_formatter(&label).y_label_style(("sans-serif", 11));
            mesh.x_desc(chart.y_label.as_str());
        } else {
            mesh.disable_x_mesh().x_labels(n).x_label_formatter(&label).x_label_style(("sans-serif", 11));
            mesh.y_desc(chart.y_label.as_str());
        }
        mesh.label_style(("sans-serif", 13)).draw()?;
        let bar = 0.8 / groups as f64;
        for (si, (name, values)) in chart.series.iter().enumerate() {
            let color = COLORS[si % COLORS.len()];
            let bars = values.iter().enumerate().filter(|(_, v)| v.is_finite()).map(move |(i, &v)| {
                // Series in legend order: left to right, or top to bottom.
                let lo = if horizontal { at(i) + 0.4 - (si + 1) as f64 * bar } else { at(i) - 0.4 + si as f64 * bar };
                let corners = if horizontal { [(0.0, lo), (v, lo + bar)] } else { [(lo, 0.0), (lo + bar, v)] };
                Rectangle::new(corners, color.filled())
            });
            c.draw_series(bars)?
                .label(name.as_str())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], color.filled()));
        }
        c.configure_series_labels()
            .position(if horizontal { SeriesLabelPosition::LowerRight } else { SeriesLabelPosition::MiddleRight })
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 15))
            .draw()?;
        root.present()?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Width and height of the PNG at `path`, from its header.
    fn png_size(path: &Path) -> (u32, u32) {
        let bytes = std::fs::read(path).unwrap();
        let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
        (be(16), be(20))
    }

    fn chart(categories: usize, label: &str) -> BarChart {
        BarChart {
            title: "t".into(),
            y_label: "y".into(),
            categories: (0..categories).map(|i| format!("{label} {i}")).collect(),
            series: vec![("a".into(), (0..categories).map(|i| i as f64).collect()), ("b".into(), vec![1.0; categories])],
        }
    }

    #[test]
    fn bar_charts_keep_every_label_by_widening_or_turning_horizontal() {
        let dir = std::env::temp_dir().join(format!("satkit-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bars.png");
        // Short labels side by side: the default picture.
        bar_chart(&path, &chart(4, "x")).unwrap();
        assert_eq!(png_size(&path), SIZE);
        // Eight labels of 21 characters, 162 pixels each: wider, still side by side.
        bar_chart(&path, &chart(8, "a label of 18 chars")).unwrap();
        assert_eq!(png_size(&path), (130 + 8 * 162, SIZE.1));
        // Thirty of them would be 4,990 pixels wide: one row each instead, 26 pixels per row
        // (two series).
        bar_chart(&path, &chart(30, "a label of 18 chars")).unwrap();
        assert_eq!(png_size(&path), (SIZE.0, 140 + 30 * 26));
        std::fs::remove_dir_all(dir).ok();
    }
}
