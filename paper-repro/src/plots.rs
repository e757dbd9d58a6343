//! Line charts with error bars, written as SVG and PNG with plotters. Text needs a TrueType
//! font: DejaVu Sans (Debian's fonts-dejavu-core) or the file named by `CLOZE_PLOT_FONT`.

use anyhow::{anyhow, bail, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// One line: points (x, mean, sd); a NaN sd draws no error bar.
#[derive(Clone, Debug)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64, f64)>,
}

/// A chart's labels and axes.
#[derive(Clone, Debug)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub log_x: bool,
    /// Horizontal reference lines (label, y), drawn grey across the chart.
    pub reference: Vec<(String, f64)>,
}

/// Colour-blind-safe colours (Okabe–Ito), readable on white.
const PALETTE: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(86, 180, 233),
    RGBColor(230, 159, 0),
    RGBColor(0, 0, 0),
];

const FONT_PATHS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/Library/Fonts/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

fn font() -> Result<()> {
    static FONT: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let mut paths: Vec<PathBuf> = std::env::var_os("CLOZE_PLOT_FONT")
            .map(PathBuf::from)
            .into_iter()
            .collect();
        paths.extend(FONT_PATHS.iter().map(PathBuf::from));
        for p in &paths {
            if let Ok(bytes) = std::fs::read(p) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                return plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
                    .map_err(|_| format!("{} is not a usable TrueType font", p.display()));
            }
        }
        Err(format!(
            "no TrueType font found for the plots (tried {}); install fonts-dejavu-core or set CLOZE_PLOT_FONT",
            paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
        ))
    })
    .clone()
    .map_err(|e| anyhow!(e))
}

/// Writes `<stem>.svg` and `<stem>.png`.
pub fn line_chart(stem: &Path, chart: &Chart, series: &[Series]) -> Result<()> {
    font()?;
    let pts: Vec<(f64, f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .collect();
    if pts.is_empty() {
        bail!("{}: nothing to plot", stem.display());
    }
    let svg = stem.with_extension("svg");
    let png = stem.with_extension("png");
    {
        let root = SVGBackend::new(&svg, (800, 500)).into_drawing_area();
        draw(root, chart, series).map_err(|e| anyhow!("{}: {e}", svg.display()))?;
    }
    {
        let root = BitMapBackend::new(&png, (800, 500)).into_drawing_area();
        draw(root, chart, series).map_err(|e| anyhow!("{}: {e}", png.display()))?;
    }
    Ok(())
}

fn range(v: impl Iterator<Item = f64>, log: bool) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for x in v.filter(|x| x.is_finite()) {
        lo = lo.min(x);
        hi = hi.max(x);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if log {
        return (lo / 1.3, hi * 1.3);
    }
    let pad = ((hi - lo) * 0.08).max(hi.abs() * 1e-3).max(1e-6);
    (lo - pad, hi + pad)
}

fn draw<DB: DrawingBackend>(
    root: DrawingArea<DB, Shift>,
    chart: &Chart,
    series: &[Series],
) -> std::result::Result<(), Box<dyn std::error::Error + 'static>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let all = || series.iter().flat_map(|s| s.points.iter());
    let (x0, x1) = range(all().map(|p| p.0), chart.log_x);
    let sd = |p: &(f64, f64, f64)| if p.2.is_finite() { p.2 } else { 0.0 };
    let refs = chart.reference.iter().map(|r| r.1);
    let (y0, y1) = range(
        all().flat_map(|p| [p.1 - sd(p), p.1 + sd(p)]).chain(refs),
        false,
    );
    // the legend goes in the right-hand corner the series end farthest from: upper right when
    // their last points sit in the lower half (falling loss curves), else lower right
    let ends: Vec<f64> = series
        .iter()
        .filter_map(|s| s.points.last().map(|p| p.1))
        .collect();
    let mid = (y0 + y1) / 2.0;
    let legend_at = if !ends.is_empty() && ends.iter().all(|&y| y < mid) {
        SeriesLabelPosition::UpperRight
    } else {
        SeriesLabelPosition::LowerRight
    };
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(&chart.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(65);
    macro_rules! body {
        ($ctx:expr) => {{
            let mut ctx = $ctx;
            ctx.configure_mesh()
                .x_desc(chart.x_label.as_str())
                .y_desc(chart.y_label.as_str())
                .label_style(("sans-serif", 14))
                .axis_desc_style(("sans-serif", 16))
                .draw()?;
            for (i, s) in series.iter().enumerate() {
                let color = PALETTE[i % PALETTE.len()].to_rgba();
                let style = ShapeStyle::from(&color).stroke_width(2);
                ctx.draw_series(LineSeries::new(s.points.iter().map(|p| (p.0, p.1)), style))?
                    .label(s.label.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(
                            vec![(x, y), (x + 20, y)],
                            ShapeStyle::from(&color).stroke_width(2),
                        )
                    });
                ctx.draw_series(
                    s.points
                        .iter()
                        .map(|p| Circle::new((p.0, p.1), 3, color.filled())),
                )?;
                ctx.draw_series(
                    s.points
                        .iter()
                        .filter(|p| p.2.is_finite() && p.2 > 0.0)
                        .map(|p| ErrorBar::new_vertical(p.0, p.1 - p.2, p.1, p.1 + p.2, color, 8)),
                )?;
            }
            for (i, (label, y)) in chart.reference.iter().enumerate() {
                let grey = RGBColor(110, 110, 110).to_rgba();
                let style = ShapeStyle::from(&grey).stroke_width(1 + (i % 2) as u32);
                ctx.draw_series(LineSeries::new([(x0, *y), (x1, *y)], style))?
                    .label(label.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style));
            }
            ctx.configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .label_font(("sans-serif", 14))
                .position(legend_at.clone())
                .draw()?;
        }};
    }
    if chart.log_x {
        body!(builder.build_cartesian_2d((x0..x1).log_scale(), y0..y1)?);
    } else {
        body!(builder.build_cartesian_2d(x0..x1, y0..y1)?);
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_svg_and_png_when_a_font_exists() {
        if font().is_err() {
            eprintln!("no font on this machine: plot test skipped");
            return;
        }
        let dir = std::env::temp_dir().join(format!("cloze-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let stem = dir.join("chart");
        let s = vec![
            Series {
                label: "series-alpha".into(),
                points: vec![(1.0, 0.5, 0.1), (2.0, 0.7, f64::NAN)],
            },
            Series {
                label: "b".into(),
                points: vec![(1.0, 0.4, 0.05), (2.0, 0.6, 0.02)],
            },
        ];
        let c = Chart {
            title: "t".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            log_x: true,
            reference: vec![("reference-line".into(), 0.3)],
        };
        line_chart(&stem, &c, &s).unwrap();
        let svg = std::fs::read_to_string(stem.with_extension("svg")).unwrap();
        assert!(
            svg.contains("<svg") && svg.contains("series-alpha") && svg.contains("reference-line"),
            "legend label in the SVG"
        );
        let png = std::fs::read(stem.with_extension("png")).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
