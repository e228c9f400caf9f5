//! CIFAR-10/100 in both official formats: committed pickle fixtures (Python 2 cPickle style and
//! Python 3 protocols 2, 4, 5; see `tests/fixtures/numpy/make_fixtures.py`), binary files written
//! here, error cases, the binary writer and the download-and-unpack path.

use mbls_base::download::md5_file;
use mbls_data::write_cifar_binary;
use mbls_data::{Cifar, CifarArchive, CifarFormat, CifarKind};
use mbls_data::{DataError, Dataset, Target};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};

fn fixture(variant: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/numpy/cifar")
        .join(variant)
}

/// Pixel byte `j` (planar) of image `g`, as `make_fixtures.py` writes it.
fn pixel(g: usize, j: usize) -> u8 {
    ((g * 37 + j * 11 + (j / 1024) * 101) % 256) as u8
}

fn planar(g: usize) -> Vec<u8> {
    (0..3072).map(|j| pixel(g, j)).collect()
}

/// (image id, label) of every image of a split, as the fixtures define them.
fn expected(kind: CifarKind, train: bool) -> Vec<(usize, usize)> {
    match (kind, train) {
        (CifarKind::Cifar10, true) => (0..6).map(|g| (g, (g * 3 + 1) % 10)).collect(),
        (CifarKind::Cifar10, false) => (0..2).map(|i| (100 + i, (i * 7 + 2) % 10)).collect(),
        (CifarKind::Cifar100 { coarse }, train) => {
            let (off, n) = if train { (0, 3) } else { (100, 2) };
            (off..off + n)
                .map(|g| {
                    let l = if coarse {
                        (g * 5 + 3) % 20
                    } else {
                        (g * 3 + 1) % 100
                    };
                    (g, l)
                })
                .collect()
        }
    }
}

fn check(cifar: &Cifar, kind: CifarKind, train: bool) {
    let exp = expected(kind, train);
    assert_eq!(cifar.len(), exp.len());
    assert_eq!(cifar.classes().len(), kind.num_classes());
    for (i, &(g, label)) in exp.iter().enumerate() {
        assert_eq!(cifar.planar(i).unwrap(), planar(g).as_slice(), "image {i}");
        let s = cifar.get(i).unwrap();
        assert_eq!(s.target, Target::Class(label), "label {i}");
        assert_eq!(
            (s.image.height, s.image.width, s.image.channels),
            (32, 32, 3)
        );
        for (y, x, c) in [(0, 0, 0), (0, 1, 2), (5, 7, 1), (31, 31, 2), (17, 3, 0)] {
            assert_eq!(
                s.image.data[(y * 32 + x) * 3 + c],
                pixel(g, c * 1024 + y * 32 + x),
                "HWC conversion at {y},{x},{c}"
            );
        }
    }
    assert!(cifar.get(exp.len()).is_err());
}

#[test]
fn cifar10_python_all_variants() {
    for variant in ["py2", "py3p4"] {
        for train in [true, false] {
            let c = Cifar::open(&fixture(variant), CifarKind::Cifar10, train).unwrap();
            assert_eq!(c.format(), CifarFormat::Python);
            check(&c, CifarKind::Cifar10, train);
            assert_eq!(c.classes()[0], "airplane");
            assert_eq!(c.classes()[9], "truck");
        }
    }
    // Python 3 protocol 2 (bytes via _codecs.encode); only the test split is committed.
    let c = Cifar::open(&fixture("py3p2"), CifarKind::Cifar10, false).unwrap();
    check(&c, CifarKind::Cifar10, false);
}

#[test]
fn cifar10_source_names_file_and_record() {
    let c = Cifar::open(&fixture("py2"), CifarKind::Cifar10, true).unwrap();
    // batches hold 1, 1, 2, 1, 1 images
    assert!(c.source(3).ends_with("data_batch_3[1]"), "{}", c.source(3));
    assert!(c.source(5).ends_with("data_batch_5[0]"), "{}", c.source(5));
}

#[test]
fn cifar10_root_may_be_the_subfolder() {
    let dir = fixture("py2").join("cifar-10-batches-py");
    let c = Cifar::open(&dir, CifarKind::Cifar10, false).unwrap();
    assert_eq!(c.dir(), dir.as_path());
}

#[test]
fn cifar100_python_fine_and_coarse() {
    for variant in ["py2", "py3p5"] {
        for coarse in [false, true] {
            for train in [true, false] {
                let kind = CifarKind::Cifar100 { coarse };
                let c = Cifar::open(&fixture(variant), kind, train).unwrap();
                check(&c, kind, train);
                let first = if coarse { "coarse_00" } else { "fine_00" };
                assert_eq!(c.classes()[0], first);
            }
        }
    }
}

/// Writes the fixture content in the official binary layouts under `root`.
fn write_binary(root: &Path) {
    let d10 = root.join("cifar-10-batches-bin");
    std::fs::create_dir_all(&d10).unwrap();
    let sizes = [1usize, 1, 2, 1, 1];
    let train = expected(CifarKind::Cifar10, true);
    let mut k = 0;
    for (b, n) in sizes.iter().enumerate() {
        let mut bytes = Vec::new();
        for &(g, l) in &train[k..k + n] {
            bytes.push(l as u8);
            bytes.extend(planar(g));
        }
        k += n;
        std::fs::write(d10.join(format!("data_batch_{}.bin", b + 1)), bytes).unwrap();
    }
    let mut bytes = Vec::new();
    for (g, l) in expected(CifarKind::Cifar10, false) {
        bytes.push(l as u8);
        bytes.extend(planar(g));
    }
    std::fs::write(d10.join("test_batch.bin"), bytes).unwrap();
    let names = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n";
    std::fs::write(d10.join("batches.meta.txt"), names).unwrap();

    let d100 = root.join("cifar-100-binary");
    std::fs::create_dir_all(&d100).unwrap();
    for (name, train) in [("train.bin", true), ("test.bin", false)] {
        let fine = expected(CifarKind::Cifar100 { coarse: false }, train);
        let coarse = expected(CifarKind::Cifar100 { coarse: true }, train);
        let mut bytes = Vec::new();
        for (&(g, f), &(_, c)) in fine.iter().zip(&coarse) {
            bytes.push(c as u8);
            bytes.push(f as u8);
            bytes.extend(planar(g));
        }
        std::fs::write(d100.join(name), bytes).unwrap();
    }
    let fine: String = (0..100).map(|i| format!("fine_{i:02}\n")).collect();
    let coarse: String = (0..20).map(|i| format!("coarse_{i:02}\n")).collect();
    std::fs::write(d100.join("fine_label_names.txt"), fine).unwrap();
    std::fs::write(d100.join("coarse_label_names.txt"), coarse).unwrap();
}

#[test]
fn binary_formats_match_python() {
    let tmp = tempfile::tempdir().unwrap();
    write_binary(tmp.path());
    for kind in [
        CifarKind::Cifar10,
        CifarKind::Cifar100 { coarse: false },
        CifarKind::Cifar100 { coarse: true },
    ] {
        for train in [true, false] {
            let bin = Cifar::open(tmp.path(), kind, train).unwrap();
            assert_eq!(bin.format(), CifarFormat::Binary);
            check(&bin, kind, train);
            let py = Cifar::open(&fixture("py2"), kind, train).unwrap();
            assert_eq!(bin.classes(), py.classes());
            for i in 0..py.len() {
                assert_eq!(bin.get(i).unwrap(), py.get(i).unwrap());
            }
        }
    }
}

#[test]
fn missing_folder_suggests_download() {
    let tmp = tempfile::tempdir().unwrap();
    let err = Cifar::open(tmp.path(), CifarKind::Cifar10, true).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::Missing { .. }), "{err:?}");
    assert!(msg.contains("Cifar::download"), "{msg}");
    assert!(msg.contains("cifar-10-batches-py"), "{msg}");
}

#[test]
fn missing_batch_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    write_binary(tmp.path());
    let gone = tmp.path().join("cifar-10-batches-bin/data_batch_4.bin");
    std::fs::remove_file(&gone).unwrap();
    match Cifar::open(tmp.path(), CifarKind::Cifar10, true).unwrap_err() {
        DataError::Missing { path, .. } => assert_eq!(path, gone),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn truncated_record_file() {
    let tmp = tempfile::tempdir().unwrap();
    write_binary(tmp.path());
    let p = tmp.path().join("cifar-10-batches-bin/test_batch.bin");
    let mut bytes = std::fs::read(&p).unwrap();
    bytes.truncate(3073 + 100);
    std::fs::write(&p, bytes).unwrap();
    let err = Cifar::open(tmp.path(), CifarKind::Cifar10, false).unwrap_err();
    match &err {
        DataError::Format { path, message } => {
            assert_eq!(path, &p);
            assert!(message.contains("3073"), "{message}");
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn label_out_of_range() {
    let tmp = tempfile::tempdir().unwrap();
    write_binary(tmp.path());
    let p = tmp.path().join("cifar-10-batches-bin/test_batch.bin");
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[3073] = 10;
    std::fs::write(&p, bytes).unwrap();
    match Cifar::open(tmp.path(), CifarKind::Cifar10, false).unwrap_err() {
        DataError::Label {
            path,
            label,
            num_classes,
        } => {
            assert_eq!(path, p);
            assert_eq!(label, "10");
            assert_eq!(num_classes, 10);
        }
        other => panic!("unexpected {other:?}"),
    }
}

/// Every prefix of every pickle fixture (Python 2, Python 3 protocols 2, 4, 5; batches and
/// meta files) is a format error naming the file: the shared unpickler never panics on a cut.
#[test]
fn pickles_cut_anywhere_are_format_errors() {
    let tmp = tempfile::tempdir().unwrap();
    for (variant, folder, kind, file) in [
        (
            "py2",
            "cifar-10-batches-py",
            CifarKind::Cifar10,
            "test_batch",
        ),
        (
            "py2",
            "cifar-10-batches-py",
            CifarKind::Cifar10,
            "batches.meta",
        ),
        (
            "py3p2",
            "cifar-10-batches-py",
            CifarKind::Cifar10,
            "test_batch",
        ),
        (
            "py3p4",
            "cifar-10-batches-py",
            CifarKind::Cifar10,
            "test_batch",
        ),
        (
            "py3p5",
            "cifar-100-python",
            CifarKind::Cifar100 { coarse: false },
            "test",
        ),
        (
            "py3p5",
            "cifar-100-python",
            CifarKind::Cifar100 { coarse: false },
            "meta",
        ),
    ] {
        let src = fixture(variant).join(folder);
        let d = tmp.path().join(variant).join(folder);
        std::fs::create_dir_all(&d).unwrap();
        for entry in std::fs::read_dir(&src).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), d.join(entry.file_name())).unwrap();
        }
        let full = std::fs::read(src.join(file)).unwrap();
        for cut in 0..full.len() {
            std::fs::write(d.join(file), &full[..cut]).unwrap();
            let err = Cifar::open(&tmp.path().join(variant), kind, false).unwrap_err();
            match &err {
                DataError::Format { path, .. } => {
                    assert_eq!(path, &d.join(file), "{variant}/{file} cut at {cut}")
                }
                other => panic!("{variant}/{file} cut at {cut}: unexpected {other:?}"),
            }
        }
    }
}

#[test]
fn corrupt_pickles_are_format_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("cifar-10-batches-py");
    std::fs::create_dir_all(&d).unwrap();
    let src = fixture("py2").join("cifar-10-batches-py");
    std::fs::copy(src.join("batches.meta"), d.join("batches.meta")).unwrap();
    let full = std::fs::read(src.join("test_batch")).unwrap();
    let cases: Vec<Vec<u8>> = vec![
        full[..full.len() / 2].to_vec(),
        b"\x80\x02cos\nsystem\nq\x00(U\x02lsq\x01tR.".to_vec(),
        b"not a pickle".to_vec(),
        b"\x80\x02}q\x00.".to_vec(),
    ];
    for bytes in cases {
        std::fs::write(d.join("test_batch"), &bytes).unwrap();
        let err = Cifar::open(tmp.path(), CifarKind::Cifar10, false).unwrap_err();
        match &err {
            DataError::Format { path, .. } => assert_eq!(path, &d.join("test_batch")),
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[test]
fn write_binary_round_trip() {
    let py = Cifar::open(&fixture("py2"), CifarKind::Cifar10, true).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let files = write_cifar_binary(&py, tmp.path(), true).unwrap();
    assert_eq!(files.len(), 6);
    // 6 samples in 5 files: 2, 1, 1, 1, 1 records
    assert_eq!(std::fs::metadata(&files[0]).unwrap().len(), 2 * 3073);
    assert_eq!(std::fs::metadata(&files[4]).unwrap().len(), 3073);
    let back = Cifar::open(tmp.path(), CifarKind::Cifar10, true).unwrap();
    assert_eq!(back.format(), CifarFormat::Binary);
    check(&back, CifarKind::Cifar10, true);
    assert_eq!(back.classes(), py.classes());
    // no temporary files left
    let names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
}

/// Serves `body` for every request; counts requests.
fn serve(body: Vec<u8>) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count2 = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                if line == "\r\n" {
                    break;
                }
                line.clear();
            }
            count2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            )
            .into_bytes();
            resp.extend_from_slice(&body);
            let _ = stream.write_all(&resp);
        }
    });
    (format!("http://{addr}/cifar-10-binary.tar.gz"), count)
}

#[test]
fn download_archive_and_unpack() {
    // Build a small "official" binary archive.
    let src = tempfile::tempdir().unwrap();
    write_binary(src.path());
    let archive = src.path().join("cifar-10-binary.tar.gz");
    {
        let f = std::fs::File::create(&archive).unwrap();
        let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
        let mut tar = tar::Builder::new(gz);
        tar.append_dir_all(
            "cifar-10-batches-bin",
            src.path().join("cifar-10-batches-bin"),
        )
        .unwrap();
        tar.into_inner().unwrap().finish().unwrap();
    }
    let md5 = md5_file(&archive).unwrap();
    let (url, count) = serve(std::fs::read(&archive).unwrap());
    let root = tempfile::tempdir().unwrap();
    let spec = CifarArchive {
        url,
        md5,
        file_name: "cifar-10-binary.tar.gz".into(),
        dir_name: "cifar-10-batches-bin".into(),
    };
    let dir = Cifar::download_archive(root.path(), CifarKind::Cifar10, &spec).unwrap();
    assert_eq!(dir, root.path().join("cifar-10-batches-bin"));
    let c = Cifar::open(root.path(), CifarKind::Cifar10, true).unwrap();
    check(&c, CifarKind::Cifar10, true);
    // already there: no second request
    Cifar::download_archive(root.path(), CifarKind::Cifar10, &spec).unwrap();
    assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[test]
fn official_archives() {
    let a = CifarArchive::official(CifarKind::Cifar10, CifarFormat::Python);
    assert_eq!(
        a.url,
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    );
    assert_eq!(a.md5, "c58f30108f718f92721af3b95e74349a");
    assert_eq!(a.dir_name, "cifar-10-batches-py");
    let b = CifarArchive::official(CifarKind::Cifar100 { coarse: true }, CifarFormat::Binary);
    assert_eq!(b.md5, "03b5dce01913d631647c71ecec9e9cb8");
    assert_eq!(b.dir_name, "cifar-100-binary");
}
