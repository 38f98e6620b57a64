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
/// the y axis instead, one row each, with their labels at the left.
pub fn bar_chart(path: &Path, chart: &BarChart) -> Result<()> {
    ensure_font()?;
    let n = chart.categories.len().max(1);
    let groups = chart.series.len().max(1) as f64;
    let top = chart.series.iter().flat_map(|s| s.1.iter().copied()).filter(|v| v.is_finite()).fold(0f64, f64::max);
    let y1 = if top > 0.0 { top * 1.05 } else { 1.0 };
    let longest = label_width(chart.categories.iter().map(|c| c.chars().count()).max().unwrap_or(0));
    if 130 + n * longest.max(95) > WIDE {
        return horizontal_bar_chart(path, chart, y1, longest as u32);
    }
    let label = longest.max(95);
    let width = (SIZE.0).max(130 + (n * label) as u32);
    render(path, |tmp| {
        let root = BitMapBackend::new(tmp, (width, SIZE.1)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut c = ChartBuilder::on(&root)
            .caption(&chart.title, ("sans-serif", 24))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(90)
            .build_cartesian_2d(-0.5f64..n as f64 - 0.5, 0f64..y1)?;
        let cats = chart.categories.clone();
        c.configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&|x| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 {
                    cats.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .x_label_style(("sans-serif", 11))
            .y_desc(chart.y_label.as_str())
            .label_style(("sans-serif", 13))
            .draw()?;
        for (si, (name, values)) in chart.series.iter().enumerate() {
            let color = COLORS[si % COLORS.len()];
            let bar_w = 0.8 / groups;
            let bars = values.iter().enumerate().filter(|(_, v)| v.is_finite()).map(move |(i, &v)| {
                let x0 = i as f64 - 0.4 + si as f64 * bar_w;
                Rectangle::new([(x0, 0.0), (x0 + bar_w, v)], color.filled())
            });
            c.draw_series(bars)?
                .label(name.as_str())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], color.filled()));
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

/// [`bar_chart`] with the categories down the y axis (the first at the top), one row of bars
/// each, their labels (`label_px` wide) at the left, and the values along the x axis up to `x1`.
fn horizontal_bar_chart(path: &Path, chart: &BarChart, x1: f64, label_px: u32) -> Result<()> {
    let n = chart.categories.len().max(1);
    let groups = chart.series.len().max(1) as f64;
    let row_px = (8 * chart.series.len().max(1) + 10) as u32;
    let height = 140 + n as u32 * row_px;
    render(path, |tmp| {
        let root = BitMapBackend::new(tmp, (SIZE.0, height)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut c = ChartBuilder::on(&root)
            .caption(&chart.title, ("sans-serif", 24))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(label_px + 10)
            .build_cartesian_2d(0f64..x1, -0.5f64..n as f64 - 0.5)?;
        // Row `i` from the top is category `i`.
        let cats = chart.categories.clone();
        c.configure_mesh()
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&|y| {
                let i = y.round();
                if (y - i).abs() < 1e-6 && i >= 0.0 {
                    cats.get(n - 1 - i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_label_style(("sans-serif", 11))
            .x_desc(chart.y_label.as_str())
            .label_style(("sans-serif", 13))
            .draw()?;
        for (si, (name, values)) in chart.series.iter().enumerate() {
            let color = COLORS[si % COLORS.len()];
            let bar_h = 0.8 / groups;
            let bars = values.iter().enumerate().filter(|(_, v)| v.is_finite()).map(move |(i, &v)| {
                let y0 = (n - 1 - i) as f64 + 0.4 - (si + 1) as f64 * bar_h;
                Rectangle::new([(0.0, y0), (v, y0 + bar_h)], color.filled())
            });
            c.draw_series(bars)?
                .label(name.as_str())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], color.filled()));
        }
        c.configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
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
