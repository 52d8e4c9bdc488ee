//! Figures (PNG + SVG, via plotters): neurons per layer (count and share of the layer), per-method Δ-accuracy
//! heatmaps, the methods overview and the steering dose-response curves.
//!
//! Text is rasterised with a bundled font (plotters' `ab_glyph` feature has no system font lookup). Glyphs missing
//! from the font (e.g. CJK group names) render as the font's "missing glyph" box in the PNGs; the SVGs keep the real
//! text, which the viewer renders with its own fonts.

use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context as _};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{register_font, FontStyle, FontTransform};

use super::method_stems;
use super::steer;
use super::summary::{ReportExtras, SteerResult, Summary};
use super::tables::{self, pp};

/// The bundled font (DejaVu Sans, Bitstream Vera licence: ship `DejaVuSans-LICENSE.txt` next to it).
/// The path is relative to this source file: adjust it when moving the module.
pub const FONT_BYTES: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Family name the font is registered under; also written as `font-family` in the SVGs.
const FONT_FAMILY: &str = "sans-serif";

static FONT_REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();

/// Registers the bundled font with plotters once per process; an error (not a panic) when it is unusable.
pub fn ensure_font() -> anyhow::Result<()> {
    FONT_REGISTERED
        .get_or_init(|| {
            register_font(FONT_FAMILY, FontStyle::Normal, FONT_BYTES)
                .map_err(|_| "the bundled font could not be parsed; figures need a valid TTF/OTF".to_string())
        })
        .clone()
        .map_err(|e| anyhow!(e))
}

const WHITE_BG: RGBColor = RGBColor(255, 255, 255);
const TEXT: RGBColor = RGBColor(30, 30, 30);
const NEG: RGBColor = RGBColor(178, 24, 43);
const MID: RGBColor = RGBColor(247, 247, 247);
const POS: RGBColor = RGBColor(33, 102, 172);
const MISSING: RGBColor = RGBColor(200, 200, 200);
const SELF_BAR: RGBColor = RGBColor(214, 39, 40);
const CROSS_BAR: RGBColor = RGBColor(127, 127, 127);
/// The cultures that were not steered (red is kept for the steered one).
const CULTURES: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Stable colour per method (known names first, then a fallback cycle).
fn method_color(name: &str, index: usize) -> RGBColor {
    match name {
        "cas" => RGBColor(31, 119, 180),
        "lape" => RGBColor(255, 127, 14),
        "lap" => RGBColor(44, 160, 44),
        "mad" => RGBColor(148, 103, 189),
        // The control recedes behind the methods it is compared with.
        "random" => RGBColor(127, 127, 127),
        // Past the known methods, the culture palette from its fifth colour on.
        _ => CULTURES[(4 + index) % CULTURES.len()],
    }
}

fn lerp(a: RGBColor, b: RGBColor, t: f64) -> RGBColor {
    let t = t.clamp(0.0, 1.0);
    let mix = |x: u8, y: u8| (f64::from(x) + (f64::from(y) - f64::from(x)) * t).round() as u8;
    RGBColor(mix(a.0, b.0), mix(a.1, b.1), mix(a.2, b.2))
}

/// Diverging colour for `v` on the symmetric scale [-max_abs, +max_abs] (max_abs > 0), centred on 0.
fn diverging(v: f64, max_abs: f64) -> RGBColor {
    let t = (v / max_abs).clamp(-1.0, 1.0);
    if t < 0.0 {
        lerp(MID, NEG, -t)
    } else {
        lerp(MID, POS, t)
    }
}

/// Shortens long labels for the figures (the tables keep the full text).
fn short(s: &str, max_chars: usize) -> String {
    let flat: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if flat.chars().count() <= max_chars {
        flat
    } else {
        let mut t: String = flat.chars().take(max_chars.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

fn font(size: f64) -> TextStyle<'static> {
    (FONT_FAMILY, size).into_font().color(&TEXT)
}

fn derr<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing failed: {e}")
}

/// Width reserved right of the plot for the legend.
const LEGEND_W: i32 = 150;

/// Draws a legend (colour swatch + label per entry) in the column reserved right of the plot.
fn draw_legend<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    entries: &[(String, RGBColor)],
) -> anyhow::Result<()> {
    let x = root.dim_in_pixel().0 as i32 - LEGEND_W + 10;
    let style = font(12.0).pos(Pos::new(HPos::Left, VPos::Center));
    for (i, (label, colour)) in entries.iter().enumerate() {
        let y = 60 + 22 * i as i32;
        root.draw(&Rectangle::new([(x, y - 6), (x + 14, y + 6)], colour.filled())).map_err(derr)?;
        root.draw_text(&short(label, 16), &style, (x + 20, y)).map_err(derr)?;
    }
    Ok(())
}

/// A figure that can be drawn on any plotters backend.
trait Figure {
    fn size(&self) -> (u32, u32);
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()>;
}

/// Draws `fig` into `<dir>/<stem>.png` and `<dir>/<stem>.svg`; panics inside plotters become errors.
fn render(fig: &impl Figure, dir: &Path, stem: &str) -> anyhow::Result<Vec<PathBuf>> {
    ensure_font()?;
    let size = fig.size();
    let png = dir.join(format!("{stem}.png"));
    let svg = dir.join(format!("{stem}.svg"));
    let run = |f: &dyn Fn() -> anyhow::Result<()>| -> anyhow::Result<()> {
        catch_unwind(AssertUnwindSafe(f)).map_err(|_| anyhow!("plotters panicked while drawing {stem}"))?
    };
    run(&|| {
        let root = BitMapBackend::new(&png, size).into_drawing_area();
        root.fill(&WHITE_BG).map_err(derr)?;
        fig.draw(&root)?;
        root.present().map_err(derr)
    })
    .with_context(|| format!("writing {}", png.display()))?;
    run(&|| {
        let root = SVGBackend::new(&svg, size).into_drawing_area();
        root.fill(&WHITE_BG).map_err(derr)?;
        fig.draw(&root)?;
        root.present().map_err(derr)
    })
    .with_context(|| format!("writing {}", svg.display()))?;
    Ok(vec![png, svg])
}

// ---------------------------------------------------------------------------------------------------------------
// Heatmap of Δ accuracy (ablated × evaluated).

struct Heatmap {
    title: String,
    labels: Vec<String>,
    /// [ablated][evaluated] Δ in pp (None: missing).
    cells: Vec<Vec<Option<f64>>>,
    max_abs: f64,
    cell: i32,
    label_w: i32,
}

const HM_TOP: i32 = 64;
const HM_BAR_W: i32 = 110;

impl Heatmap {
    fn new(s: &Summary, method: &str, m: &super::summary::MethodSummary) -> Self {
        let n = s.groups.len();
        let cells: Vec<Vec<Option<f64>>> =
            (0..n).map(|a| (0..n).map(|e| m.delta(s, a, e).map(|d| d * 100.0)).collect()).collect();
        let max_abs = cells.iter().flatten().flatten().fold(0.0f64, |acc, v| acc.max(v.abs()));
        // Keep the scale non-degenerate (all-zero deltas) and readable for tiny deltas.
        let max_abs = if max_abs.is_finite() && max_abs > 0.05 { max_abs } else { 1.0 };
        let cell = (720 / n.max(1) as i32).clamp(26, 64);
        let labels: Vec<String> = s.groups.iter().map(|g| short(g, 22)).collect();
        let longest = labels.iter().map(|l| l.chars().count()).max().unwrap_or(1) as i32;
        let label_w = (longest * 8 + 16).clamp(40, 200);
        Heatmap {
            title: format!("Δ {} (pp) after ablation: {}", s.metric.label(), short(method, 40)),
            labels,
            cells,
            max_abs,
            cell,
            label_w,
        }
    }
    fn n(&self) -> i32 {
        self.labels.len() as i32
    }
}

impl Figure for Heatmap {
    fn size(&self) -> (u32, u32) {
        let grid = self.n().max(1) * self.cell;
        let w = (self.label_w + grid + HM_BAR_W + 20).max(460);
        let h = HM_TOP + grid + self.label_w + 30;
        (w as u32, h as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        let (x0, y0, c, n) = (self.label_w, HM_TOP, self.cell, self.n());
        let title = font(18.0).pos(Pos::new(HPos::Left, VPos::Top));
        root.draw_text(&self.title, &title, (10, 8)).map_err(derr)?;
        let sub = font(12.0).pos(Pos::new(HPos::Left, VPos::Top));
        root.draw_text("rows: ablated culture's neurons · columns: evaluated culture", &sub, (10, 34)).map_err(derr)?;
        if n == 0 {
            root.draw_text("no groups", &font(14.0), (x0, y0 + 10)).map_err(derr)?;
            return Ok(());
        }
        let name_size = f64::from(c).mul_add(0.3, 4.0).clamp(10.0, 14.0);
        let value_size = (f64::from(c) * 0.3).clamp(8.0, 13.0);
        let row_label = font(name_size).pos(Pos::new(HPos::Right, VPos::Center));
        let col_label = font(name_size).pos(Pos::new(HPos::Right, VPos::Center)).transform(FontTransform::Rotate270);
        for (i, label) in self.labels.iter().enumerate() {
            let i = i as i32;
            root.draw_text(label, &row_label, (x0 - 6, y0 + i * c + c / 2)).map_err(derr)?;
            root.draw_text(label, &col_label, (x0 + i * c + c / 2, y0 + n * c + 6)).map_err(derr)?;
        }
        for (a, row) in self.cells.iter().enumerate() {
            for (e, v) in row.iter().enumerate() {
                let (px, py) = (x0 + e as i32 * c, y0 + a as i32 * c);
                let fill = v.map_or(MISSING, |v| diverging(v, self.max_abs));
                root.draw(&Rectangle::new([(px, py), (px + c, py + c)], fill.filled())).map_err(derr)?;
                let strong = v.is_some_and(|v| v.abs() / self.max_abs > 0.55);
                let colour = if strong { WHITE_BG } else { TEXT };
                let label = v.map_or_else(|| "n/a".to_string(), |v| pp(v / 100.0));
                let style = font(value_size).color(&colour).pos(Pos::new(HPos::Center, VPos::Center));
                root.draw_text(&label, &style, (px + c / 2, py + c / 2)).map_err(derr)?;
                if a == e {
                    root.draw(&Rectangle::new([(px, py), (px + c - 1, py + c - 1)], TEXT.stroke_width(2)))
                        .map_err(derr)?;
                }
            }
        }
        root.draw(&Rectangle::new([(x0, y0), (x0 + n * c, y0 + n * c)], TEXT.stroke_width(1))).map_err(derr)?;
        // Colour bar: +max at the top, 0 in the middle, -max at the bottom.
        let (bx, bh) = (x0 + n * c + 20, (n * c).max(60));
        let steps = 60;
        for k in 0..steps {
            let v = self.max_abs * (1.0 - 2.0 * (f64::from(k) + 0.5) / f64::from(steps));
            let (ya, yb) = (y0 + bh * k / steps, y0 + bh * (k + 1) / steps);
            root.draw(&Rectangle::new([(bx, ya), (bx + 16, yb)], diverging(v, self.max_abs).filled())).map_err(derr)?;
        }
        root.draw(&Rectangle::new([(bx, y0), (bx + 16, y0 + bh)], TEXT.stroke_width(1))).map_err(derr)?;
        let tick = font(11.0).pos(Pos::new(HPos::Left, VPos::Center));
        for (frac, v) in [(0.0, self.max_abs), (0.5, 0.0), (1.0, -self.max_abs)] {
            let y = y0 + (f64::from(bh) * frac).round() as i32;
            root.draw_text(&format!("{} pp", pp(v / 100.0)), &tick, (bx + 20, y)).map_err(derr)?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Line charts: neurons per layer (count, or share of the layer) per method; steering dose-response per culture.

/// One polyline of a `Lines` chart.
struct Line {
    label: String,
    colour: RGBColor,
    /// Stroke width in pixels (emphasised lines are thicker and drawn on top).
    width: u32,
    /// (x, y); non-finite points are left out.
    points: Vec<(f64, f64)>,
}

struct Lines {
    title: String,
    x_desc: String,
    y_desc: String,
    x: Range<f64>,
    y: Range<f64>,
    /// Tick labels at whole numbers only (layer indices, neuron counts).
    whole_x: bool,
    whole_y: bool,
    x_labels: usize,
    width: u32,
    lines: Vec<Line>,
}

/// "3" at whole non-negative numbers, nothing in between.
fn whole_label(v: &f64) -> String {
    let r = v.round();
    if (v - r).abs() < 1e-6 && r >= 0.0 {
        format!("{r:.0}")
    } else {
        String::new()
    }
}

/// % of a layer's `layer_width` neurons selected, averaged over `cultures` (`count` is their sum).
pub(crate) fn layer_share(count: usize, layer_width: usize, cultures: usize) -> f64 {
    count as f64 / (layer_width * cultures) as f64 * 100.0
}

/// Top of a y axis starting at 0 that leaves headroom over `max` (1 when there is no data).
fn y_top(max: f64, whole: bool) -> f64 {
    let top = if max.is_finite() && max > 0.0 { max * 1.15 } else { 1.0 };
    if whole {
        top.ceil()
    } else {
        top
    }
}

impl Lines {
    /// Selected neurons per layer of every method: summed over cultures, or with `share` as % of the
    /// layer's `layer_width` neurons, averaged over cultures.
    /// The random control is left out: its counts are CAS's by construction, and its line would
    /// hide CAS's.
    fn per_layer(s: &Summary, x: &ReportExtras, share: bool) -> Self {
        let lines: Vec<Line> = s
            .methods
            .iter()
            .enumerate()
            .filter(|(_, (name, _))| name.as_str() != "random")
            .map(|(i, (name, m))| {
                let counts = tables::neurons_per_layer(name, m, x);
                let value = |c: usize| if share { layer_share(c, x.layer_width, s.groups.len()) } else { c as f64 };
                let points = counts.iter().enumerate().map(|(l, &c)| (l as f64, value(c))).collect();
                Line { label: name.clone(), colour: method_color(name, i), width: 2, points }
            })
            .collect();
        let layers = lines.iter().map(|l| l.points.len()).max().unwrap_or(0);
        let max = lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)).fold(0.0f64, f64::max);
        let (title, y_desc) = if share {
            ("Selected neurons per layer, % of the layer's width", "% of the layer's neurons (mean over cultures)")
        } else {
            ("Selected neurons per layer", "neurons (summed over cultures)")
        };
        Lines {
            title: title.into(),
            x_desc: "layer".into(),
            y_desc: y_desc.into(),
            x: -0.5..(layers.max(1) as f64 - 0.5),
            y: 0.0..y_top(max, !share),
            whole_x: true,
            whole_y: !share,
            x_labels: layers.clamp(1, 20),
            width: (layers as u32 * 12 + 360).clamp(860, 1500),
            lines,
        }
    }

    /// Dose-response of one steering result: the metric (%) of every culture over the scales, the
    /// steered culture thick, red and first in the legend.
    fn steer(r: &SteerResult) -> Self {
        let steered = steer::steered_index(r);
        let mut others = CULTURES.iter().cycle();
        let mut lines: Vec<Line> = r
            .groups
            .iter()
            .enumerate()
            .map(|(g, name)| {
                let mut points: Vec<(f64, f64)> = r
                    .scales
                    .iter()
                    .zip(&r.values)
                    .filter_map(|(&scale, row)| Some((scale, row.get(g)? * 100.0)))
                    .filter(|(x, y)| x.is_finite() && y.is_finite())
                    .collect();
                // The sweep may be given in any order; a line must run left to right.
                points.sort_by(|a, b| a.0.total_cmp(&b.0));
                if Some(g) == steered {
                    Line { label: format!("{name} (steered)"), colour: SELF_BAR, width: 4, points }
                } else {
                    Line { label: name.clone(), colour: *others.next().unwrap_or(&CROSS_BAR), width: 2, points }
                }
            })
            .collect();
        lines.sort_by_key(|l| std::cmp::Reverse(l.width));
        let xs = lines.iter().flat_map(|l| l.points.iter().map(|p| p.0));
        let ys = lines.iter().flat_map(|l| l.points.iter().map(|p| p.1));
        Lines {
            title: format!("Scaling the {} set ({})", short(&r.culture, 24), short(&r.method, 16)),
            x_desc: "scale of the set's activations".into(),
            y_desc: format!("{} (%)", r.metric.label()),
            x: padded(xs, 0.05, 0.5, None),
            y: padded(ys, 0.1, 1.0, Some(0.0..100.0)),
            whole_x: false,
            whole_y: false,
            x_labels: 10,
            width: 860,
            lines,
        }
    }
}

/// The range of `values` widened by `frac` of its span on each side (by `flat_pad` when all are
/// equal) and kept within `limit`; `limit` (or 0..1) when there are no values.
fn padded(values: impl Iterator<Item = f64>, frac: f64, flat_pad: f64, limit: Option<Range<f64>>) -> Range<f64> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let limit = limit.unwrap_or(f64::NEG_INFINITY..f64::INFINITY);
    if lo > hi {
        return if limit.start.is_finite() && limit.end.is_finite() { limit } else { 0.0..1.0 };
    }
    let pad = if hi > lo { (hi - lo) * frac } else { flat_pad };
    (lo - pad).max(limit.start)..(hi + pad).min(limit.end)
}

impl Figure for Lines {
    fn size(&self) -> (u32, u32) {
        // Tall enough for a legend entry per line.
        (self.width, (80 + 22 * self.lines.len() as u32).max(460))
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, font(18.0))
            .margin(12)
            .margin_right(LEGEND_W)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d(self.x.clone(), self.y.clone())
            .map_err(derr)?;
        let whole = whole_label;
        {
            let mut mesh = chart.configure_mesh();
            mesh.x_labels(self.x_labels)
                .y_labels(8)
                .disable_x_mesh()
                .x_desc(self.x_desc.as_str())
                .y_desc(self.y_desc.as_str())
                .label_style(font(12.0))
                .axis_desc_style(font(13.0));
            if self.whole_x {
                mesh.x_label_formatter(&whole);
            }
            if self.whole_y {
                mesh.y_label_formatter(&whole);
            }
            mesh.draw().map_err(derr)?;
        }
        let longest = self.lines.iter().map(|l| l.points.len()).max().unwrap_or(0);
        let marker = if longest > 40 { 2 } else { 3 };
        let mut on_top: Vec<&Line> = self.lines.iter().collect();
        on_top.sort_by_key(|l| l.width);
        for l in on_top {
            let pts: Vec<(f64, f64)> =
                l.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect();
            chart.draw_series(LineSeries::new(pts.iter().copied(), l.colour.stroke_width(l.width))).map_err(derr)?;
            let radius = if l.width > 2 { marker + 1 } else { marker };
            chart.draw_series(pts.iter().map(|&p| Circle::new(p, radius, l.colour.filled()))).map_err(derr)?;
        }
        let entries: Vec<(String, RGBColor)> = self.lines.iter().map(|l| (l.label.clone(), l.colour)).collect();
        draw_legend(root, &entries)
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Methods overview: mean self Δ vs mean cross Δ per method.

struct Methods {
    /// (method, mean self Δ pp, mean cross Δ pp)
    rows: Vec<(String, f64, f64)>,
    /// What the Δs are of.
    metric: &'static str,
}

impl Figure for Methods {
    fn size(&self) -> (u32, u32) {
        ((self.rows.len() as u32 * 170 + 340).max(620), 440)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> anyhow::Result<()> {
        let n = self.rows.len().max(1);
        let vals = self.rows.iter().flat_map(|r| [r.1, r.2]).filter(|v| v.is_finite());
        let (lo, hi) = vals.fold((0.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let (lo, hi) = if hi - lo < 1e-9 { (-1.0, 1.0) } else { (lo, hi) };
        let pad = (hi - lo) * 0.15;
        let (lo, hi) = (if lo < 0.0 { lo - pad } else { lo }, if hi > 0.0 { hi + pad } else { hi });
        let mut chart = ChartBuilder::on(root)
            .caption(format!("Ablation effect per method (mean Δ {}, pp)", self.metric), font(18.0))
            .margin(12)
            .margin_right(LEGEND_W)
            .x_label_area_size(36)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5f64..(n as f64 - 0.5), lo..hi)
            .map_err(derr)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(0)
            .x_label_formatter(&|_| String::new())
            .y_labels(8)
            .y_label_formatter(&|v| format!("{v:.1}"))
            .y_desc(format!("Δ {} (pp)", self.metric))
            .label_style(font(12.0))
            .axis_desc_style(font(13.0))
            .draw()
            .map_err(derr)?;
        chart.draw_series(LineSeries::new([(-0.5, 0.0), (n as f64 - 0.5, 0.0)], TEXT.stroke_width(1))).map_err(derr)?;
        let value_top = font(11.0).pos(Pos::new(HPos::Center, VPos::Bottom));
        let value_bottom = font(11.0).pos(Pos::new(HPos::Center, VPos::Top));
        for (colour, offset) in [(SELF_BAR, -0.2), (CROSS_BAR, 0.2)] {
            let bars: Vec<(f64, f64)> = self
                .rows
                .iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    let v = if offset < 0.0 { r.1 } else { r.2 };
                    v.is_finite().then_some((i as f64 + offset, v))
                })
                .collect();
            chart
                .draw_series(
                    bars.iter().map(|&(x, v)| Rectangle::new([(x - 0.17, 0.0), (x + 0.17, v)], colour.filled())),
                )
                .map_err(derr)?;
            for &(x, v) in &bars {
                let (px, py) = chart.backend_coord(&(x, v));
                let (style, dy) = if v >= 0.0 { (&value_top, -3) } else { (&value_bottom, 3) };
                root.draw_text(&pp(v / 100.0), style, (px, py + dy)).map_err(derr)?;
            }
        }
        let name_style = font(13.0).pos(Pos::new(HPos::Center, VPos::Top));
        for (i, r) in self.rows.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(i as f64, lo));
            root.draw_text(&short(&r.0, 20), &name_style, (px, py + 8)).map_err(derr)?;
        }
        draw_legend(root, &[("mean self Δ".into(), SELF_BAR), ("mean cross Δ".into(), CROSS_BAR)])?;
        Ok(())
    }
}

/// A written figure: title, file stem (in `figures/`) and the files.
pub(crate) struct Written {
    pub title: String,
    pub stem: String,
    pub files: Vec<PathBuf>,
}

/// Writes all figures into `dir` (created).
pub(crate) fn write_figures(dir: &Path, s: &Summary, x: &ReportExtras) -> anyhow::Result<Vec<Written>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    if let Err(e) = ensure_font() {
        bail!("cannot draw figures: {e}");
    }
    let mut out = Vec::new();
    let files = render(&Lines::per_layer(s, x, false), dir, "neurons_per_layer")?;
    out.push(Written { title: "Selected neurons per layer".into(), stem: "neurons_per_layer".into(), files });
    // The share needs the layer's width (absent in older files) and at least one culture to average over.
    if x.layer_width > 0 && !s.groups.is_empty() {
        let stem = "neurons_per_layer_share";
        let files = render(&Lines::per_layer(s, x, true), dir, stem)?;
        out.push(Written {
            title: "Selected neurons per layer, % of the layer's width".into(),
            stem: stem.into(),
            files,
        });
    }

    for ((name, m), stem) in s.methods.iter().zip(method_stems(s)) {
        let stem = format!("heatmap_{stem}");
        let files = render(&Heatmap::new(s, name, m), dir, &stem)?;
        out.push(Written { title: format!("Δ {} heatmap: {name}", s.metric.label()), stem, files });
    }

    let rows = s.methods.iter().map(|(n, m)| (n.clone(), m.mean_self_delta * 100.0, m.mean_cross_delta * 100.0));
    let files = render(&Methods { rows: rows.collect(), metric: s.metric.label() }, dir, "methods")?;
    out.push(Written { title: "Mean self vs cross Δ per method".into(), stem: "methods".into(), files });
    Ok(out)
}

/// Draws the dose-response figure of `r` into `<dir>/<stem>.{png,svg}` (`dir` created).
pub(crate) fn steer_figure(dir: &Path, r: &SteerResult, stem: &str) -> anyhow::Result<Written> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let files = render(&Lines::steer(r), dir, stem)?;
    Ok(Written {
        title: format!("Dose–response: the {} set of {} scaled", r.method, r.culture),
        stem: stem.into(),
        files,
    })
}
