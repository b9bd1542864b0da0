//! The loss figure: per-step training loss, its moving average, and the levels that tell
//! how much of the rule the RNN learned.
//!
//! The reference levels ([`crate::data::Rule::reference_levels`]) are the whole story. With
//! the seed rule, a model that learned nothing predicts 1/2 everywhere and pays
//! `ln 2 = 0.6931` per sample; a model that learned the rule predicts the forced half of the
//! targets exactly and pays `ln 2` only on the coin half, so its average loss is
//! `ln 2 / 2 = 0.3466`. With r2rt the levels are 0.6616, 0.5192 and 0.4545. No model can do
//! better than the lowest level, as the coins are independent of everything it sees; so the
//! band below it stays empty, which is where the legend goes.
//!
//! Text is drawn with `DejaVu Sans` embedded in the binary (`assets/fonts/`, Bitstream Vera
//! licence), registered once with plotters' `ab_glyph` backend: plotting needs no system
//! fonts.

use std::io;
use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::CoordTranslate;
use plotters::drawing::DrawingAreaErrorKind;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::data::ReferenceLevel;
use crate::output;
use crate::{Error, Result};

/// `DejaVu Sans` (Bitstream Vera licence, `assets/fonts/LICENSE-DejaVu.txt`).
static DEJAVU_SANS: &[u8] = include_bytes!("../assets/fonts/DejaVuSans.ttf");

/// The family name the embedded font is registered under; plotters' own defaults (tick
/// labels, legend) ask for it too.
const FONT: &str = "sans-serif";

/// Image size in pixels.
const WIDTH: u32 = 1000;
const HEIGHT: u32 = 600;

/// The y axis always reaches at least this high, so both reference levels are visible with
/// room above `ln 2` for the early, noisy part of the curve.
const MIN_Y_TOP: f64 = 0.8;

/// Most vertical epoch lines drawn; with more epochs only every 2nd, 5th, 10th, ... is drawn.
const MAX_EPOCH_LINES: usize = 30;

// The per-step loss and its average in one hue, light and dark; the levels in two others.
// Opaque colours, not transparency: thousands of overlapping per-step segments would add up
// to a dark band that hides the average.
const LOSS_COLOR: RGBColor = RGBColor(166, 206, 227);
const AVERAGE_COLOR: RGBColor = RGBColor(8, 81, 156);
/// The levels' colours, lowest loss first (the last level is always "nothing learned").
const LEVEL_COLORS: [RGBColor; 3] = [
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
];
const NOT_LEARNED_COLOR: RGBColor = RGBColor(214, 39, 40);
/// The held-out loss's line (`--valid`): orange, apart from the blues and the levels.
const HELD_OUT_COLOR: RGBColor = RGBColor(230, 120, 0);

/// The legend box, drawn the same way on both figures.
fn draw_legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> std::result::Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    chart
        .configure_series_labels()
        .position(position)
        .margin(14)
        .legend_area_size(32)
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .draw()
}

/// Registers the embedded font with plotters, once per process.
fn register_embedded_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok =
        *REGISTERED.get_or_init(|| register_font(FONT, FontStyle::Normal, DEJAVU_SANS).is_ok());
    if ok {
        Ok(())
    } else {
        Err(Error::bad_file(
            Path::new("assets/fonts/DejaVuSans.ttf"),
            "the embedded font cannot be parsed",
        ))
    }
}

/// The number of steps the plot's moving average spans: a quarter of an epoch (100 steps
/// with the tutorial's 400 windows per epoch), at least 1.
#[must_use]
pub fn smoothing_window(windows_per_epoch: usize) -> usize {
    (windows_per_epoch / 4).max(1)
}

/// Centred moving average of `losses` over `window` steps: element `i` is the mean of the
/// finite values among `losses[i - window/2 ..= i + window/2]` (the window is cut short at
/// both ends of the run, so the curve neither lags the data nor starts late). Non-finite
/// inputs are left out of every mean and give NaN at their own position.
///
/// Costs O(n log n) whatever the window. The window sums come from a segment tree, not from
/// differences of prefix sums: after one diverging step of 1e30, `prefix[hi] - prefix[lo]`
/// would cancel to garbage for every later window, while a tree sums only the values inside
/// each window.
#[must_use]
pub fn moving_average(losses: &[f32], window: usize) -> Vec<f32> {
    let half = window / 2;
    let n = losses.len();
    // Bottom-up segment tree over (sum, count of finite values): leaf i at n + i, node k
    // holds the sum of its children 2k and 2k + 1.
    let mut tree = vec![(0.0f64, 0usize); 2 * n];
    for (leaf, &v) in tree[n..].iter_mut().zip(losses) {
        if v.is_finite() {
            *leaf = (f64::from(v), 1);
        }
    }
    for k in (1..n).rev() {
        tree[k] = (
            tree[2 * k].0 + tree[2 * k + 1].0,
            tree[2 * k].1 + tree[2 * k + 1].1,
        );
    }
    let window_sum = |lo: usize, hi: usize| {
        let (mut lo, mut hi) = (lo + n, hi + n);
        let (mut sum, mut count) = (0.0f64, 0usize);
        while lo < hi {
            if lo % 2 == 1 {
                sum += tree[lo].0;
                count += tree[lo].1;
                lo += 1;
            }
            if hi % 2 == 1 {
                hi -= 1;
                sum += tree[hi].0;
                count += tree[hi].1;
            }
            lo /= 2;
            hi /= 2;
        }
        (sum, count)
    };
    (0..n)
        .map(|i| {
            if !losses[i].is_finite() {
                return f32::NAN;
            }
            let (sum, count) = window_sum(i.saturating_sub(half), (i + half + 1).min(n));
            // count >= 1: losses[i] itself is finite.
            (sum / count as f64) as f32
        })
        .collect()
}

/// The runs of consecutive finite values, as (step, value) points: a non-finite loss breaks
/// the line instead of being drawn or bridged.
///
/// Values are clamped to `[-y_max, 4 y_max]`. plotters clips a line that leaves the plot, but
/// maps it to `i32` pixels first: a loss of 1e30 would saturate and wrap around. Clamping
/// well outside the visible range keeps the visible part of every line as it was.
fn finite_segments(values: &[f32], y_max: f64) -> Vec<Vec<(f64, f64)>> {
    let mut segments = Vec::new();
    let mut current = Vec::new();
    for (step, &v) in values.iter().enumerate() {
        if v.is_finite() {
            current.push((step as f64, f64::from(v).clamp(-y_max, 4.0 * y_max)));
        } else if !current.is_empty() {
            segments.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        segments.push(current);
    }
    segments
}

/// The share of finite losses that must lie below the top of the y axis.
const Y_TOP_QUANTILE: f64 = 0.99;

/// Top of the y axis: 10% above the 99th percentile of the finite losses, rounded up to a
/// multiple of 0.1, and never below [`MIN_Y_TOP`]. A percentile, not the maximum, so that a
/// few wild steps (a spike, the first steps of a run) cannot squash the two reference levels
/// into the bottom of the figure; whatever lies above is clipped.
fn y_top(losses: &[f32]) -> f64 {
    let mut finite: Vec<f32> = losses.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return MIN_Y_TOP;
    }
    let rank = ((finite.len() - 1) as f64 * Y_TOP_QUANTILE).round() as usize;
    let (_, &mut high, _) = finite.select_nth_unstable_by(rank, f32::total_cmp);
    let top = (f64::from(high) * 1.1 * 10.0).ceil() / 10.0;
    top.max(MIN_Y_TOP)
}

/// A tick label with at most two decimals and no trailing zeros: `2`, `2.5`, `0.25`.
fn short_number(v: f64) -> String {
    let text = format!("{v:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text == "-0" {
        "0".to_string()
    } else {
        text.to_string()
    }
}

/// Every how many epochs a vertical line is drawn: 1, 2, 5, 10, 20, 50, ... so that at most
/// [`MAX_EPOCH_LINES`] lines appear.
fn epoch_line_stride(epochs: usize) -> usize {
    let mut decade = 1usize;
    loop {
        for stride in [decade, 2 * decade, 5 * decade] {
            if epochs / stride <= MAX_EPOCH_LINES {
                return stride;
            }
        }
        decade *= 10;
    }
}

/// Renders the per-step loss curve of a run to a PNG at `path` (1000 x 600), atomically.
///
/// Drawn: the loss of every training step as a thin, light line; on top of it its centred
/// moving average over [`smoothing_window`] steps (see [`moving_average`]); a dashed,
/// labelled line at each of `levels` (the run's rule's, [`crate::data::Rule::reference_levels`],
/// lowest loss first: for the seed rule `ln 2 / 2` = rule learned and `ln 2` = nothing
/// learned); faint vertical lines at
/// epoch boundaries with the epoch on the top axis. `title` is the caption; callers pass the
/// configuration, e.g. `"hidden 6, lags (1,2), time_step 5, 250 streams x 2000, adagrad lr
/// 0.1"`.
///
/// Non-finite losses are skipped (the line breaks there). Zero or one loss values still give
/// a valid figure with its axes and reference lines.
///
/// The image is drawn in memory and only then encoded to a temporary sibling of `path`,
/// `fsync`ed and renamed over it: no half-written PNG is ever visible, even on error.
///
/// # Errors
/// [`Error::Usage`] if `windows_per_epoch` is 0; [`Error::Io`] if drawing or writing fails.
pub fn loss_plot(
    path: &Path,
    losses: &[f32],
    windows_per_epoch: usize,
    levels: &[ReferenceLevel],
    title: &str,
) -> Result<()> {
    loss_plot_held_out(path, losses, windows_per_epoch, levels, title, &[])
}

/// [`loss_plot`] with a second line: the held-out loss `(epochs trained, loss)` after each
/// epoch (`--valid`), drawn at the epoch's last step.
///
/// # Errors
/// As [`loss_plot`].
pub fn loss_plot_held_out(
    path: &Path,
    losses: &[f32],
    windows_per_epoch: usize,
    levels: &[ReferenceLevel],
    title: &str,
    held_out: &[(usize, f32)],
) -> Result<()> {
    if windows_per_epoch == 0 {
        return Err(Error::Usage(format!(
            "{}: windows_per_epoch must be at least 1, got 0",
            path.display()
        )));
    }
    register_embedded_font()?;
    let mut pixels = vec![0u8; WIDTH as usize * HEIGHT as usize * 3];
    draw_loss_plot(
        &mut pixels,
        losses,
        windows_per_epoch,
        levels,
        title,
        held_out,
    )
    .map_err(|e| {
        Error::io(
            path,
            io::Error::other(format!("cannot draw the loss plot: {e}")),
        )
    })?;
    write_png_atomic(path, &pixels, (WIDTH, HEIGHT))
}

/// Encodes an RGB buffer of `width x height` pixels as PNG at `path`, atomically.
///
/// The encoder behind plotters' `bitmap_encoder` only writes to a named file and picks the
/// format from its extension, so the temporary sibling ends in `.png`.
fn write_png_atomic(path: &Path, pixels: &[u8], (width, height): (u32, u32)) -> Result<()> {
    let temp = output::temp_sibling(path, ".png")?;
    let saved = {
        let mut backend = BitMapBackend::new(&temp, (width, height));
        backend
            .blit_bitmap((0, 0), (width, height), pixels)
            .and_then(|()| backend.present())
        // The backend is dropped here. Its Drop retries `present` if that failed, which can
        // leave a file at `temp`: removing it below must come after.
    };
    if let Err(e) = saved {
        let _ = std::fs::remove_file(&temp);
        return Err(Error::io(path, io::Error::other(e.to_string())));
    }
    output::commit_temp(&temp, path)
}

/// Draws the figure into `pixels` (RGB, `WIDTH x HEIGHT`).
fn draw_loss_plot(
    pixels: &mut [u8],
    losses: &[f32],
    windows_per_epoch: usize,
    levels: &[ReferenceLevel],
    title: &str,
    held_out: &[(usize, f32)],
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let window = smoothing_window(windows_per_epoch);
    let smoothed = moving_average(losses, window);
    let y_max = y_top(losses);
    let steps = losses.len();
    // An axis needs a non-empty range even for a run of 0 or 1 steps.
    let x_max = (steps.saturating_sub(1) as f64).max(1.0);
    let epochs = steps.div_ceil(windows_per_epoch);

    let root = BitMapBackend::with_buffer(pixels, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;

    // The epoch axis on top only means something once the run spans an epoch.
    let epoch_axis = steps >= windows_per_epoch;
    let below_title = root.margin(14, 0, 0, 0).titled(title, (FONT, 22))?;
    let mut chart = ChartBuilder::on(&below_title)
        .margin_top(if epoch_axis { 6 } else { 16 })
        .margin_left(16)
        .margin_right(32)
        .margin_bottom(12)
        .x_label_area_size(52)
        .y_label_area_size(72)
        .top_x_label_area_size(if epoch_axis { 48 } else { 0 })
        .build_cartesian_2d(0f64..x_max, 0f64..y_max)?
        .set_secondary_coord(0f64..x_max / windows_per_epoch as f64, 0f64..y_max);

    chart
        .configure_mesh()
        .disable_x_mesh()
        // Ticks at round values: never more ticks than integer steps on a short run.
        .x_labels((x_max as usize + 1).min(11))
        .y_labels((y_max * 10.0).round().min(11.0) as usize + 1)
        .bold_line_style(BLACK.mix(0.10))
        .light_line_style(TRANSPARENT)
        .x_desc("training step")
        .y_desc("cross-entropy loss")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.1}"))
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .draw()?;
    if epoch_axis {
        chart
            .configure_secondary_axes()
            .x_desc("epoch")
            .x_label_formatter(&|&epoch| short_number(epoch))
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 17))
            .draw()?;
    }

    // Epoch boundaries: the hidden state is reset to zero there, which often shows in the
    // loss. Epoch 0 starts at the y axis, which is line enough.
    let stride = epoch_line_stride(epochs);
    let epoch_line = BLACK.mix(0.10).stroke_width(1);
    for epoch in (stride..epochs).step_by(stride) {
        let x = (epoch * windows_per_epoch) as f64;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(x, 0.0), (x, y_max)],
            epoch_line,
        )))?;
    }

    let raw_style = LOSS_COLOR.stroke_width(1);
    let mut labelled = false;
    for segment in finite_segments(losses, y_max) {
        if segment.len() == 1 {
            // A line needs two points; a lone step is drawn as a dot.
            chart.draw_series(std::iter::once(Circle::new(
                segment[0],
                3,
                AVERAGE_COLOR.filled(),
            )))?;
        }
        let series = chart.draw_series(LineSeries::new(segment, raw_style))?;
        if !labelled {
            labelled = true;
            series
                .label("loss per step")
                // Thicker than on the plot, where many steps side by side make a band.
                .legend(|(x, y)| {
                    PathElement::new(vec![(x, y), (x + 24, y)], LOSS_COLOR.stroke_width(3))
                });
        }
    }

    let smooth_style = AVERAGE_COLOR.stroke_width(2);
    let mut labelled = false;
    for segment in finite_segments(&smoothed, y_max) {
        let series = chart.draw_series(LineSeries::new(segment, smooth_style))?;
        if !labelled {
            labelled = true;
            series
                .label(format!("moving average over {window} steps"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], smooth_style));
        }
    }

    // The held-out loss after each epoch, at the epoch's last step.
    if !held_out.is_empty() {
        let points: Vec<(f64, f64)> = held_out
            .iter()
            .filter(|(_, l)| l.is_finite())
            .map(|&(e, l)| {
                (
                    ((e * windows_per_epoch) as f64 - 1.0).max(0.0),
                    f64::from(l).min(y_max),
                )
            })
            .collect();
        let style = HELD_OUT_COLOR.stroke_width(2);
        chart
            .draw_series(LineSeries::new(points.clone(), style))?
            .label("held-out loss (--valid), after each epoch")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
        chart.draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 4, HELD_OUT_COLOR.filled())),
        )?;
    }

    // The levels go on top, dashed, so the average shows through where it meets them.
    // Drawn highest loss first, as the legend reads top down.
    for (i, level) in levels.iter().enumerate().rev() {
        let color = if i + 1 == levels.len() {
            NOT_LEARNED_COLOR
        } else {
            LEVEL_COLORS[i % LEVEL_COLORS.len()]
        };
        let style = color.stroke_width(2);
        let (level, label) = (level.loss, format!("{:.4}: {}", level.loss, level.label));
        chart
            .draw_series(DashedLineSeries::new(
                [(0.0, level), (x_max, level)],
                10,
                6,
                style,
            ))?
            .label(label)
            .legend(move |(x, y)| {
                // Two dashes, as on the plot.
                EmptyElement::at((x, y))
                    + PathElement::new(vec![(0, 0), (9, 0)], style)
                    + PathElement::new(vec![(15, 0), (24, 0)], style)
            });
    }

    if !labelled {
        let area = chart.plotting_area();
        let grey = BLACK.mix(0.6);
        let style = TextStyle::from((FONT, 18).into_font()).color(&grey).pos(
            plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Center,
                plotters::style::text_anchor::VPos::Center,
            ),
        );
        area.draw(&Text::new(
            "no finite loss values to plot",
            (x_max / 2.0, y_max / 2.0),
            style,
        ))?;
    }

    draw_legend(&mut chart, SeriesLabelPosition::LowerRight)?;

    root.present()?;
    Ok(())
}

/// One line of the thread-scaling figure: a shape's throughput at several thread counts.
#[derive(Clone, Debug, PartialEq)]
pub struct ScalingSeries {
    pub label: String,
    /// `(threads, median, min, max)` sample-steps/s, in increasing thread order.
    pub points: Vec<(usize, f64, f64, f64)>,
}

impl ScalingSeries {
    /// Speed-ups over the series' fewest threads, scaled so that row counts as that many
    /// threads' worth (1 thread: its own throughput is 1x): `(threads, median, min, max)`.
    #[must_use]
    pub fn speedups(&self) -> Vec<(f64, f64, f64, f64)> {
        let Some(&(t0, base, _, _)) = self.points.first() else {
            return Vec::new();
        };
        let unit = base / t0 as f64;
        self.points
            .iter()
            .map(|&(t, med, lo, hi)| (t as f64, med / unit, lo / unit, hi / unit))
            .collect()
    }
}

// One colour per series (cycled), from the same palette family as the loss figure.
const SERIES_COLORS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// Writes the thread-scaling figure to `path` (PNG, atomically, as [`loss_plot`]): for each
/// series the median speed-up over its fewest threads, with the repeats' min..max as a
/// bar, against the ideal line `speed-up = threads`.
///
/// # Errors
/// [`Error::Io`] if drawing or writing fails.
pub fn scaling_plot(path: &Path, series: &[ScalingSeries], title: &str) -> Result<()> {
    register_embedded_font()?;
    let mut pixels = vec![0u8; WIDTH as usize * HEIGHT as usize * 3];
    draw_scaling_plot(&mut pixels, series, title).map_err(|e| {
        Error::io(
            path,
            io::Error::other(format!("cannot draw the scaling plot: {e}")),
        )
    })?;
    write_png_atomic(path, &pixels, (WIDTH, HEIGHT))
}

fn draw_scaling_plot(
    pixels: &mut [u8],
    series: &[ScalingSeries],
    title: &str,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let curves: Vec<_> = series.iter().map(ScalingSeries::speedups).collect();
    let most_threads = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .max()
        .unwrap_or(1)
        .max(2) as f64;
    let top = curves
        .iter()
        .flatten()
        .map(|p| p.3)
        .fold(most_threads, f64::max)
        .ceil();

    let root = BitMapBackend::with_buffer(pixels, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let below_title = root.margin(14, 0, 0, 0).titled(title, (FONT, 22))?;
    let mut chart = ChartBuilder::on(&below_title)
        .margin_top(16)
        .margin_left(16)
        .margin_right(32)
        .margin_bottom(12)
        .x_label_area_size(52)
        .y_label_area_size(72)
        .build_cartesian_2d(0f64..most_threads + 0.5, 0f64..top + 0.5)?;
    chart
        .configure_mesh()
        .x_labels((most_threads as usize + 1).min(17))
        .y_labels((top as usize + 1).min(17))
        .bold_line_style(BLACK.mix(0.10))
        .light_line_style(TRANSPARENT)
        .x_desc("threads")
        .y_desc("speed-up (sample-steps/s over one thread's)")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| format!("{y:.0}"))
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .draw()?;

    let ideal = BLACK.mix(0.5).stroke_width(2);
    chart
        .draw_series(DashedLineSeries::new(
            [(0.0, 0.0), (most_threads, most_threads)],
            10,
            6,
            ideal,
        ))?
        .label("ideal: speed-up = threads")
        .legend(move |(x, y)| {
            EmptyElement::at((x, y))
                + PathElement::new(vec![(0, 0), (9, 0)], ideal)
                + PathElement::new(vec![(15, 0), (24, 0)], ideal)
        });

    for (i, (s, curve)) in series.iter().zip(&curves).enumerate() {
        let color = SERIES_COLORS[i % SERIES_COLORS.len()];
        let line = color.stroke_width(2);
        chart
            .draw_series(LineSeries::new(curve.iter().map(|p| (p.0, p.1)), line))?
            .label(s.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], line));
        chart.draw_series(curve.iter().map(|&(t, _, lo, hi)| {
            PathElement::new(vec![(t, lo), (t, hi)], color.stroke_width(1))
        }))?;
        chart.draw_series(
            curve
                .iter()
                .map(|&(t, med, _, _)| Circle::new((t, med), 4, color.filled())),
        )?;
    }

    draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Rule;

    /// Pixels of exactly `color` in a figure of `levels` (the legend's samples included).
    fn pixels_of(levels: &[ReferenceLevel], color: RGBColor) -> usize {
        register_embedded_font().unwrap();
        let mut pixels = vec![0u8; WIDTH as usize * HEIGHT as usize * 3];
        let losses: Vec<f32> = (0..800).map(|i| 0.7 - 0.2 * (i as f32 / 800.0)).collect();
        draw_loss_plot(&mut pixels, &losses, 400, levels, "levels", &[]).unwrap();
        pixels
            .chunks_exact(3)
            .filter(|p| *p == [color.0, color.1, color.2])
            .count()
    }

    /// The figure draws the levels of the rule it is given: r2rt's middle level ("lag a
    /// only", the second colour) appears on its figure and not on the seed's, and both draw
    /// "nothing learned" and their lowest level.
    #[test]
    fn the_plot_draws_the_given_rules_levels() {
        let (seed, r2rt) = (Rule::Seed.reference_levels(), Rule::R2rt.reference_levels());
        assert_eq!(pixels_of(&seed, LEVEL_COLORS[1]), 0);
        // A dashed line across the plot: hundreds of pixels.
        assert!(pixels_of(&r2rt, LEVEL_COLORS[1]) > 300);
        for levels in [&seed, &r2rt] {
            assert!(pixels_of(levels, LEVEL_COLORS[0]) > 300);
            assert!(pixels_of(levels, NOT_LEARNED_COLOR) > 300);
        }
    }
}

/// One cell of a heatmap panel.
#[derive(Clone, Debug, PartialEq)]
pub struct HeatmapCell {
    /// The value the colour shows (a median loss); `None` for a cell not computed (drawn
    /// empty), NaN or infinity for a run that diverged (drawn grey, "div").
    pub value: Option<f64>,
    /// The second line of the cell's text (`"5/5"`: the seeds that learned).
    pub label: String,
}

/// One panel of a heatmap: `rows x columns` cells, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct HeatmapPanel {
    pub title: String,
    /// What the rows are (`lags (a,b)`, `hidden`), written above the row labels.
    pub rows_name: String,
    /// Row labels, top to bottom (lag pairs).
    pub rows: Vec<String>,
    /// Column labels, left to right (time steps).
    pub columns: Vec<String>,
    pub cells: Vec<HeatmapCell>,
}

/// The sequential scale of the heatmap, from the lowest reference level (dark blue: the most
/// a model can learn) to nothing learned (pale yellow): ColorBrewer's YlGnBu, reversed.
const HEAT_STOPS: [RGBColor; 5] = [
    RGBColor(8, 29, 88),
    RGBColor(34, 94, 168),
    RGBColor(29, 145, 192),
    RGBColor(127, 205, 187),
    RGBColor(255, 255, 217),
];

/// The colour of `t` in 0..=1 on [`HEAT_STOPS`] (clamped), linearly between stops.
#[must_use]
fn heat_color(t: f64) -> RGBColor {
    let t = t.clamp(0.0, 1.0) * (HEAT_STOPS.len() - 1) as f64;
    let i = (t.floor() as usize).min(HEAT_STOPS.len() - 2);
    let f = t - i as f64;
    let (a, b) = (HEAT_STOPS[i], HEAT_STOPS[i + 1]);
    let mix = |x: u8, y: u8| (f64::from(x) + f * (f64::from(y) - f64::from(x))).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Black or white, whichever reads better on `c` (relative luminance, sRGB weights).
fn text_on(c: RGBColor) -> RGBColor {
    let l = 0.2126 * f64::from(c.0) + 0.7152 * f64::from(c.1) + 0.0722 * f64::from(c.2);
    if l > 140.0 { BLACK } else { WHITE }
}

/// Heatmap layout, in pixels.
const CELL_W: i32 = 62;
const CELL_H: i32 = 42;
/// A panel's cells shrink to fit in this many pixels (across, down); below the size where
/// the text fits, cells are colour only.
const MAX_CELLS_W: i32 = 1800;
const MAX_CELLS_H: i32 = 1400;
/// The most panels drawn (the first ones; the subtitle says so).
const MAX_PANELS: usize = 12;
const ROW_LABELS_W: i32 = 78;
const PANEL_TOP: i32 = 34;
const PANEL_BOTTOM: i32 = 62;
const PANEL_GAP: i32 = 24;
const FIGURE_TOP: i32 = 78;
const COLOR_BAR_W: i32 = 190;
const PANELS_PER_ROW: usize = 3;

/// Renders a heatmap to a PNG at `path`, atomically: one panel per entry of `panels` (three
/// to a row), each cell coloured by its value on a sequential scale anchored at the rule's
/// levels (the lowest level at the dark end, nothing learned at the pale end; values beyond
/// are clamped), with the value (3 decimals) and its label written in it; a colour bar with
/// the levels marked on the right, headed `value_name`. `title` and `subtitle` go on top.
/// For `bitrnn sweep`: time_step across, lags (or hidden sizes) down.
///
/// # Errors
/// [`Error::Usage`] if a panel's cells do not match its rows x columns or `levels` has
/// fewer than two levels; [`Error::Io`] if drawing or writing fails.
pub fn heatmap(
    path: &Path,
    panels: &[HeatmapPanel],
    levels: &[ReferenceLevel],
    title: &str,
    subtitle: &str,
    value_name: &str,
) -> Result<()> {
    if levels.len() < 2
        || panels.is_empty()
        || panels
            .iter()
            .any(|p| p.cells.len() != p.rows.len() * p.columns.len())
    {
        return Err(Error::Usage(format!(
            "{}: a heatmap needs panels of rows x columns cells and two levels",
            path.display()
        )));
    }
    register_embedded_font()?;
    let all = panels.len();
    let panels = &panels[..all.min(MAX_PANELS)];
    let subtitle = if all > panels.len() {
        format!("{subtitle}; the first {} of {all} panels", panels.len())
    } else {
        subtitle.to_string()
    };
    let cols = panels.iter().map(|p| p.columns.len()).max().unwrap_or(1) as i32;
    let rows = panels.iter().map(|p| p.rows.len()).max().unwrap_or(1) as i32;
    let per_row = panels.len().min(PANELS_PER_ROW) as i32;
    let panel_rows = panels.len().div_ceil(PANELS_PER_ROW) as i32;
    let cell = (
        (MAX_CELLS_W / cols).clamp(2, CELL_W),
        (MAX_CELLS_H / rows).clamp(2, CELL_H),
    );
    let panel_w = ROW_LABELS_W + cols * cell.0 + PANEL_GAP;
    let panel_h = PANEL_TOP + rows * cell.1 + PANEL_BOTTOM;
    // Wide enough for the title (about 11 px a character at 20 px), and tall enough for the
    // colour bar's lowest label.
    let title_w = 40 + 11 * title.chars().count() as i32;
    let width = (16 + per_row * panel_w + COLOR_BAR_W).max(700).max(title_w);
    let height = (FIGURE_TOP + panel_rows * panel_h).max(400);
    let (width, height) = (width as u32, height as u32);
    let mut pixels = vec![0u8; width as usize * height as usize * 3];
    let layout = HeatLayout {
        size: (width, height),
        panel: (panel_w, panel_h),
        cell,
    };
    draw_heatmap(
        &mut pixels,
        &layout,
        panels,
        levels,
        (title, &subtitle, value_name),
    )
    .map_err(|e| {
        Error::io(
            path,
            io::Error::other(format!("cannot draw the heatmap: {e}")),
        )
    })?;
    write_png_atomic(path, &pixels, (width, height))
}

/// The heatmap's sizes in pixels: the image, one panel (with its labels), one cell.
struct HeatLayout {
    size: (u32, u32),
    panel: (i32, i32),
    cell: (i32, i32),
}

fn draw_heatmap(
    pixels: &mut [u8],
    layout: &HeatLayout,
    panels: &[HeatmapPanel],
    levels: &[ReferenceLevel],
    (title, subtitle, value_name): (&str, &str, &str),
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let HeatLayout {
        size,
        panel: (panel_w, panel_h),
        cell: (cell_w, cell_h),
    } = *layout;
    use plotters::style::text_anchor::{HPos, Pos, VPos};
    let root = BitMapBackend::with_buffer(pixels, size).into_drawing_area();
    root.fill(&WHITE)?;
    fn centred(px: u32, color: &RGBColor) -> TextStyle<'_> {
        TextStyle::from((FONT, px).into_font())
            .color(color)
            .pos(Pos::new(HPos::Center, VPos::Center))
    }
    let right = |px: u32| {
        TextStyle::from((FONT, px).into_font())
            .color(&BLACK)
            .pos(Pos::new(HPos::Right, VPos::Center))
    };
    let left = |px: u32| {
        TextStyle::from((FONT, px).into_font())
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Center))
    };
    let width = size.0 as i32;
    root.draw(&Text::new(title, (width / 2, 22), centred(20, &BLACK)))?;
    root.draw(&Text::new(subtitle, (width / 2, 50), centred(15, &BLACK)))?;
    let low = levels[0].loss;
    let nothing = levels[levels.len() - 1].loss;
    let t_of = |v: f64| (v - low) / (nothing - low);
    for (k, panel) in panels.iter().enumerate() {
        let x0 = 16 + (k % PANELS_PER_ROW) as i32 * panel_w + ROW_LABELS_W;
        let y0 = FIGURE_TOP + (k / PANELS_PER_ROW) as i32 * panel_h + PANEL_TOP;
        let n_cols = panel.columns.len() as i32;
        let n_rows = panel.rows.len() as i32;
        root.draw(&Text::new(
            panel.title.as_str(),
            (x0 + n_cols * cell_w / 2, y0 - 18),
            centred(17, &BLACK),
        ))?;
        // Every row's and column's label where they fit, else every k-th.
        let row_stride = (18 / cell_h + 1) as usize;
        let column_stride = (36 / cell_w + 1) as usize;
        let text_fits = cell_w >= 56 && cell_h >= 36;
        for (r, label) in panel.rows.iter().enumerate().step_by(row_stride) {
            let y = y0 + r as i32 * cell_h + cell_h / 2;
            root.draw(&Text::new(label.as_str(), (x0 - 8, y), right(14)))?;
        }
        for (c, label) in panel.columns.iter().enumerate().step_by(column_stride) {
            let x = x0 + c as i32 * cell_w + cell_w / 2;
            root.draw(&Text::new(
                label.as_str(),
                (x, y0 + n_rows * cell_h + 12),
                centred(14, &BLACK),
            ))?;
        }
        root.draw(&Text::new(
            "time_step",
            (x0 + n_cols * cell_w / 2, y0 + n_rows * cell_h + 38),
            centred(16, &BLACK),
        ))?;
        root.draw(&Text::new(
            panel.rows_name.as_str(),
            (x0 - ROW_LABELS_W + 4, y0 - 18),
            left(15),
        ))?;
        for (i, cell) in panel.cells.iter().enumerate() {
            let (r, c) = (
                (i / panel.columns.len()) as i32,
                (i % panel.columns.len()) as i32,
            );
            let (cx, cy) = (x0 + c * cell_w, y0 + r * cell_h);
            let (fill, text) = match cell.value {
                None => (RGBColor(240, 240, 240), None),
                Some(v) if !v.is_finite() => (RGBColor(150, 150, 150), Some("div".to_string())),
                Some(v) => (heat_color(t_of(v)), Some(format!("{v:.3}"))),
            };
            root.draw(&Rectangle::new(
                [(cx, cy), (cx + cell_w, cy + cell_h)],
                fill.filled(),
            ))?;
            if !text_fits {
                continue;
            }
            root.draw(&Rectangle::new(
                [(cx, cy), (cx + cell_w, cy + cell_h)],
                WHITE.stroke_width(1),
            ))?;
            if let Some(text) = text {
                let ink = text_on(fill);
                let mid = cx + cell_w / 2;
                root.draw(&Text::new(text, (mid, cy + 13), centred(14, &ink)))?;
                root.draw(&Text::new(
                    cell.label.as_str(),
                    (mid, cy + 30),
                    centred(13, &ink),
                ))?;
            }
        }
    }
    // The colour bar: the scale from the lowest level (top) to nothing learned (bottom),
    // with every level marked.
    let bar_x = width - COLOR_BAR_W + 16;
    let bar_top = FIGURE_TOP + PANEL_TOP;
    let bar_h = 240;
    root.draw(&Text::new(value_name, (bar_x - 6, bar_top - 18), left(15)))?;
    for y in 0..bar_h {
        let t = f64::from(y) / f64::from(bar_h - 1);
        root.draw(&Rectangle::new(
            [(bar_x, bar_top + y), (bar_x + 22, bar_top + y + 1)],
            heat_color(t).filled(),
        ))?;
    }
    for level in levels {
        let y = bar_top + (t_of(level.loss) * f64::from(bar_h - 1)).round() as i32;
        root.draw(&PathElement::new(
            vec![(bar_x - 4, y), (bar_x + 26, y)],
            BLACK.stroke_width(2),
        ))?;
        root.draw(&Text::new(
            format!("{:.4}", level.loss),
            (bar_x + 32, y - 8),
            left(13),
        ))?;
        root.draw(&Text::new(level.label, (bar_x + 32, y + 8), left(13)))?;
    }
    root.present()?;
    Ok(())
}
