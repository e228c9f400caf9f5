//! Embedded fonts, text measurement and rasterization with resvg.

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};

use resvg::{tiny_skia, usvg};

use crate::PlotError;

/// Family name of the embedded font, as written into the generated SVGs.
pub(crate) const FONT_FAMILY: &str = "DejaVu Sans";

/// Largest raster side, in pixels, that [`svg_to_png`] agrees to allocate.
const MAX_SIDE_PX: f32 = 16_384.0;

/// The font database shared by every render: DejaVu Sans (regular and bold) only, never
/// the system fonts, so that output does not depend on the machine.
fn fontdb() -> Arc<usvg::fontdb::Database> {
    static DB: OnceLock<Arc<usvg::fontdb::Database>> = OnceLock::new();
    DB.get_or_init(|| {
        let mut db = usvg::fontdb::Database::new();
        db.load_font_data(dejavu::sans::regular().to_vec());
        db.load_font_data(dejavu::sans::bold().to_vec());
        db.set_sans_serif_family(FONT_FAMILY);
        db.set_serif_family(FONT_FAMILY);
        db.set_monospace_family(FONT_FAMILY);
        db.set_cursive_family(FONT_FAMILY);
        db.set_fantasy_family(FONT_FAMILY);
        Arc::new(db)
    })
    .clone()
}

/// Parsing options that resolve every font to the embedded one.
fn options() -> usvg::Options<'static> {
    usvg::Options {
        font_family: FONT_FAMILY.to_owned(),
        fontdb: fontdb(),
        ..usvg::Options::default()
    }
}

/// Ink width, in user units, of `text` set in the embedded font at `size`.
///
/// Falls back to a rough estimate if the measurement fails, so that layout never errors.
pub(crate) fn text_width(text: &str, size: f64, bold: bool) -> f64 {
    if text.trim().is_empty() {
        return 0.0;
    }
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="100000" height="{h}"><text x="0" y="{y}" font-family="{FONT_FAMILY}" font-size="{size}"{w}>{t}</text></svg>"#,
        h = size * 4.0,
        y = size * 2.0,
        w = if bold { r#" font-weight="bold""# } else { "" },
        t = crate::xml::escape(text),
    );
    match usvg::Tree::from_str(&svg, &options()) {
        Ok(tree) => f64::from(tree.root().bounding_box().width()),
        Err(_) => 0.62 * size * text.chars().count() as f64,
    }
}

/// Rasterizes an SVG document to PNG bytes; see [`crate::svg_to_png`].
pub(crate) fn svg_to_png(svg: &str, scale: f32) -> Result<Vec<u8>, PlotError> {
    if !scale.is_finite() || scale <= 0.0 {
        return Err(PlotError::Render(format!(
            "scale must be a positive finite number, got {scale}"
        )));
    }
    let tree = usvg::Tree::from_str(svg, &options())
        .map_err(|e| PlotError::Render(format!("cannot parse SVG: {e}")))?;
    let size = tree.size();
    let (w, h) = (
        (size.width() * scale).ceil(),
        (size.height() * scale).ceil(),
    );
    if !(w >= 1.0 && h >= 1.0 && w <= MAX_SIDE_PX && h <= MAX_SIDE_PX) {
        return Err(PlotError::Render(format!(
            "raster size {w}x{h} px is out of range (1..={MAX_SIDE_PX} px per side)"
        )));
    }
    let mut pixmap = tiny_skia::Pixmap::new(w as u32, h as u32)
        .ok_or_else(|| PlotError::Render(format!("cannot allocate a {w}x{h} px image")))?;
    resvg::render(
        &tree,
        tiny_skia::Transform::from_scale(scale, scale),
        &mut pixmap.as_mut(),
    );
    pixmap
        .encode_png()
        .map_err(|e| PlotError::Render(format!("cannot encode PNG: {e}")))
}
