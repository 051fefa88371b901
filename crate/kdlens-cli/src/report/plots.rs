//! PNG figures drawn with plotters (text with the embedded DejaVu Sans, so no system fonts are
//! needed) and encoded with `image`.

use std::{path::Path, sync::Once};

use anyhow::{Context, Result, anyhow};
use kdlens::{explain::Colormap, image::RgbaImage, metrics::ConfusionMatrix};
use plotters::prelude::*;

use crate::{fsutil::write_atomic, train::EpochRecord};

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a valid TrueType font shipped by the `dejavu` crate.
        plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
            .ok();
    });
}

/// Encodes RGBA pixels as PNG and writes them atomically.
pub fn write_png(path: &Path, image: &RgbaImage) -> Result<()> {
    let mut bytes = Vec::new();
    image::codecs::png::PngEncoder::new(&mut bytes)
        .write_image(
            image.pixels(),
            image.width() as u32,
            image.height() as u32,
            image::ExtendedColorType::Rgba8,
        )
        .with_context(|| format!("cannot encode {}", path.display()))?;
    write_atomic(path, &bytes)
}

use image::ImageEncoder;

/// Draws with plotters into an RGB buffer of `width`×`height` and saves it as PNG.
fn render(
    path: &Path,
    width: u32,
    height: u32,
    draw: impl FnOnce(DrawingArea<BitMapBackend, plotters::coord::Shift>) -> Result<()>,
) -> Result<()> {
    register_font();
    let mut rgb = vec![255u8; (width * height * 3) as usize];
    {
        let area = BitMapBackend::with_buffer(&mut rgb, (width, height)).into_drawing_area();
        draw(area)?;
    }
    let rgba: Vec<u8> = rgb
        .chunks_exact(3)
        .flat_map(|p| [p[0], p[1], p[2], 255])
        .collect();
    write_png(
        path,
        &RgbaImage::new(width as usize, height as usize, rgba)?,
    )
}

fn plot_error<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing failed: {e:?}")
}

/// Loss and accuracy curves (training and validation) per epoch.
pub fn plot_history(history: &[EpochRecord], path: &Path) -> Result<()> {
    if history.is_empty() {
        return Ok(());
    }
    render(path, 1000, 420, |area| {
        area.fill(&WHITE).map_err(plot_error)?;
        let (left, right) = area.split_horizontally(500);
        let epochs = history.len() as f64;
        let x_max = epochs.max(2.0);
        let max_loss = history
            .iter()
            .flat_map(|r| [r.train_loss, r.val_loss])
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max)
            .max(1e-3)
            * 1.05;
        let series = [
            (
                "loss",
                0.0..max_loss,
                [|r: &EpochRecord| r.train_loss, |r: &EpochRecord| r.val_loss],
            ),
            (
                "accuracy",
                0.0..1.0,
                [
                    |r: &EpochRecord| r.train_accuracy,
                    |r: &EpochRecord| r.val_accuracy,
                ],
            ),
        ];
        for (panel, (title, range, getters)) in [left, right].into_iter().zip(series) {
            let mut chart = ChartBuilder::on(&panel)
                .caption(title, ("sans-serif", 20))
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size(50)
                .build_cartesian_2d(1.0..x_max, range)
                .map_err(plot_error)?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .label_style(("sans-serif", 13))
                .draw()
                .map_err(plot_error)?;
            for ((name, color), get) in [("train", BLUE), ("validation", RED)]
                .into_iter()
                .zip(getters)
            {
                chart
                    .draw_series(LineSeries::new(
                        history.iter().map(|r| (r.epoch as f64, get(r))),
                        color.stroke_width(2),
                    ))
                    .map_err(plot_error)?
                    .label(name)
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .label_font(("sans-serif", 13))
                .draw()
                .map_err(plot_error)?;
        }
        area.present().map_err(plot_error)
    })
}

/// A confusion matrix as a heat grid with counts, rows = true class, columns = prediction.
pub fn plot_confusion(
    matrix: &ConfusionMatrix,
    classes: &[String],
    title: &str,
    path: &Path,
) -> Result<()> {
    let n = classes.len();
    let cell = (480 / n.max(1)).clamp(24, 80) as i32;
    let margin = 190;
    let side = cell * n as i32;
    render(
        path,
        (side + margin + 30) as u32,
        (side + margin + 40) as u32,
        |area| {
            area.fill(&WHITE).map_err(plot_error)?;
            let font = ("sans-serif", 13).into_font();
            area.draw(&Text::new(
                title.to_string(),
                (10, 10),
                ("sans-serif", 18).into_font(),
            ))
            .map_err(plot_error)?;
            let origin = (margin, margin);
            for (r, row) in matrix.counts.iter().enumerate() {
                let total: u64 = row.iter().sum::<u64>().max(1);
                for (c, &count) in row.iter().enumerate() {
                    let share = count as f32 / total as f32;
                    let [red, green, blue] = Colormap::Viridis.rgb(share);
                    let x = origin.0 + c as i32 * cell;
                    let y = origin.1 + r as i32 * cell;
                    area.draw(&Rectangle::new(
                        [(x, y), (x + cell, y + cell)],
                        RGBColor(red, green, blue).filled(),
                    ))
                    .map_err(plot_error)?;
                    let ink = if share > 0.6 { BLACK } else { WHITE };
                    area.draw(&Text::new(
                        count.to_string(),
                        (x + 4, y + cell / 2 - 6),
                        font.clone().color(&ink),
                    ))
                    .map_err(plot_error)?;
                }
            }
            for (i, name) in classes.iter().enumerate() {
                let short: String = name.chars().take(22).collect();
                area.draw(&Text::new(
                    short.clone(),
                    (8, origin.1 + i as i32 * cell + cell / 2 - 6),
                    font.clone(),
                ))
                .map_err(plot_error)?;
                let rotated = font.clone().transform(FontTransform::Rotate270);
                area.draw(&Text::new(
                    short,
                    (origin.0 + i as i32 * cell + cell / 2 - 6, margin - 8),
                    rotated,
                ))
                .map_err(plot_error)?;
            }
            area.draw(&Text::new(
                "rows: true class · columns: predicted".to_string(),
                (10, origin.1 + side + 12),
                font.clone(),
            ))
            .map_err(plot_error)?;
            area.present().map_err(plot_error)
        },
    )
}

/// One panel of [`plot_lines`]: a title, the x-axis label, the y range and named series of
/// `(x, y)` points.
pub struct Panel {
    /// Caption above the panel.
    pub title: String,
    /// Label under the x axis.
    pub x_label: String,
    /// Range of the y axis.
    pub y_range: std::ops::Range<f64>,
    /// `(name, points)` per line.
    pub series: Vec<(String, Vec<(f64, f64)>)>,
}

/// Panels of lines side by side (deletion and insertion curves, agreement histograms), 500
/// pixels wide each, with a legend per panel.
pub fn plot_lines(panels: &[Panel], path: &Path) -> Result<()> {
    if panels.is_empty() {
        return Ok(());
    }
    const PALETTE: [RGBColor; 8] = [
        RGBColor(0, 114, 178),
        RGBColor(213, 94, 0),
        RGBColor(0, 158, 115),
        RGBColor(204, 121, 167),
        RGBColor(230, 159, 0),
        RGBColor(86, 180, 233),
        RGBColor(0, 0, 0),
        RGBColor(240, 228, 66),
    ];
    render(path, 500 * panels.len() as u32, 420, |area| {
        area.fill(&WHITE).map_err(plot_error)?;
        for (panel, cell) in panels.iter().zip(area.split_evenly((1, panels.len()))) {
            let (x_min, x_max) = panel
                .series
                .iter()
                .flat_map(|(_, points)| points.iter().map(|p| p.0))
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), x| {
                    (lo.min(x), hi.max(x))
                });
            let x_range = if x_min < x_max {
                x_min..x_max
            } else {
                0.0..1.0
            };
            let mut chart = ChartBuilder::on(&cell)
                .caption(&panel.title, ("sans-serif", 18))
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size(50)
                .build_cartesian_2d(x_range, panel.y_range.clone())
                .map_err(plot_error)?;
            chart
                .configure_mesh()
                .x_desc(panel.x_label.as_str())
                .label_style(("sans-serif", 13))
                .draw()
                .map_err(plot_error)?;
            for (k, (name, points)) in panel.series.iter().enumerate() {
                let color = PALETTE[k % PALETTE.len()];
                chart
                    .draw_series(LineSeries::new(
                        points.iter().copied(),
                        color.stroke_width(2),
                    ))
                    .map_err(plot_error)?
                    .label(name.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .label_font(("sans-serif", 12))
                .draw()
                .map_err(plot_error)?;
        }
        area.present().map_err(plot_error)
    })
}
