//! Hand-written SVG for the two figures.
//!
//! Both figures share one layout: a 480 x 480 canvas with a square 384 x 384 plot area,
//! the title above it, tick labels and axis titles to the left and below.

use std::fmt::Write as _;

use crate::raster::{FONT_FAMILY, text_width};
use crate::xml::escape;
use crate::{Bin, Reliability};

/// Canvas width and height, in user units.
pub(crate) const CANVAS: f64 = 480.0;
/// Left edge of the plot area.
const PLOT_LEFT: f64 = 72.0;
/// Top edge of the plot area.
const PLOT_TOP: f64 = 44.0;
/// Side of the (square) plot area.
const PLOT_SIZE: f64 = 384.0;

pub(crate) const TITLE_SIZE: f64 = 15.0;
const TITLE_MIN_SIZE: f64 = 11.0;
const TITLE_BASELINE: f64 = 28.0;
pub(crate) const AXIS_TITLE_SIZE: f64 = 13.0;
pub(crate) const TICK_LABEL_SIZE: f64 = 11.0;
pub(crate) const TICK_LEN: f64 = 5.0;
pub(crate) const LEGEND_SIZE: f64 = 12.0;
const LEGEND_ROW: f64 = 20.0;
const LEGEND_PAD: f64 = 8.0;
const LEGEND_SWATCH: f64 = 26.0;
const LEGEND_GAP: f64 = 7.0;
/// Distance between a legend or text box and the plot frame.
const INSET: f64 = 8.0;

pub(crate) const BLUE: &str = "#1f77b4";
const BLUE_EDGE: &str = "#0e3f66";
pub(crate) const RED: &str = "#d62728";
const GREEN: &str = "#2ca02c";
pub(crate) const GRID: &str = "#e3e3e3";
pub(crate) const BOX_EDGE: &str = "#b0b0b0";
pub(crate) const TEXT: &str = "#1a1a1a";
const DIAGONAL: &str = "#4d4d4d";

/// Formats a tick value with at most three decimals and no trailing zeros.
fn tick_label(v: f64) -> String {
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s == "-0" {
        "0".to_owned()
    } else {
        s.to_owned()
    }
}

/// Maps data coordinates to canvas coordinates: x in [0, 1], y in [0, y_max].
struct Frame {
    y_max: f64,
}

impl Frame {
    fn x(&self, v: f64) -> f64 {
        PLOT_LEFT + PLOT_SIZE * v.clamp(0.0, 1.0)
    }
    fn y(&self, v: f64) -> f64 {
        PLOT_TOP + PLOT_SIZE * (1.0 - (v / self.y_max).clamp(0.0, 1.0))
    }
}

/// How a legend entry is drawn.
enum Swatch {
    /// A filled box; `hatch` adds the gap hatching and translucent fill.
    Box {
        fill: &'static str,
        stroke: &'static str,
        hatch: bool,
    },
    /// A (dashed) line.
    Line {
        stroke: &'static str,
        dash: &'static str,
        width: f64,
    },
}

struct Legend {
    entries: Vec<(Swatch, String)>,
}

impl Legend {
    fn size(&self) -> (f64, f64) {
        let text = self
            .entries
            .iter()
            .map(|(_, label)| text_width(label, LEGEND_SIZE, false))
            .fold(0.0, f64::max);
        (
            2.0 * LEGEND_PAD + LEGEND_SWATCH + LEGEND_GAP + text.ceil(),
            2.0 * LEGEND_PAD + LEGEND_ROW * self.entries.len() as f64 - 4.0,
        )
    }

    fn draw(&self, s: &mut String, x: f64, y: f64) {
        let (w, h) = self.size();
        let _ = writeln!(
            s,
            r#"<rect x="{x:.2}" y="{y:.2}" width="{w:.2}" height="{h:.2}" rx="3" fill="white" fill-opacity="0.92" stroke="{BOX_EDGE}" stroke-width="1"/>"#
        );
        for (i, (swatch, label)) in self.entries.iter().enumerate() {
            let row_mid = y + LEGEND_PAD + LEGEND_ROW * i as f64 + (LEGEND_ROW - 4.0) / 2.0;
            let sx = x + LEGEND_PAD;
            match swatch {
                Swatch::Box {
                    fill,
                    stroke,
                    hatch,
                } => {
                    let (bx, by, bw, bh) = (sx, row_mid - 6.0, LEGEND_SWATCH, 12.0);
                    gap_or_bar(s, bx, by, bw, bh, fill, stroke, *hatch);
                }
                Swatch::Line {
                    stroke,
                    dash,
                    width,
                } => {
                    let _ = writeln!(
                        s,
                        r#"<line x1="{x1:.2}" y1="{row_mid:.2}" x2="{x2:.2}" y2="{row_mid:.2}" stroke="{stroke}" stroke-width="{width}" stroke-dasharray="{dash}"/>"#,
                        x1 = sx,
                        x2 = sx + LEGEND_SWATCH,
                    );
                }
            }
            text(
                s,
                sx + LEGEND_SWATCH + LEGEND_GAP,
                row_mid + 0.36 * LEGEND_SIZE,
                LEGEND_SIZE,
                "start",
                false,
                label,
            );
        }
    }
}

/// Draws an output bar (`hatch == false`) or a gap box (`hatch == true`).
#[allow(clippy::too_many_arguments)]
fn gap_or_bar(
    s: &mut String,
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    fill: &str,
    stroke: &str,
    hatch: bool,
) {
    if hatch {
        let _ = writeln!(
            s,
            r#"<rect x="{x:.2}" y="{y:.2}" width="{w:.2}" height="{h:.2}" fill="{fill}" fill-opacity="0.22"/>"#
        );
        let _ = writeln!(
            s,
            r#"<rect x="{x:.2}" y="{y:.2}" width="{w:.2}" height="{h:.2}" fill="url(#hatch)" stroke="{stroke}" stroke-width="1"/>"#
        );
    } else {
        let _ = writeln!(
            s,
            r#"<rect x="{x:.2}" y="{y:.2}" width="{w:.2}" height="{h:.2}" fill="{fill}" stroke="{stroke}" stroke-width="0.8"/>"#
        );
    }
}

/// Writes a `<text>` element.
pub(crate) fn text(
    s: &mut String,
    x: f64,
    y: f64,
    size: f64,
    anchor: &str,
    bold: bool,
    content: &str,
) {
    let _ = writeln!(
        s,
        r#"<text x="{x:.2}" y="{y:.2}" font-size="{size}" text-anchor="{anchor}"{w}>{c}</text>"#,
        w = if bold { r#" font-weight="bold""# } else { "" },
        c = escape(content),
    );
}

/// Opens the document: root element, hatch pattern, white background and the title.
fn begin(title: &str) -> String {
    let mut s = String::with_capacity(16 * 1024);
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{CANVAS}" height="{CANVAS}" viewBox="0 0 {CANVAS} {CANVAS}" font-family="'{FONT_FAMILY}', sans-serif" fill="{TEXT}">"#
    );
    let _ = writeln!(
        s,
        r#"<defs><pattern id="hatch" patternUnits="userSpaceOnUse" width="6" height="6" patternTransform="rotate(45)"><line x1="0" y1="0" x2="0" y2="6" stroke="{RED}" stroke-width="1.6" stroke-opacity="0.85"/></pattern></defs>"#
    );
    let _ = writeln!(
        s,
        r#"<rect x="0" y="0" width="{CANVAS}" height="{CANVAS}" fill="white"/>"#
    );
    let (size, title) = fit_title(title);
    if !title.is_empty() {
        text(
            &mut s,
            PLOT_LEFT + PLOT_SIZE / 2.0,
            TITLE_BASELINE,
            size,
            "middle",
            true,
            &title,
        );
    }
    s
}

/// Shrinks, and if need be truncates, the title so that it fits above the plot area.
fn fit_title(title: &str) -> (f64, String) {
    let title = title.trim();
    let center = PLOT_LEFT + PLOT_SIZE / 2.0;
    let max_w = 2.0 * center.min(CANVAS - center) - 2.0 * INSET;
    let w = text_width(title, TITLE_SIZE, true);
    if w <= max_w {
        return (TITLE_SIZE, title.to_owned());
    }
    let size = (TITLE_SIZE * max_w / w).floor().max(TITLE_MIN_SIZE);
    if text_width(title, size, true) <= max_w {
        return (size, title.to_owned());
    }
    let chars: Vec<char> = title.chars().collect();
    let mut keep = chars.len();
    while keep > 0 {
        keep -= 1;
        let t: String = chars[..keep]
            .iter()
            .collect::<String>()
            .trim_end()
            .to_owned()
            + "…";
        if text_width(&t, size, true) <= max_w {
            return (size, t);
        }
    }
    (size, String::new())
}

/// Light grid lines at the inner ticks.
fn grid(s: &mut String, f: &Frame, y_ticks: &[f64]) {
    let _ = writeln!(s, r#"<g stroke="{GRID}" stroke-width="1">"#);
    for &t in &X_TICKS[1..X_TICKS.len() - 1] {
        let x = f.x(t);
        let _ = writeln!(
            s,
            r#"<line x1="{x:.2}" y1="{PLOT_TOP}" x2="{x:.2}" y2="{b}"/>"#,
            b = PLOT_TOP + PLOT_SIZE
        );
    }
    for &t in y_ticks.iter().filter(|&&t| t > 0.0 && t < f.y_max) {
        let y = f.y(t);
        let _ = writeln!(
            s,
            r#"<line x1="{PLOT_LEFT}" y1="{y:.2}" x2="{r}" y2="{y:.2}"/>"#,
            r = PLOT_LEFT + PLOT_SIZE
        );
    }
    let _ = writeln!(s, "</g>");
}

const X_TICKS: [f64; 6] = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0];

/// Plot frame, tick marks, tick labels and axis titles.
fn axes(
    s: &mut String,
    f: &Frame,
    y_ticks: &[f64],
    y_label: impl Fn(f64) -> String,
    x_title: &str,
    y_title: &str,
) {
    let bottom = PLOT_TOP + PLOT_SIZE;
    let _ = writeln!(
        s,
        r#"<rect x="{PLOT_LEFT}" y="{PLOT_TOP}" width="{PLOT_SIZE}" height="{PLOT_SIZE}" fill="none" stroke="black" stroke-width="1"/>"#
    );
    let _ = writeln!(s, r#"<g stroke="black" stroke-width="1">"#);
    for &t in &X_TICKS {
        let x = f.x(t);
        let _ = writeln!(
            s,
            r#"<line x1="{x:.2}" y1="{bottom}" x2="{x:.2}" y2="{b2}"/>"#,
            b2 = bottom + TICK_LEN
        );
    }
    for &t in y_ticks {
        let y = f.y(t);
        let _ = writeln!(
            s,
            r#"<line x1="{l2}" y1="{y:.2}" x2="{PLOT_LEFT}" y2="{y:.2}"/>"#,
            l2 = PLOT_LEFT - TICK_LEN
        );
    }
    let _ = writeln!(s, "</g>");
    for &t in &X_TICKS {
        text(
            s,
            f.x(t),
            bottom + TICK_LEN + 4.0 + TICK_LABEL_SIZE,
            TICK_LABEL_SIZE,
            "middle",
            false,
            &format!("{t:.1}"),
        );
    }
    for &t in y_ticks {
        text(
            s,
            PLOT_LEFT - TICK_LEN - 4.0,
            f.y(t) + 0.36 * TICK_LABEL_SIZE,
            TICK_LABEL_SIZE,
            "end",
            false,
            &y_label(t),
        );
    }
    text(
        s,
        PLOT_LEFT + PLOT_SIZE / 2.0,
        bottom + 42.0,
        AXIS_TITLE_SIZE,
        "middle",
        false,
        x_title,
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate({x:.2} {y:.2}) rotate(-90)" x="0" y="0" font-size="{AXIS_TITLE_SIZE}" text-anchor="middle">{t}</text>"#,
        x = PLOT_LEFT - 46.0,
        y = PLOT_TOP + PLOT_SIZE / 2.0,
        t = escape(y_title),
    );
}

/// The drawable part of a bin: `(lower, upper, mean_confidence, accuracy)`, or `None`
/// for an empty bin.
fn drawable(b: &Bin) -> Option<(f64, f64, f64, f64)> {
    match (b.count, b.mean_confidence, b.accuracy) {
        (1.., Some(c), Some(a)) => Some((b.lower, b.upper, c, a)),
        _ => None,
    }
}

/// The reliability diagram; input already validated.
pub(crate) fn reliability(r: &Reliability) -> String {
    let f = Frame { y_max: 1.0 };
    let mut s = begin(&r.title);
    grid(&mut s, &f, &X_TICKS);

    // Outputs: accuracy bars.
    let _ = writeln!(s, "<g>");
    for (lo, hi, _, acc) in r.bins.iter().filter_map(drawable) {
        let (x0, x1) = (f.x(lo), f.x(hi));
        let y = f.y(acc);
        gap_or_bar(&mut s, x0, y, x1 - x0, f.y(0.0) - y, BLUE, BLUE_EDGE, false);
    }
    // Gap: from accuracy to mean confidence, same x span.
    for (lo, hi, conf, acc) in r.bins.iter().filter_map(drawable) {
        let (x0, x1) = (f.x(lo), f.x(hi));
        let (y0, y1) = (f.y(acc.max(conf)), f.y(acc.min(conf)));
        if y1 - y0 > 0.0 {
            gap_or_bar(&mut s, x0, y0, x1 - x0, y1 - y0, RED, RED, true);
        }
    }
    let _ = writeln!(s, "</g>");

    // Perfect calibration.
    let _ = writeln!(
        s,
        r#"<line x1="{x0:.2}" y1="{y0:.2}" x2="{x1:.2}" y2="{y1:.2}" stroke="{DIAGONAL}" stroke-width="1.5" stroke-dasharray="6 4"/>"#,
        x0 = f.x(0.0),
        y0 = f.y(0.0),
        x1 = f.x(1.0),
        y1 = f.y(1.0),
    );

    axes(
        &mut s,
        &f,
        &X_TICKS,
        |t| format!("{t:.1}"),
        "Confidence",
        "Accuracy",
    );

    let legend = Legend {
        entries: vec![
            (
                Swatch::Box {
                    fill: BLUE,
                    stroke: BLUE_EDGE,
                    hatch: false,
                },
                "Outputs".to_owned(),
            ),
            (
                Swatch::Box {
                    fill: RED,
                    stroke: RED,
                    hatch: true,
                },
                "Gap".to_owned(),
            ),
            (
                Swatch::Line {
                    stroke: DIAGONAL,
                    dash: "6 4",
                    width: 1.5,
                },
                "Perfect calibration".to_owned(),
            ),
        ],
    };
    legend.draw(&mut s, PLOT_LEFT + INSET, PLOT_TOP + INSET);

    // ECE box, lower right.
    let ece = format!("ECE = {:.2}%", r.ece * 100.0);
    let size = 13.0;
    let (w, h) = (
        (text_width(&ece, size, false) + 2.0 * 7.0).ceil(),
        size + 12.0,
    );
    let (x, y) = (
        PLOT_LEFT + PLOT_SIZE - INSET - w,
        PLOT_TOP + PLOT_SIZE - INSET - h,
    );
    let _ = writeln!(
        s,
        r#"<rect x="{x:.2}" y="{y:.2}" width="{w:.2}" height="{h:.2}" rx="3" fill="white" fill-opacity="0.92" stroke="{BOX_EDGE}" stroke-width="1"/>"#
    );
    text(
        &mut s,
        x + w / 2.0,
        y + h / 2.0 + 0.36 * size,
        size,
        "middle",
        false,
        &ece,
    );

    s.push_str("</svg>\n");
    s
}

/// A "nice" tick step (1, 2, 2.5 or 5 times a power of ten) giving about `target`
/// intervals up to `max`.
pub(crate) fn nice_step(max: f64, target: f64) -> f64 {
    let raw = max / target;
    let mag = 10f64.powf(raw.log10().floor());
    let norm = raw / mag;
    let m = if norm <= 1.0 {
        1.0
    } else if norm <= 2.0 {
        2.0
    } else if norm <= 2.5 {
        2.5
    } else if norm <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * mag
}

/// The confidence histogram; input already validated.
pub(crate) fn histogram(r: &Reliability) -> String {
    let total = r.total as f64;
    // Bars as (lower, upper, percent of samples).
    let bars: Vec<(f64, f64, f64)> = r
        .bins
        .iter()
        .filter(|b| b.count > 0)
        .map(|b| (b.lower, b.upper, 100.0 * b.count as f64 / total))
        .collect();
    let max_pct = bars.iter().map(|b| b.2).fold(0.0, f64::max);
    let max_pct = if max_pct > 0.0 { max_pct } else { 1.0 };
    let step = nice_step(max_pct, 5.0);
    let mut top = (max_pct / step - 1e-9).ceil().max(1.0) * step;

    let acc_label = format!("Accuracy ({:.2}%)", r.mean_accuracy * 100.0);
    let conf_label = format!("Avg. confidence ({:.2}%)", r.mean_confidence * 100.0);
    let legend = Legend {
        entries: vec![
            (
                Swatch::Line {
                    stroke: RED,
                    dash: "7 4",
                    width: 2.0,
                },
                acc_label,
            ),
            (
                Swatch::Line {
                    stroke: GREEN,
                    dash: "2.5 2.5",
                    width: 2.0,
                },
                conf_label,
            ),
        ],
    };

    // Legend placement: an upper corner that no mean line crosses, raising the y range
    // (in whole steps) until the bars under the legend clear it. Left is preferred.
    let (lw, lh) = legend.size();
    let lines = [r.mean_accuracy, r.mean_confidence];
    let candidates = [PLOT_LEFT + INSET, PLOT_LEFT + PLOT_SIZE - INSET - lw];
    let clear_frac = 1.0 - (INSET + lh + 6.0) / PLOT_SIZE;
    let mut best: Option<(f64, f64)> = None; // (legend x, needed top)
    for &lx in &candidates {
        let (d0, d1) = (
            (lx - 4.0 - PLOT_LEFT) / PLOT_SIZE,
            (lx + lw + 4.0 - PLOT_LEFT) / PLOT_SIZE,
        );
        if lines.iter().any(|&m| m >= d0 && m <= d1) {
            continue;
        }
        let under = bars
            .iter()
            .filter(|b| b.1 > d0 && b.0 < d1)
            .map(|b| b.2)
            .fold(0.0, f64::max);
        let needed = ((under / clear_frac) / step - 1e-9).ceil() * step;
        if best.is_none_or(|(_, n)| needed.max(top) < n.max(top)) {
            best = Some((lx, needed));
        }
    }
    let legend_x = match best {
        Some((lx, needed)) => {
            top = top.max(needed);
            lx
        }
        None => candidates[0],
    };

    let f = Frame { y_max: top };
    let n_ticks = (top / step).round() as usize;
    let y_ticks: Vec<f64> = (0..=n_ticks).map(|i| i as f64 * step).collect();
    let mut s = begin(&r.title);
    grid(&mut s, &f, &y_ticks);

    let _ = writeln!(s, "<g>");
    for &(lo, hi, pct) in &bars {
        let (x0, x1) = (f.x(lo), f.x(hi));
        let y = f.y(pct);
        gap_or_bar(&mut s, x0, y, x1 - x0, f.y(0.0) - y, BLUE, BLUE_EDGE, false);
    }
    let _ = writeln!(s, "</g>");

    // Frame first, so that a mean line at 0 or 1 is drawn over it.
    axes(
        &mut s,
        &f,
        &y_ticks,
        tick_label,
        "Confidence",
        "% of samples",
    );
    for (m, color, dash) in [
        (r.mean_accuracy, RED, "7 4"),
        (r.mean_confidence, GREEN, "2.5 2.5"),
    ] {
        let x = f.x(m);
        let _ = writeln!(
            s,
            r#"<line x1="{x:.2}" y1="{y0:.2}" x2="{x:.2}" y2="{y1:.2}" stroke="{color}" stroke-width="2" stroke-dasharray="{dash}"/>"#,
            y0 = f.y(0.0),
            y1 = f.y(top),
        );
    }

    legend.draw(&mut s, legend_x, PLOT_TOP + INSET);

    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(100.0, 5.0), 20.0);
        assert_eq!(nice_step(12.0, 5.0), 2.5);
        assert_eq!(nice_step(40.0, 5.0), 10.0);
        assert!((nice_step(0.3, 5.0) - 0.1).abs() < 1e-12);
        assert_eq!(tick_label(12.5), "12.5");
        assert_eq!(tick_label(20.0), "20");
        assert_eq!(tick_label(0.0), "0");
    }

    #[test]
    fn long_titles_fit() {
        let (size, t) = fit_title(&"very long title ".repeat(20));
        assert_eq!(size, TITLE_MIN_SIZE);
        assert!(t.ends_with('…'));
        assert!(text_width(&t, size, true) <= CANVAS);
        assert_eq!(fit_title("Short").1, "Short");
    }

    #[test]
    fn text_is_measured_with_the_embedded_font() {
        let w = text_width("Confidence", 13.0, false);
        assert!(w > 40.0 && w < 120.0, "{w}");
        assert!(text_width("Confidence", 13.0, true) > w);
    }
}
