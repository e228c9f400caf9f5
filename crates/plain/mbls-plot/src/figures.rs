//! Figures that compare several results: reliability diagrams side by side, and a scatter
//! plot of one metric against another (e.g. ECE against accuracy, one point per method).

use std::fmt::Write as _;

use crate::raster::{FONT_FAMILY, text_width};
use crate::svg::{
    self, AXIS_TITLE_SIZE, BLUE, BOX_EDGE, CANVAS, GRID, LEGEND_SIZE, RED, TEXT, TICK_LABEL_SIZE,
    TICK_LEN, TITLE_SIZE, nice_step, text,
};
use crate::xml::escape;
use crate::{PlotError, Reliability, validate};

/// Height of the title band above a grid of panels.
const GRID_TITLE_BAND: f64 = 40.0;

/// The reliability diagrams of `panels` side by side, `columns` per row, each panel the
/// figure of [`reliability_svg`](crate::reliability_svg) (same axes, 480 x 480 units), with
/// `title` above all of them.
pub(crate) fn reliability_grid(
    panels: &[Reliability],
    columns: usize,
    title: &str,
) -> Result<String, PlotError> {
    if panels.is_empty() {
        return Err(PlotError::Empty);
    }
    if columns == 0 {
        return Err(PlotError::Render("a grid needs at least one column".into()));
    }
    for (i, p) in panels.iter().enumerate() {
        validate(p).map_err(|e| match e {
            PlotError::Render(m) => PlotError::Render(format!("panel {i} ({}): {m}", p.title)),
            e => e,
        })?;
    }
    let columns = columns.min(panels.len());
    let rows = panels.len().div_ceil(columns);
    let band = if title.trim().is_empty() {
        0.0
    } else {
        GRID_TITLE_BAND
    };
    let (w, h) = (CANVAS * columns as f64, CANVAS * rows as f64 + band);
    let mut s = String::with_capacity(24 * 1024 * panels.len());
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="'{FONT_FAMILY}', sans-serif" fill="{TEXT}">"#
    );
    let _ = writeln!(
        s,
        r#"<rect x="0" y="0" width="{w}" height="{h}" fill="white"/>"#
    );
    if band > 0.0 {
        text(
            &mut s,
            w / 2.0,
            27.0,
            TITLE_SIZE + 2.0,
            "middle",
            true,
            title,
        );
    }
    for (i, p) in panels.iter().enumerate() {
        let doc = svg::reliability(p);
        // The panel's document without its root element: its hatch pattern is defined by the
        // first panel only (one id per document).
        let inner = doc
            .split_once('\n')
            .map(|(_, rest)| rest)
            .unwrap_or("")
            .trim_end()
            .strip_suffix("</svg>")
            .unwrap_or("");
        let inner = if i == 0 {
            inner.to_string()
        } else {
            inner
                .lines()
                .filter(|l| !l.starts_with("<defs>"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let (x, y) = (
            CANVAS * (i % columns) as f64,
            band + CANVAS * (i / columns) as f64,
        );
        let _ = writeln!(
            s,
            r#"<svg x="{x}" y="{y}" width="{CANVAS}" height="{CANVAS}" viewBox="0 0 {CANVAS} {CANVAS}">"#
        );
        s.push_str(&inner);
        s.push_str("\n</svg>\n");
    }
    s.push_str("</svg>\n");
    Ok(s)
}

/// One point of a [`Scatter`], with optional error bars (one standard deviation, say).
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// Text drawn beside the point; may be empty.
    pub label: String,
    /// x value.
    pub x: f64,
    /// y value.
    pub y: f64,
    /// Half-width of the horizontal error bar (0: none).
    pub x_err: f64,
    /// Half-height of the vertical error bar (0: none).
    pub y_err: f64,
}

/// A set of points drawn with one marker and colour, named in the legend.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// Legend entry.
    pub name: String,
    /// The points.
    pub points: Vec<Point>,
    /// Filled markers (`true`) or hollow ones.
    pub filled: bool,
}

/// A scatter plot: series of labelled points on linear axes fitted to the data.
#[derive(Debug, Clone, PartialEq)]
pub struct Scatter {
    /// Drawn above the plot; may be empty.
    pub title: String,
    /// The x axis title.
    pub x_title: String,
    /// The y axis title.
    pub y_title: String,
    /// The series, drawn in order (the first in blue, the second in red, then grey).
    pub series: Vec<Series>,
    /// Draw a line from each point of the first series to the point of the same label in
    /// the others (e.g. a method before and after temperature scaling).
    pub join_labels: bool,
}

const SC_W: f64 = 640.0;
const SC_H: f64 = 480.0;
const SC_LEFT: f64 = 72.0;
const SC_TOP: f64 = 44.0;
const SC_PLOT_W: f64 = 540.0;
const SC_PLOT_H: f64 = 370.0;

/// Axis range and ticks covering `[lo, hi]` with a margin.
fn axis(lo: f64, hi: f64) -> (f64, f64, Vec<f64>) {
    // Data that is never negative (accuracies, calibration errors) keeps an axis from 0 up.
    let nonneg = lo >= 0.0;
    let (lo, hi) = if hi - lo < 1e-12 {
        (lo - 0.5 * lo.abs().max(1e-3), hi + 0.5 * hi.abs().max(1e-3))
    } else {
        let pad = 0.08 * (hi - lo);
        (lo - pad, hi + pad)
    };
    let lo = if nonneg { lo.max(0.0) } else { lo };
    let step = nice_step(hi - lo, 5.0);
    let first = (lo / step).floor() * step;
    let last = (hi / step).ceil() * step;
    let mut ticks = Vec::new();
    let mut t = first;
    while t <= last + step * 1e-6 && ticks.len() < 64 {
        ticks.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    (first, last, ticks)
}

fn tick_text(v: f64, step: f64) -> String {
    // The fewest decimals that write the step exactly (2.5 needs one, 0.25 two).
    let decimals = (0..6)
        .find(|&d| {
            let x = step * 10f64.powi(d);
            (x - x.round()).abs() < 1e-6 * x.max(1.0)
        })
        .unwrap_or(6) as usize;
    format!("{v:.decimals$}")
}

/// The scatter plot as a standalone SVG document (640 x 480 units).
pub(crate) fn scatter(sc: &Scatter) -> Result<String, PlotError> {
    let all: Vec<&Point> = sc.series.iter().flat_map(|s| &s.points).collect();
    if all.is_empty() {
        return Err(PlotError::Empty);
    }
    for (si, s) in sc.series.iter().enumerate() {
        for (pi, p) in s.points.iter().enumerate() {
            for (name, v) in [
                ("x", p.x),
                ("y", p.y),
                ("x_err", p.x_err),
                ("y_err", p.y_err),
            ] {
                if !v.is_finite() || (name.ends_with("err") && v < 0.0) {
                    return Err(PlotError::Render(format!(
                        "series {si} ({}), point {pi} ({}): {name} = {v}",
                        s.name, p.label
                    )));
                }
            }
        }
    }
    let x_lo = all
        .iter()
        .map(|p| p.x - p.x_err)
        .fold(f64::INFINITY, f64::min);
    let x_hi = all
        .iter()
        .map(|p| p.x + p.x_err)
        .fold(f64::NEG_INFINITY, f64::max);
    let y_lo = all
        .iter()
        .map(|p| p.y - p.y_err)
        .fold(f64::INFINITY, f64::min);
    let y_hi = all
        .iter()
        .map(|p| p.y + p.y_err)
        .fold(f64::NEG_INFINITY, f64::max);
    let (x0, x1, xt) = axis(x_lo, x_hi);
    let (y0, y1, yt) = axis(y_lo.min(0.0).max(y_lo - (y_hi - y_lo)), y_hi);
    let fx = |v: f64| SC_LEFT + SC_PLOT_W * (v - x0) / (x1 - x0);
    let fy = |v: f64| SC_TOP + SC_PLOT_H * (1.0 - (v - y0) / (y1 - y0));
    let x_step = xt.get(1).map_or(1.0, |t| t - xt[0]);
    let y_step = yt.get(1).map_or(1.0, |t| t - yt[0]);

    let mut s = String::with_capacity(16 * 1024);
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{SC_W}" height="{SC_H}" viewBox="0 0 {SC_W} {SC_H}" font-family="'{FONT_FAMILY}', sans-serif" fill="{TEXT}">"#
    );
    let _ = writeln!(
        s,
        r#"<rect x="0" y="0" width="{SC_W}" height="{SC_H}" fill="white"/>"#
    );
    if !sc.title.trim().is_empty() {
        text(
            &mut s,
            SC_LEFT + SC_PLOT_W / 2.0,
            28.0,
            TITLE_SIZE,
            "middle",
            true,
            &sc.title,
        );
    }
    let (bottom, right) = (SC_TOP + SC_PLOT_H, SC_LEFT + SC_PLOT_W);
    let _ = writeln!(s, r#"<g stroke="{GRID}" stroke-width="1">"#);
    for &t in &xt[1..xt.len().saturating_sub(1)] {
        let _ = writeln!(
            s,
            r#"<line x1="{x:.2}" y1="{SC_TOP}" x2="{x:.2}" y2="{bottom}"/>"#,
            x = fx(t)
        );
    }
    for &t in &yt[1..yt.len().saturating_sub(1)] {
        let _ = writeln!(
            s,
            r#"<line x1="{SC_LEFT}" y1="{y:.2}" x2="{right}" y2="{y:.2}"/>"#,
            y = fy(t)
        );
    }
    let _ = writeln!(s, "</g>");
    let _ = writeln!(
        s,
        r#"<rect x="{SC_LEFT}" y="{SC_TOP}" width="{SC_PLOT_W}" height="{SC_PLOT_H}" fill="none" stroke="black" stroke-width="1"/>"#
    );
    let _ = writeln!(s, r#"<g stroke="black" stroke-width="1">"#);
    for &t in &xt {
        let _ = writeln!(
            s,
            r#"<line x1="{x:.2}" y1="{bottom}" x2="{x:.2}" y2="{b2}"/>"#,
            x = fx(t),
            b2 = bottom + TICK_LEN
        );
    }
    for &t in &yt {
        let _ = writeln!(
            s,
            r#"<line x1="{l2}" y1="{y:.2}" x2="{SC_LEFT}" y2="{y:.2}"/>"#,
            y = fy(t),
            l2 = SC_LEFT - TICK_LEN
        );
    }
    let _ = writeln!(s, "</g>");
    for &t in &xt {
        text(
            &mut s,
            fx(t),
            bottom + TICK_LEN + 4.0 + TICK_LABEL_SIZE,
            TICK_LABEL_SIZE,
            "middle",
            false,
            &tick_text(t, x_step),
        );
    }
    for &t in &yt {
        text(
            &mut s,
            SC_LEFT - TICK_LEN - 4.0,
            fy(t) + 0.36 * TICK_LABEL_SIZE,
            TICK_LABEL_SIZE,
            "end",
            false,
            &tick_text(t, y_step),
        );
    }
    text(
        &mut s,
        SC_LEFT + SC_PLOT_W / 2.0,
        bottom + 42.0,
        AXIS_TITLE_SIZE,
        "middle",
        false,
        &sc.x_title,
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate({x:.2} {y:.2}) rotate(-90)" x="0" y="0" font-size="{AXIS_TITLE_SIZE}" text-anchor="middle">{t}</text>"#,
        x = SC_LEFT - 50.0,
        y = SC_TOP + SC_PLOT_H / 2.0,
        t = escape(&sc.y_title),
    );

    let colour = |i: usize| match i {
        0 => BLUE,
        1 => RED,
        _ => "#7f7f7f",
    };
    if sc.join_labels {
        if let Some(first) = sc.series.first() {
            let _ = writeln!(
                s,
                r##"<g stroke="#9a9a9a" stroke-width="1" stroke-dasharray="3 3">"##
            );
            for p in &first.points {
                for other in &sc.series[1..] {
                    for q in other.points.iter().filter(|q| q.label == p.label) {
                        let _ = writeln!(
                            s,
                            r#"<line x1="{:.2}" y1="{:.2}" x2="{:.2}" y2="{:.2}"/>"#,
                            fx(p.x),
                            fy(p.y),
                            fx(q.x),
                            fy(q.y)
                        );
                    }
                }
            }
            let _ = writeln!(s, "</g>");
        }
    }
    let mut labels: Vec<(f64, f64, &str, &str)> = Vec::new();
    for (si, series) in sc.series.iter().enumerate() {
        let c = colour(si);
        for p in &series.points {
            let (px, py) = (fx(p.x), fy(p.y));
            if p.x_err > 0.0 || p.y_err > 0.0 {
                let _ = writeln!(s, r#"<g stroke="{c}" stroke-width="1.2">"#);
                if p.x_err > 0.0 {
                    let _ = writeln!(
                        s,
                        r#"<line x1="{:.2}" y1="{py:.2}" x2="{:.2}" y2="{py:.2}"/>"#,
                        fx(p.x - p.x_err),
                        fx(p.x + p.x_err)
                    );
                }
                if p.y_err > 0.0 {
                    let _ = writeln!(
                        s,
                        r#"<line x1="{px:.2}" y1="{:.2}" x2="{px:.2}" y2="{:.2}"/>"#,
                        fy(p.y - p.y_err),
                        fy(p.y + p.y_err)
                    );
                }
                let _ = writeln!(s, "</g>");
            }
            let fill = if series.filled { c } else { "white" };
            let _ = writeln!(
                s,
                r#"<circle cx="{px:.2}" cy="{py:.2}" r="5" fill="{fill}" stroke="{c}" stroke-width="1.8"/>"#
            );
            if si == 0 && !p.label.is_empty() {
                // Right of the point, or left of it where the label would leave the plot.
                let w = text_width(&p.label, TICK_LABEL_SIZE, false);
                let (lx, anchor) = if px + 8.0 + w > right {
                    (px - 8.0, "end")
                } else {
                    (px + 8.0, "start")
                };
                labels.push((lx, py - 7.0, anchor, p.label.as_str()));
            }
        }
    }
    // The labels last, over every point and bar, on a white halo so that they stay legible.
    for (x, y, anchor, label) in labels {
        let _ = writeln!(
            s,
            r#"<text x="{x:.2}" y="{y:.2}" font-size="{TICK_LABEL_SIZE}" text-anchor="{anchor}" stroke="white" stroke-width="3" stroke-linejoin="round" paint-order="stroke">{}</text>"#,
            escape(label)
        );
    }
    // Legend, upper right.
    if sc.series.len() > 1 || sc.series.iter().any(|s| !s.name.is_empty()) {
        let tw = sc
            .series
            .iter()
            .map(|s| text_width(&s.name, LEGEND_SIZE, false))
            .fold(0.0, f64::max);
        let (w, h) = (
            (tw + 40.0).ceil(),
            12.0 + 20.0 * sc.series.len() as f64 - 4.0,
        );
        let (x, y) = (right - 8.0 - w, SC_TOP + 8.0);
        let _ = writeln!(
            s,
            r#"<rect x="{x:.2}" y="{y:.2}" width="{w:.2}" height="{h:.2}" rx="3" fill="white" fill-opacity="0.92" stroke="{BOX_EDGE}" stroke-width="1"/>"#
        );
        for (si, series) in sc.series.iter().enumerate() {
            let c = colour(si);
            let cy = y + 6.0 + 20.0 * si as f64 + 8.0;
            let fill = if series.filled { c } else { "white" };
            let _ = writeln!(
                s,
                r#"<circle cx="{:.2}" cy="{cy:.2}" r="5" fill="{fill}" stroke="{c}" stroke-width="1.8"/>"#,
                x + 14.0
            );
            text(
                &mut s,
                x + 28.0,
                cy + 0.36 * LEGEND_SIZE,
                LEGEND_SIZE,
                "start",
                false,
                &series.name,
            );
        }
    }
    s.push_str("</svg>\n");
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Bin;

    fn panel(title: &str, acc: f64) -> Reliability {
        Reliability {
            bins: vec![Bin {
                lower: 0.5,
                upper: 1.0,
                count: 10,
                mean_confidence: Some(0.9),
                accuracy: Some(acc),
            }],
            total: 10,
            mean_accuracy: acc,
            mean_confidence: 0.9,
            ece: (0.9 - acc).abs(),
            title: title.into(),
        }
    }

    #[test]
    fn grid_places_every_panel_and_one_pattern() {
        let panels: Vec<Reliability> = (0..5)
            .map(|i| panel(&format!("m{i}"), 0.5 + 0.1 * i as f64))
            .collect();
        let s = reliability_grid(&panels, 3, "Test").unwrap();
        // 3 columns, 2 rows, a title band.
        assert!(s.starts_with(&format!(
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}""#,
            3.0 * CANVAS,
            2.0 * CANVAS + GRID_TITLE_BAND
        )));
        assert_eq!(s.matches(r#"id="hatch""#).count(), 1);
        for i in 0..5 {
            assert!(s.contains(&format!(">m{i}</text>")), "panel {i} missing");
        }
        assert!(s.contains(&format!(
            r#"<svg x="{}" y="{}""#,
            CANVAS,
            GRID_TITLE_BAND + CANVAS
        )));
        let png = crate::svg_to_png(&s, 0.5).unwrap();
        assert!(png.starts_with(b"\x89PNG"));
    }

    #[test]
    fn grid_refuses_bad_panels() {
        assert!(matches!(
            reliability_grid(&[], 2, ""),
            Err(PlotError::Empty)
        ));
        let mut p = panel("bad", 0.5);
        p.ece = f64::NAN;
        let e = reliability_grid(&[panel("ok", 0.5), p], 2, "").unwrap_err();
        assert!(e.to_string().contains("panel 1 (bad)"), "{e}");
    }

    #[test]
    fn scatter_draws_points_labels_and_error_bars() {
        let sc = Scatter {
            title: "ECE against accuracy".into(),
            x_title: "accuracy (%)".into(),
            y_title: "ECE (%)".into(),
            series: vec![
                Series {
                    name: "before".into(),
                    points: vec![
                        Point {
                            label: "CE".into(),
                            x: 80.0,
                            y: 5.0,
                            x_err: 0.5,
                            y_err: 0.3,
                        },
                        Point {
                            label: "MbLS".into(),
                            x: 81.0,
                            y: 1.5,
                            x_err: 0.0,
                            y_err: 0.0,
                        },
                    ],
                    filled: true,
                },
                Series {
                    name: "after".into(),
                    points: vec![
                        Point {
                            label: "CE".into(),
                            x: 80.0,
                            y: 1.0,
                            x_err: 0.0,
                            y_err: 0.0,
                        },
                        Point {
                            label: "MbLS".into(),
                            x: 81.0,
                            y: 1.2,
                            x_err: 0.0,
                            y_err: 0.0,
                        },
                    ],
                    filled: false,
                },
            ],
            join_labels: true,
        };
        let s = scatter(&sc).unwrap();
        assert_eq!(
            s.matches("<circle").count(),
            4 + 2,
            "4 points and 2 legend markers"
        );
        assert!(s.contains(">CE</text>") && s.contains(">MbLS</text>"));
        assert_eq!(s.matches(r#"stroke-dasharray="3 3""#).count(), 1);
        assert!(crate::svg_to_png(&s, 1.0).unwrap().starts_with(b"\x89PNG"));
        // A point's position follows its value: MbLS (lower ECE) is drawn lower (larger y).
        // (Its label is drawn 7 units above it.)
        let cy = |label: &str| {
            let i = s.find(&format!(">{label}</text>")).unwrap();
            let before = &s[..i];
            let t = &before[before.rfind("<text").unwrap()..];
            let v = t.split(" y=\"").nth(1).unwrap();
            v[..v.find('"').unwrap()].parse::<f64>().unwrap() + 7.0
        };
        assert!(cy("MbLS") > cy("CE"));
    }

    #[test]
    fn scatter_refuses_non_finite_and_empty() {
        let mut sc = Scatter {
            title: String::new(),
            x_title: String::new(),
            y_title: String::new(),
            series: vec![],
            join_labels: false,
        };
        assert!(matches!(scatter(&sc), Err(PlotError::Empty)));
        sc.series.push(Series {
            name: "s".into(),
            points: vec![Point {
                label: "p".into(),
                x: f64::NAN,
                y: 1.0,
                x_err: 0.0,
                y_err: 0.0,
            }],
            filled: true,
        });
        assert!(scatter(&sc).unwrap_err().to_string().contains("x = NaN"));
    }

    #[test]
    fn non_negative_data_keeps_its_axis_from_zero_up() {
        let (lo, hi, ticks) = axis(0.5, 5.0);
        assert!(lo >= 0.0 && hi >= 5.0, "{lo} {hi}");
        assert!(ticks.iter().all(|t| *t >= 0.0), "{ticks:?}");
        let (lo, _, _) = axis(-1.0, 5.0);
        assert!(lo < -1.0);
    }

    #[test]
    fn a_label_at_the_right_edge_is_drawn_left_of_its_point() {
        let point = |label: &str, x: f64| Point {
            label: label.into(),
            x,
            y: 2.0,
            x_err: 0.0,
            y_err: 0.0,
        };
        let sc = Scatter {
            title: String::new(),
            x_title: String::new(),
            y_title: String::new(),
            series: vec![Series {
                name: String::new(),
                points: vec![
                    point("left one", 60.0),
                    point("MbLS (m 10, alpha 0.1)", 62.0),
                ],
                filled: true,
            }],
            join_labels: false,
        };
        let s = scatter(&sc).unwrap();
        let anchor = |label: &str| {
            let i = s.find(&format!(">{label}</text>")).unwrap();
            let t = s[..i].rfind("<text").unwrap();
            s[t..i].contains(r#"text-anchor="end""#)
        };
        assert!(!anchor("left one"));
        assert!(anchor("MbLS (m 10, alpha 0.1)"));
    }

    #[test]
    fn tick_labels_have_the_decimals_of_their_step() {
        assert_eq!(tick_text(32.5, 2.5), "32.5");
        assert_eq!(tick_text(35.0, 2.5), "35.0");
        assert_eq!(tick_text(40.0, 10.0), "40");
        assert_eq!(tick_text(0.75, 0.25), "0.75");
        assert_eq!(tick_text(0.2, 0.2), "0.2");
    }

    #[test]
    fn one_point_gets_a_range() {
        let (lo, hi, ticks) = axis(3.0, 3.0);
        assert!(lo < 3.0 && hi > 3.0 && ticks.len() >= 2);
    }
}
