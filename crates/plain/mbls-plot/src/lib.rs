//! Reliability diagrams for calibration results, as SVG and PNG, plus a per-bin CSV.
//!
//! Two figures are drawn from one [`Reliability`] summary, in the style common in the
//! calibration literature (e.g. Guo et al., 2017, "On Calibration of Modern Neural
//! Networks"):
//!
//! * [`reliability_svg`]: accuracy per confidence bin as bars ("Outputs"), the gap to the
//!   bin's mean confidence as a hatched translucent red box ("Gap"), the dashed diagonal of
//!   perfect calibration, and the ECE in the lower right corner;
//! * [`histogram_svg`]: the fraction of samples per confidence bin, with dashed vertical
//!   lines at the mean accuracy and the mean confidence.
//!
//! Bins may have unequal widths (adaptive binning); each bar spans its bin's
//! `[lower, upper]`. The SVGs are written by hand and use the DejaVu Sans font, which is
//! embedded in this crate for rasterizing: [`svg_to_png`] never reads system fonts, so
//! PNG output is the same on every machine, including machines without any font
//! installed. [`write_all`] writes both figures in both formats and [`bins_csv`] to a
//! directory, each file atomically.
//!
//! ```
//! use mbls_plot::{Bin, Reliability};
//! let r = Reliability {
//!     bins: vec![
//!         Bin { lower: 0.0, upper: 0.5, count: 40, mean_confidence: Some(0.4), accuracy: Some(0.45) },
//!         Bin { lower: 0.5, upper: 1.0, count: 60, mean_confidence: Some(0.9), accuracy: Some(0.8) },
//!     ],
//!     total: 100,
//!     mean_accuracy: 0.66,
//!     mean_confidence: 0.7,
//!     ece: 0.08,
//!     title: "Example".to_owned(),
//! };
//! let svg = mbls_plot::reliability_svg(&r).unwrap();
//! let png = mbls_plot::svg_to_png(&svg, 1.0).unwrap();
//! assert!(png.starts_with(b"\x89PNG"));
//! assert!(mbls_plot::bins_csv(&r).starts_with("bin,lower,upper,count,"));
//! ```

#![warn(missing_docs)]

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

mod figures;
mod raster;
mod svg;
mod xml;

pub use figures::{Point, Scatter, Series};

/// One confidence bin of a reliability diagram.
#[derive(Debug, Clone, PartialEq)]
pub struct Bin {
    /// Lower edge of the bin, in `[0, 1]`.
    pub lower: f64,
    /// Upper edge of the bin, in `[0, 1]`, not below `lower`.
    pub upper: f64,
    /// Number of samples whose confidence falls in the bin.
    pub count: u64,
    /// Mean confidence of the samples in the bin; `None` when the bin is empty.
    pub mean_confidence: Option<f64>,
    /// Fraction of correct predictions in the bin; `None` when the bin is empty.
    pub accuracy: Option<f64>,
}

/// Everything a reliability diagram shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Reliability {
    /// The confidence bins, in any order; they may have unequal widths.
    pub bins: Vec<Bin>,
    /// Total number of samples (the denominator of the histogram's fractions).
    pub total: u64,
    /// Accuracy over all samples, in `[0, 1]`.
    pub mean_accuracy: f64,
    /// Mean confidence over all samples, in `[0, 1]`.
    pub mean_confidence: f64,
    /// Expected calibration error, in `[0, 1]` (shown as a percentage).
    pub ece: f64,
    /// Title drawn above both figures; may be empty.
    pub title: String,
}

impl Reliability {
    /// The top-label reliability statistics of a classification report (its equal-width
    /// bins, accuracy by the first maximal class, mean confidence and ECE).
    pub fn from_metrics(m: &mbls_metrics::ClassificationMetrics, title: &str) -> Self {
        Reliability {
            bins: m
                .bins
                .iter()
                .map(|b| Bin {
                    lower: b.lower,
                    upper: b.upper,
                    count: b.count,
                    mean_confidence: b.mean_confidence,
                    accuracy: b.accuracy,
                })
                .collect(),
            total: m.samples,
            mean_accuracy: m.acc_first_max,
            mean_confidence: m.mean_confidence,
            ece: m.ece,
            title: title.to_string(),
        }
    }
}

/// Errors while drawing or writing plots.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// A file or directory could not be created or written.
    #[error("{path}: {error}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// The input cannot be drawn (a non-finite or out-of-range value, named in the
    /// message), or the SVG could not be parsed, rasterized or encoded.
    #[error("cannot render plot: {0}")]
    Render(String),
    /// Nothing to plot: there are no bins, or the total sample count is zero.
    #[error("nothing to plot: no bins or no samples")]
    Empty,
}

/// Slack allowed on the `[0, 1]` range checks, for rounding in upstream computations.
const RANGE_TOLERANCE: f64 = 1e-9;

/// Checks that `r` can be drawn: bins present, samples counted, every value finite and
/// within `[0, 1]`, each bin's `lower <= upper`.
pub(crate) fn validate(r: &Reliability) -> Result<(), PlotError> {
    if r.bins.is_empty() || r.total == 0 {
        return Err(PlotError::Empty);
    }
    fn check(name: &dyn Fn() -> String, v: f64) -> Result<(), PlotError> {
        if !v.is_finite() {
            return Err(PlotError::Render(format!("{} is not finite ({v})", name())));
        }
        if !(-RANGE_TOLERANCE..=1.0 + RANGE_TOLERANCE).contains(&v) {
            return Err(PlotError::Render(format!(
                "{} = {v} is outside [0, 1]",
                name()
            )));
        }
        Ok(())
    }
    check(&|| "mean_accuracy".to_owned(), r.mean_accuracy)?;
    check(&|| "mean_confidence".to_owned(), r.mean_confidence)?;
    check(&|| "ece".to_owned(), r.ece)?;
    for (i, b) in r.bins.iter().enumerate() {
        check(&|| format!("bins[{i}].lower"), b.lower)?;
        check(&|| format!("bins[{i}].upper"), b.upper)?;
        if let Some(c) = b.mean_confidence {
            check(&|| format!("bins[{i}].mean_confidence"), c)?;
        }
        if let Some(a) = b.accuracy {
            check(&|| format!("bins[{i}].accuracy"), a)?;
        }
        if b.lower > b.upper {
            return Err(PlotError::Render(format!(
                "bins[{i}]: lower {} is above upper {}",
                b.lower, b.upper
            )));
        }
    }
    Ok(())
}

/// Draws the reliability diagram as a standalone SVG document (480 x 480 user units).
///
/// x is confidence and y accuracy, both over `[0, 1]`, in a square plot area. Each
/// non-empty bin (count above zero, mean confidence and accuracy present) gets a blue bar
/// over `[lower, upper]` up to its accuracy ("Outputs") and a hatched translucent red box
/// between its accuracy and its mean confidence ("Gap"). Empty bins are left blank. The
/// dashed diagonal marks perfect calibration; `r.title` is drawn above, the ECE (as a
/// percentage with two decimals) in the lower right corner.
///
/// # Errors
///
/// [`PlotError::Empty`] if there are no bins or `r.total == 0`; [`PlotError::Render`]
/// naming the field if a value is non-finite or outside `[0, 1]`, or a bin's `lower`
/// exceeds its `upper`.
pub fn reliability_svg(r: &Reliability) -> Result<String, PlotError> {
    validate(r)?;
    Ok(svg::reliability(r))
}

/// Draws the confidence histogram as a standalone SVG document (480 x 480 user units).
///
/// Each bin with samples gets a bar over `[lower, upper]` whose height is its share of
/// the samples, `count / total`, on a "% of samples" axis. Dashed vertical lines mark the
/// mean accuracy (red, "Accuracy") and the mean confidence (green, "Avg. confidence");
/// the legend gives both values and is placed in an upper corner clear of the lines and
/// bars.
///
/// # Errors
///
/// As for [`reliability_svg`].
pub fn histogram_svg(r: &Reliability) -> Result<String, PlotError> {
    validate(r)?;
    Ok(svg::histogram(r))
}

/// The reliability diagrams of `panels` side by side, `columns` per row (fewer when there are
/// fewer panels), `title` above them: each panel is the figure of [`reliability_svg`] (same
/// axes and size, 480 x 480 units), so methods can be compared at a glance.
///
/// # Errors
///
/// [`PlotError::Empty`] without panels; [`PlotError::Render`] for `columns == 0` or a panel
/// that [`reliability_svg`] refuses (named by its index and title).
pub fn reliability_grid_svg(
    panels: &[Reliability],
    columns: usize,
    title: &str,
) -> Result<String, PlotError> {
    figures::reliability_grid(panels, columns, title)
}

/// Draws a scatter plot (640 x 480 units): each series' points with error bars and labels
/// (the first series' labels are written beside its points), axes fitted to the data, a
/// legend when there is more than one series.
///
/// # Errors
///
/// [`PlotError::Empty`] without points; [`PlotError::Render`] naming the series and point
/// of a non-finite value or a negative error bar.
pub fn scatter_svg(scatter: &Scatter) -> Result<String, PlotError> {
    figures::scatter(scatter)
}

/// Writes `svg` as `{stem}.svg` and `{stem}.png` (at `scale`) in `dir`, each atomically;
/// the PNG is rendered before anything is written. Returns both paths.
///
/// # Errors
///
/// As for [`svg_to_png`], and [`PlotError::Io`] naming the path.
pub fn write_svg_png(
    svg: &str,
    scale: f32,
    dir: &Path,
    stem: &str,
) -> Result<Vec<PathBuf>, PlotError> {
    let png = svg_to_png(svg, scale)?;
    std::fs::create_dir_all(dir).map_err(|error| PlotError::Io {
        path: dir.to_owned(),
        error,
    })?;
    let (a, b) = (
        dir.join(format!("{stem}.svg")),
        dir.join(format!("{stem}.png")),
    );
    write_atomic(&a, svg.as_bytes())?;
    write_atomic(&b, &png)?;
    Ok(vec![a, b])
}

/// Rasterizes an SVG document to PNG bytes with resvg, `scale` times its size in user
/// units (so `scale = 2.0` turns a 480-unit figure into 960 x 960 pixels).
///
/// Text is set in the embedded DejaVu Sans, whatever family the SVG asks for; system
/// fonts are never loaded. Areas the SVG leaves unpainted stay transparent (the figures
/// of this crate paint a white background).
///
/// # Errors
///
/// [`PlotError::Render`] if `scale` is not a positive finite number, the SVG cannot be
/// parsed, the image would be larger than 16384 pixels on a side, or PNG encoding fails.
pub fn svg_to_png(svg: &str, scale: f32) -> Result<Vec<u8>, PlotError> {
    raster::svg_to_png(svg, scale)
}

/// Per-bin table as CSV, one row per bin in the order given, with a header line:
/// `bin,lower,upper,count,mean_confidence,accuracy,gap`.
///
/// `bin` is the 0-based index; `gap` is `mean_confidence - accuracy` (positive when the
/// bin is overconfident). Numbers are written at full precision (shortest form that reads
/// back to the same `f64`). For an empty bin, a missing `mean_confidence` or `accuracy`
/// is an empty field, as is `gap` unless both are present. Lines end in `\n`.
pub fn bins_csv(r: &Reliability) -> String {
    let mut s = String::from("bin,lower,upper,count,mean_confidence,accuracy,gap\n");
    let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
    for (i, b) in r.bins.iter().enumerate() {
        let gap = match (b.mean_confidence, b.accuracy) {
            (Some(c), Some(a)) => Some(c - a),
            _ => None,
        };
        let _ = writeln!(
            s,
            "{i},{},{},{},{},{},{}",
            b.lower,
            b.upper,
            b.count,
            opt(b.mean_confidence),
            opt(b.accuracy),
            opt(gap)
        );
    }
    s
}

/// Scale at which [`write_all`] rasterizes the figures (480 units become 960 pixels).
pub const PNG_SCALE: f32 = 2.0;

/// Writes every output for `r` into `dir`, creating it (and its parents) if needed:
/// `{stem}_reliability.svg`, `{stem}_reliability.png`, `{stem}_histogram.svg`,
/// `{stem}_histogram.png` (PNGs at [`PNG_SCALE`]) and `{stem}_bins.csv`.
///
/// Everything is rendered before anything is written, so invalid input leaves `dir`
/// untouched. Each file is written to a temporary file in `dir` and renamed into place,
/// so readers never see a partial file; existing files are replaced. Returns the paths
/// written, in the order above.
///
/// # Errors
///
/// As for [`reliability_svg`] and [`svg_to_png`], and [`PlotError::Io`] naming the path
/// if the directory or a file cannot be created, written or renamed.
pub fn write_all(r: &Reliability, dir: &Path, stem: &str) -> Result<Vec<PathBuf>, PlotError> {
    let reliability = reliability_svg(r)?;
    let histogram = histogram_svg(r)?;
    let reliability_png = svg_to_png(&reliability, PNG_SCALE)?;
    let histogram_png = svg_to_png(&histogram, PNG_SCALE)?;
    let outputs: [(&str, Vec<u8>); 5] = [
        ("reliability.svg", reliability.into_bytes()),
        ("reliability.png", reliability_png),
        ("histogram.svg", histogram.into_bytes()),
        ("histogram.png", histogram_png),
        ("bins.csv", bins_csv(r).into_bytes()),
    ];
    std::fs::create_dir_all(dir).map_err(|error| PlotError::Io {
        path: dir.to_owned(),
        error,
    })?;
    let mut written = Vec::with_capacity(outputs.len());
    for (suffix, bytes) in &outputs {
        let path = dir.join(format!("{stem}_{suffix}"));
        write_atomic(&path, bytes)?;
        written.push(path);
    }
    Ok(written)
}

/// Writes `bytes` to `path` atomically (temporary file beside it, synced, renamed over it).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PlotError> {
    let io = |p: &Path, error| PlotError::Io {
        path: p.to_owned(),
        error,
    };
    mbls_base::fs::write_atomic(path, io, |w| w.write_all(bytes).map_err(|e| io(path, e)))
}

#[cfg(test)]
mod tests;
