use super::*;
use resvg::tiny_skia::Pixmap;

fn bin(lower: f64, upper: f64, count: u64, conf_acc: Option<(f64, f64)>) -> Bin {
    Bin {
        lower,
        upper,
        count,
        mean_confidence: conf_acc.map(|c| c.0),
        accuracy: conf_acc.map(|c| c.1),
    }
}

/// Ten equal bins, two of them empty, overconfident at the top.
fn sample(title: &str) -> Reliability {
    let mut bins = Vec::new();
    let data = [
        (0, None),
        (3, Some((0.15, 0.1))),
        (5, Some((0.26, 0.3))),
        (0, None),
        (20, Some((0.45, 0.4))),
        (40, Some((0.55, 0.5))),
        (60, Some((0.66, 0.55))),
        (90, Some((0.75, 0.62))),
        (180, Some((0.86, 0.71))),
        (602, Some((0.97, 0.85))),
    ];
    for (i, (count, ca)) in data.into_iter().enumerate() {
        bins.push(bin(i as f64 / 10.0, (i + 1) as f64 / 10.0, count, ca));
    }
    Reliability {
        bins,
        total: 1000,
        mean_accuracy: 0.75,
        mean_confidence: 0.88,
        ece: 0.1234,
        title: title.to_owned(),
    }
}

fn decode(png: &[u8]) -> Pixmap {
    Pixmap::decode_png(png).expect("valid PNG")
}

/// Pixels in rows `y0..y1` darker than mid-grey and opaque.
fn dark_pixels(p: &Pixmap, y0: u32, y1: u32) -> usize {
    (y0..y1)
        .flat_map(|y| (0..p.width()).map(move |x| (x, y)))
        .filter(|&(x, y)| {
            let c = p.pixel(x, y).unwrap();
            c.alpha() == 255 && c.red() < 128 && c.green() < 128 && c.blue() < 128
        })
        .count()
}

#[test]
fn figures_parse_and_rasterize() {
    let r = sample("Model A");
    for svg in [reliability_svg(&r).unwrap(), histogram_svg(&r).unwrap()] {
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        let png = svg_to_png(&svg, 1.0).unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
        assert!(
            png.len() > 5_000,
            "suspiciously small PNG: {} bytes",
            png.len()
        );
        let p = decode(&png);
        assert_eq!((p.width(), p.height()), (480, 480));
        // White, opaque background.
        assert_eq!(p.pixel(2, 2).unwrap().alpha(), 255);
        assert_eq!(p.pixel(2, 2).unwrap().red(), 255);

        let p = decode(&svg_to_png(&svg, 2.0).unwrap());
        assert_eq!((p.width(), p.height()), (960, 960));
    }
}

#[test]
fn text_renders_with_embedded_font() {
    // The title band (above the plot area, which starts at y = 44) holds nothing but the
    // title, so dark pixels there are glyphs, drawn with the embedded font only.
    for f in [reliability_svg, histogram_svg] {
        let with =
            decode(&svg_to_png(&f(&sample("Reliability of Model A")).unwrap(), 1.0).unwrap());
        let without = decode(&svg_to_png(&f(&sample("")).unwrap(), 1.0).unwrap());
        let n = dark_pixels(&with, 8, 40);
        assert!(n > 150, "title should render as dark pixels, found {n}");
        assert_eq!(dark_pixels(&without, 8, 40), 0);
    }
    // An SVG naming a font family that does not exist still renders its text.
    let svg = r#"<svg xmlns="http://www.w3.org/2000/svg" width="200" height="40"><text x="5" y="30" font-family="No Such Font" font-size="24">Hello</text></svg>"#;
    let p = decode(&svg_to_png(svg, 1.0).unwrap());
    let inked = p.pixels().iter().filter(|c| c.alpha() > 200).count();
    assert!(inked > 100, "fallback font did not render: {inked}");
}

#[test]
fn figures_contain_the_expected_elements() {
    let r = sample("A <b> & \"c\"");
    let rel = reliability_svg(&r).unwrap();
    assert!(rel.contains("A &lt;b&gt; &amp; &quot;c&quot;"));
    assert!(rel.contains("ECE = 12.34%"));
    for s in [
        "Outputs",
        "Gap",
        "Perfect calibration",
        "Confidence",
        "Accuracy",
    ] {
        assert!(rel.contains(&format!(">{s}</text>")), "missing {s}");
    }
    // 8 non-empty bins: 8 bars + 8 gap boxes (each two rects) + legend.
    assert_eq!(rel.matches("url(#hatch)").count(), 8 + 1);
    let hist = histogram_svg(&r).unwrap();
    assert!(hist.contains(">Accuracy (75.00%)</text>"));
    assert!(hist.contains(">Avg. confidence (88.00%)</text>"));
    assert!(hist.contains(">% of samples</text>"));
    svg_to_png(&rel, 1.0).unwrap();
}

#[test]
fn edge_cases_render() {
    // All samples in one narrow bin of an adaptive (unequal-width) binning, plus an
    // inconsistent bin (count but no statistics), which is skipped.
    let r = Reliability {
        bins: vec![
            bin(0.0, 0.9, 0, None),
            bin(0.9, 0.97, 0, None),
            bin(0.97, 1.0, 500, Some((0.99, 0.99))),
            bin(1.0, 1.0, 3, None),
        ],
        total: 500,
        mean_accuracy: 0.99,
        mean_confidence: 0.99,
        ece: 0.0,
        title: "Single bin".to_owned(),
    };
    for svg in [reliability_svg(&r).unwrap(), histogram_svg(&r).unwrap()] {
        svg_to_png(&svg, 1.0).unwrap();
    }
    assert!(histogram_svg(&r).unwrap().contains(">100</text>"));
    // Low accuracy: both mean lines on the left, legend must go right.
    let mut low = sample("Low");
    low.mean_accuracy = 0.2;
    low.mean_confidence = 0.3;
    svg_to_png(&histogram_svg(&low).unwrap(), 1.0).unwrap();
}

#[test]
fn csv_rows() {
    let r = sample("t");
    let csv = bins_csv(&r);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "bin,lower,upper,count,mean_confidence,accuracy,gap"
    );
    assert_eq!(lines.len(), 1 + r.bins.len());
    assert!(csv.ends_with('\n'));
    assert_eq!(lines[1], "0,0,0.1,0,,,");
    assert_eq!(lines[4], "3,0.3,0.4,0,,,");
    for line in &lines[1..] {
        assert_eq!(line.split(',').count(), 7, "{line}");
    }
    let gap = |line: &str| line.rsplit(',').next().unwrap().parse::<f64>().unwrap();
    // Bin 2: underconfident (0.26 < 0.3), bin 9: overconfident (0.97 > 0.85).
    assert!(gap(lines[3]) < 0.0);
    assert!(gap(lines[10]) > 0.0);
    assert_eq!(gap(lines[10]), 0.97 - 0.85);
    // Full precision round trip.
    let mut r2 = sample("t");
    r2.bins[5].mean_confidence = Some(0.1 + 0.2);
    let row = bins_csv(&r2).lines().nth(6).unwrap().to_owned();
    assert_eq!(
        row.split(',').nth(4).unwrap().parse::<f64>().unwrap(),
        0.1 + 0.2
    );
}

#[test]
fn write_all_writes_five_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("nested/out");
    let paths = write_all(&sample("Model"), &dir, "model").unwrap();
    let names: Vec<String> = paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "model_reliability.svg",
            "model_reliability.png",
            "model_histogram.svg",
            "model_histogram.png",
            "model_bins.csv"
        ]
    );
    for p in &paths {
        assert_eq!(p.parent().unwrap(), dir);
        assert!(std::fs::metadata(p).unwrap().len() > 100, "{}", p.display());
    }
    // No temporary files left behind.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 5);
    let png = decode(&std::fs::read(&paths[1]).unwrap());
    assert_eq!(png.width(), 960);
    // Rewriting replaces the files.
    write_all(&sample("Model 2"), &dir, "model").unwrap();
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 5);
    let svg = std::fs::read_to_string(&paths[0]).unwrap();
    assert!(svg.contains("Model 2"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&paths[4]).unwrap().permissions().mode();
        assert_ne!(
            mode & 0o044,
            0,
            "files should be readable like File::create's"
        );
    }
}

#[test]
fn errors() {
    let mut r = sample("t");
    r.total = 0;
    assert!(matches!(reliability_svg(&r), Err(PlotError::Empty)));
    assert!(matches!(histogram_svg(&r), Err(PlotError::Empty)));
    let mut r = sample("t");
    r.bins.clear();
    assert!(matches!(reliability_svg(&r), Err(PlotError::Empty)));

    let render_err = |r: &Reliability| match histogram_svg(r) {
        Err(PlotError::Render(m)) => m,
        other => panic!("expected Render error, got {other:?}"),
    };
    let mut r = sample("t");
    r.bins[2].accuracy = Some(f64::NAN);
    assert!(render_err(&r).contains("bins[2].accuracy"));
    let mut r = sample("t");
    r.ece = f64::INFINITY;
    assert!(render_err(&r).contains("ece"));
    let mut r = sample("t");
    r.bins[4].upper = f64::NEG_INFINITY;
    assert!(render_err(&r).contains("bins[4].upper"));
    let mut r = sample("t");
    r.mean_confidence = 1.5;
    assert!(render_err(&r).contains("mean_confidence"));
    let mut r = sample("t");
    r.bins[1].lower = 0.5;
    assert!(render_err(&r).contains("bins[1]"));

    // Invalid input writes nothing, not even the directory.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("never");
    assert!(matches!(
        write_all(&r, &dir, "x"),
        Err(PlotError::Render(_))
    ));
    assert!(!dir.exists());

    // An unwritable directory is an Io error naming the path.
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"").unwrap();
    match write_all(&sample("t"), &file.join("sub"), "x") {
        Err(e @ PlotError::Io { .. }) => assert!(e.to_string().contains("a-file")),
        other => panic!("expected Io error, got {other:?}"),
    }

    assert!(matches!(
        svg_to_png("<not svg", 1.0),
        Err(PlotError::Render(_))
    ));
    let svg = reliability_svg(&sample("t")).unwrap();
    for scale in [0.0, -1.0, f32::NAN, 1e6] {
        assert!(matches!(svg_to_png(&svg, scale), Err(PlotError::Render(_))));
    }
}
