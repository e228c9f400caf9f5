//! Integration tests against fixtures written by `tests/fixtures/make_fixtures.py`.

use std::io::{Cursor, Read, Write};
use std::path::PathBuf;

use mbls_pth::{DType, PthError, TensorData, Value, load, load_reader, load_state_dict};
use serde_json::Value as Json;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn expected(name: &str) -> Json {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn dtype_of(name: &str) -> DType {
    match name {
        "float32" => DType::F32,
        "float64" => DType::F64,
        "float16" => DType::F16,
        "bfloat16" => DType::BF16,
        "int64" => DType::I64,
        "int32" => DType::I32,
        "int16" => DType::I16,
        "int8" => DType::I8,
        "uint8" => DType::U8,
        "bool" => DType::Bool,
        other => panic!("unexpected dtype {other}"),
    }
}

/// Compares a decoded tensor with its JSON description, exactly.
fn check_tensor(name: &str, t: &TensorData, exp: &Json) {
    assert_eq!(exp["name"].as_str().unwrap(), name);
    let dtype = dtype_of(exp["dtype"].as_str().unwrap());
    assert_eq!(t.dtype, dtype, "{name}: dtype");
    assert_eq!(dtype.torch_name(), exp["dtype"].as_str().unwrap());
    let shape: Vec<usize> = exp["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(t.shape, shape, "{name}: shape");
    assert_eq!(
        t.data.len(),
        t.numel() * dtype.size(),
        "{name}: byte length"
    );
    let values = exp["values"].as_array().unwrap();
    assert_eq!(values.len(), t.numel(), "{name}: numel");
    if let Some(f) = t.to_f64() {
        assert!(t.to_i64().is_none());
        // Exact check on the raw IEEE bits of each element.
        let bits = exp["bits"].as_array().unwrap();
        let es = dtype.size();
        for (i, (chunk, b)) in t.data.chunks_exact(es).zip(bits).enumerate() {
            let mut raw = [0u8; 8];
            raw[..es].copy_from_slice(chunk);
            assert_eq!(
                u64::from_le_bytes(raw),
                b.as_u64().unwrap(),
                "{name}[{i}] bits"
            );
        }
        // Values (JSON decimal parsing may be an ulp off in f64).
        for (i, (a, e)) in f.iter().zip(values).enumerate() {
            let e = e.as_f64().unwrap();
            assert!((a - e).abs() <= e.abs() * 1e-15, "{name}[{i}]: {a} vs {e}");
        }
        let f32s = t.to_f32().unwrap();
        for (a, b) in f32s.iter().zip(&f) {
            assert_eq!(*a, *b as f32, "{name}: to_f32");
        }
    } else {
        assert!(t.to_f32().is_none());
        let ints = t.to_i64().unwrap();
        for (i, (a, e)) in ints.iter().zip(values).enumerate() {
            assert_eq!(*a, e.as_i64().unwrap(), "{name}[{i}]");
        }
    }
}

fn check_state_dict(pairs: &[(String, TensorData)], exp: &Json) {
    let tensors = exp["tensors"].as_array().unwrap();
    assert_eq!(pairs.len(), tensors.len());
    for ((k, t), e) in pairs.iter().zip(tensors) {
        check_tensor(k, t, e);
    }
}

#[test]
fn plain_state_dict() {
    let sd = load_state_dict(fixture("state_dict.pth")).unwrap();
    check_state_dict(&sd, &expected("state_dict.json"));
    let names: Vec<&str> = sd.iter().map(|(k, _)| k.as_str()).collect();
    assert!(names.contains(&"bn.num_batches_tracked"));
    // Contains "module" but not as a prefix: must be kept verbatim.
    assert!(names.contains(&"submodule.weight"));
    let nbt = &sd
        .iter()
        .find(|(k, _)| k == "bn.num_batches_tracked")
        .unwrap()
        .1;
    assert_eq!(nbt.dtype, DType::I64);
    assert_eq!(nbt.to_i64().unwrap(), vec![7]);
}

#[test]
fn wrapped_checkpoint_with_module_prefix() {
    let sd = load_state_dict(fixture("checkpoint.pth")).unwrap();
    check_state_dict(&sd, &expected("checkpoint.json"));
    assert!(sd.iter().all(|(k, _)| !k.starts_with("module.")));

    let v = load(fixture("checkpoint.pth")).unwrap();
    assert_eq!(v.get("epoch"), Some(&Value::Int(3)));
    let opt = v.get("optimizer").unwrap();
    let groups = match opt.get("param_groups").unwrap() {
        Value::List(g) => g,
        other => panic!("param_groups: {other:?}"),
    };
    assert_eq!(groups[0].get("lr"), Some(&Value::Float(0.1)));
    assert_eq!(groups[0].get("momentum"), Some(&Value::Float(0.9)));
    // Momentum buffers are tensors keyed by integer parameter index.
    let Value::Dict(state) = opt.get("state").unwrap() else {
        panic!("optimizer state is not a dict");
    };
    assert!(!state.is_empty());
    assert_eq!(state[0].0, Value::Int(0));
    assert!(matches!(
        state[0].1.get("momentum_buffer"),
        Some(Value::Tensor(_))
    ));
}

#[test]
fn misc_tensors_and_values() {
    let v = load(fixture("misc.pth")).unwrap();
    let exp = expected("misc.json");
    for e in exp["tensors"].as_array().unwrap() {
        let name = e["name"].as_str().unwrap();
        match v.get(name) {
            Some(Value::Tensor(t)) => check_tensor(name, t, e),
            other => panic!("{name}: {other:?}"),
        }
    }
    let extra = &exp["extra"];
    assert_eq!(
        v.get("lr"),
        Some(&Value::Float(extra["lr"].as_f64().unwrap()))
    );
    assert_eq!(
        v.get("name"),
        Some(&Value::Str(extra["name"].as_str().unwrap().into()))
    );
    let nested = v.get("nested").unwrap();
    let want = Value::List(vec![
        Value::Int(1),
        Value::Tuple(vec![Value::Float(2.5), Value::None]),
        Value::Dict(vec![
            (Value::Str("a".into()), Value::Str("x".into())),
            (
                Value::Str("b".into()),
                Value::List(vec![Value::Bool(true), Value::Bool(false)]),
            ),
        ]),
        Value::Int(-(1 << 40)),
    ]);
    assert_eq!(nested, &want);
    assert_eq!(extra["nested"][3].as_i64(), Some(-(1 << 40)));
    // misc is not a pure tensor dict and has no state_dict/model key.
    assert!(matches!(
        load_state_dict(fixture("misc.pth")),
        Err(PthError::NoStateDict(_))
    ));
}

/// Rebuilds a zip archive, transforming each entry with `f` (return `None` to drop it).
fn rewrite_zip(src: &[u8], mut f: impl FnMut(&str, Vec<u8>) -> Option<Vec<u8>>) -> Vec<u8> {
    let mut zin = zip::ZipArchive::new(Cursor::new(src)).unwrap();
    let mut out = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let opts =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for i in 0..zin.len() {
        let mut e = zin.by_index(i).unwrap();
        let name = e.name().to_owned();
        let mut buf = Vec::new();
        e.read_to_end(&mut buf).unwrap();
        if let Some(buf) = f(&name, buf) {
            out.start_file(name, opts).unwrap();
            out.write_all(&buf).unwrap();
        }
    }
    out.finish().unwrap().into_inner()
}

#[test]
fn truncated_files_error_without_panicking() {
    let bytes = std::fs::read(fixture("misc.pth")).unwrap();
    for cut in (0..bytes.len()).step_by(7) {
        let r = load_reader(Cursor::new(&bytes[..cut]));
        assert!(r.is_err(), "truncated at {cut} unexpectedly loaded");
    }
}

#[test]
fn truncated_pickle_errors_without_panicking() {
    let bytes = std::fs::read(fixture("checkpoint.pth")).unwrap();
    let pkl_len = {
        let mut z = zip::ZipArchive::new(Cursor::new(&bytes)).unwrap();
        z.by_name("checkpoint/data.pkl").unwrap().size() as usize
    };
    for cut in 0..pkl_len {
        let z = rewrite_zip(&bytes, |n, b| {
            Some(if n.ends_with("data.pkl") {
                b[..cut].to_vec()
            } else {
                b
            })
        });
        assert!(load_reader(Cursor::new(z)).is_err(), "cut at {cut}");
    }
}

#[test]
fn corrupted_pickle_never_panics() {
    let bytes = std::fs::read(fixture("misc.pth")).unwrap();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    for _ in 0..400 {
        let z = rewrite_zip(&bytes, |n, mut b| {
            if n.ends_with("data.pkl") {
                for _ in 0..3 {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let i = (seed as usize) % b.len();
                    b[i] = (seed >> 32) as u8;
                }
            }
            Some(b)
        });
        let _ = load_reader(Cursor::new(z));
    }
}

#[test]
fn structural_errors() {
    // Neither a zip nor a pickle.
    let r = load_reader(Cursor::new(b"hello world".to_vec()));
    assert!(matches!(r, Err(PthError::NotZip(_))), "{r:?}");
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("legacy"), "{msg}");
    assert!(!msg.contains("unsupported"), "{msg}");
    let r = load_reader(Cursor::new(Vec::new()));
    assert!(matches!(r, Err(PthError::NotZip(_))), "{r:?}");
    // A pickle, but not a legacy checkpoint (no magic number).
    let r = load_reader(Cursor::new(b"\x80\x02}q\x00.".to_vec()));
    assert!(matches!(r, Err(PthError::Legacy(_))), "{r:?}");

    let bytes = std::fs::read(fixture("misc.pth")).unwrap();
    // data.pkl missing.
    let z = rewrite_zip(&bytes, |n, b| (!n.ends_with("data.pkl")).then_some(b));
    let r = load_reader(Cursor::new(z));
    assert!(matches!(r, Err(PthError::MissingDataPkl)), "{r:?}");

    // A storage file missing.
    let z = rewrite_zip(&bytes, |n, b| (n != "misc/data/0").then_some(b));
    let r = load_reader(Cursor::new(z));
    assert!(matches!(r, Err(PthError::StorageMissing(_))), "{r:?}");

    // A storage file too short.
    let z = rewrite_zip(&bytes, |n, b| {
        Some(if n == "misc/data/0" {
            b[..8].to_vec()
        } else {
            b
        })
    });
    let r = load_reader(Cursor::new(z));
    assert!(matches!(r, Err(PthError::StorageTooShort { .. })), "{r:?}");
    let msg = r.unwrap_err().to_string();
    assert!(msg.contains("too short"), "{msg}");

    // Disallowed storage class.
    let z = rewrite_zip(&bytes, |n, b| {
        Some(if n.ends_with("data.pkl") {
            replace(&b, b"torch\nFloatStorage\n", b"torch\nQInt8Storage\n")
        } else {
            b
        })
    });
    let r = load_reader(Cursor::new(z));
    assert!(matches!(r, Err(PthError::DisallowedGlobal(_))), "{r:?}");
}

#[test]
fn big_endian_byteorder_is_swapped() {
    let bytes = std::fs::read(fixture("misc.pth")).unwrap();
    let z = rewrite_zip(&bytes, |n, b| {
        if n.ends_with("/byteorder") {
            Some(b"big".to_vec())
        } else if n == "misc/data/0" {
            // base is float32 arange(12): byte-swap it as a big-endian writer would.
            Some(b.chunks(4).flat_map(|c| c.iter().rev().copied()).collect())
        } else {
            Some(b)
        }
    });
    let v = load_reader(Cursor::new(z)).unwrap();
    let Some(Value::Tensor(t)) = v.get("base") else {
        panic!("base missing");
    };
    let want: Vec<f32> = (0..12).map(|i| i as f32).collect();
    assert_eq!(t.to_f32().unwrap(), want);
}

fn replace(hay: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let pos = hay
        .windows(from.len())
        .position(|w| w == from)
        .expect("pattern present");
    let mut out = hay[..pos].to_vec();
    out.extend_from_slice(to);
    out.extend_from_slice(&hay[pos + from.len()..]);
    out
}

#[test]
fn opaque_objects_do_not_break_loading() {
    let v = load(fixture("objects.pth")).unwrap();
    assert_eq!(
        v.get("args"),
        Some(&Value::Object("argparse.Namespace".into()))
    );
    assert_eq!(v.get("device"), Some(&Value::Str("cuda:1".into())));
    assert_eq!(v.get("dtype"), Some(&Value::Object("torch.float32".into())));
    assert_eq!(v.get("set"), Some(&Value::List(vec![Value::Int(3)])));
    assert!(matches!(v.get("bytes"), Some(Value::Object(_))));
    let exp = expected("objects.json");
    match v.get("weight") {
        Some(Value::Tensor(t)) => check_tensor("weight", t, &exp["tensors"][0]),
        other => panic!("weight: {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Legacy (pre-1.6, non-zip) format
// ---------------------------------------------------------------------------

const LEGACY_FILES: [&str; 4] = [
    "legacy_state_dict",
    "legacy_checkpoint",
    "legacy_module",
    "legacy_old",
];

#[test]
fn legacy_files_are_not_zips() {
    for name in LEGACY_FILES {
        let bytes = std::fs::read(fixture(&format!("{name}.pth"))).unwrap();
        assert_eq!(bytes[0], 0x80, "{name}");
        assert_ne!(&bytes[..4], b"PK\x03\x04", "{name}");
    }
}

#[test]
fn legacy_plain_state_dict() {
    let exp = expected("legacy_state_dict.json");
    let sd = load_state_dict(fixture("legacy_state_dict.pth")).unwrap();
    check_state_dict(&sd, &exp);
    let names: Vec<&str> = sd.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "w", "w_t", "w_slice", "f64", "i64", "f16", "scalar", "empty"
        ]
    );
    // w_t and w_slice are strided views of w's storage.
    let w = sd[0].1.to_f32().unwrap();
    let w_t = sd[1].1.to_f32().unwrap();
    for r in 0..3 {
        for c in 0..4 {
            assert_eq!(w_t[c * 3 + r], w[r * 4 + c]);
        }
    }
    assert_eq!(sd[2].1.shape, [2, 2]);
    assert_eq!(sd[2].1.to_f32().unwrap(), [w[4], w[6], w[8], w[10]]);
    assert_eq!(sd[6].1.shape, Vec::<usize>::new());
    assert_eq!(sd[7].1.shape, [0, 2]);

    // The same through load_reader on an in-memory buffer, and through load.
    let bytes = std::fs::read(fixture("legacy_state_dict.pth")).unwrap();
    let from_reader = mbls_pth::state_dict_from_value(load_reader(Cursor::new(&bytes)).unwrap());
    assert_eq!(from_reader.unwrap(), sd);
    let v = load(fixture("legacy_state_dict.pth")).unwrap();
    assert!(matches!(v.get("w"), Some(Value::Tensor(t)) if *t == sd[0].1));
}

#[test]
fn legacy_reader_starts_at_current_position() {
    // Detection and parsing work relative to where the reader stands.
    let bytes = std::fs::read(fixture("legacy_checkpoint.pth")).unwrap();
    let mut padded = b"junk".to_vec();
    padded.extend_from_slice(&bytes);
    let mut cur = Cursor::new(padded);
    cur.set_position(4);
    let v = load_reader(cur).unwrap();
    assert_eq!(v.get("epoch"), Some(&Value::Int(3)));
}

#[test]
fn legacy_wrapped_checkpoint_with_module_prefix() {
    let exp = expected("legacy_checkpoint.json");
    let sd = load_state_dict(fixture("legacy_checkpoint.pth")).unwrap();
    check_state_dict(&sd, &exp);
    assert_eq!(sd[0].0, "fc.weight");
    assert_eq!(sd[1].0, "fc.bias");
    let v = load(fixture("legacy_checkpoint.pth")).unwrap();
    let extra = &exp["extra"];
    assert_eq!(
        v.get("epoch"),
        Some(&Value::Int(extra["epoch"].as_i64().unwrap()))
    );
    assert_eq!(
        v.get("best_acc"),
        Some(&Value::Float(extra["best_acc"].as_f64().unwrap()))
    );
    assert_eq!(
        v.get("arch"),
        Some(&Value::Str(extra["arch"].as_str().unwrap().into()))
    );
    // The raw state dict still carries the prefixes.
    let Some(Value::Dict(raw)) = v.get("state_dict") else {
        panic!("state_dict missing");
    };
    assert_eq!(raw[0].0, Value::Str("module.fc.weight".into()));
}

#[test]
fn legacy_module_state_dict() {
    let sd = load_state_dict(fixture("legacy_module.pth")).unwrap();
    check_state_dict(&sd, &expected("legacy_module.json"));
    let names: Vec<&str> = sd.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "0.weight",
            "0.bias",
            "1.weight",
            "1.bias",
            "1.running_mean",
            "1.running_var",
            "1.num_batches_tracked"
        ]
    );
    let nbt = &sd[6].1;
    assert_eq!(nbt.dtype, DType::I64);
    assert_eq!(nbt.shape, Vec::<usize>::new());
    assert_eq!(nbt.to_i64().unwrap(), vec![5]);
    assert_eq!(sd[0].1.shape, [3, 2, 3, 3]);
}

#[test]
fn legacy_pytorch03_python2_style() {
    // _rebuild_tensor (v1), Python 2 str keys (SHORT_BINSTRING / BINSTRING),
    // OrderedDict from a list of lists, storage views with their own offsets.
    let sd = load_state_dict(fixture("legacy_old.pth")).unwrap();
    check_state_dict(&sd, &expected("legacy_old.json"));
    assert_eq!(sd[3].0, "x".repeat(300));
    assert_eq!(sd[2].1.to_i64().unwrap(), [7, -3, 1 << 40, -(1 << 33)]);
}

/// Legacy fixture `legacy_old.pth` ends with r1 (10 x f32) then r2 (4 x i64),
/// each behind an 8-byte element count.
const OLD_DATA_SECTION: usize = 8 + 40 + 8 + 32;

#[test]
fn legacy_truncated_everywhere_errors_without_panicking() {
    for name in LEGACY_FILES {
        let bytes = std::fs::read(fixture(&format!("{name}.pth"))).unwrap();
        for cut in 0..bytes.len() {
            let r = load_reader(Cursor::new(&bytes[..cut]));
            assert!(r.is_err(), "{name} truncated at {cut} unexpectedly loaded");
        }
    }
}

#[test]
fn legacy_truncation_names_section_and_offset() {
    let bytes = std::fs::read(fixture("legacy_old.pth")).unwrap();
    let data = bytes.len() - OLD_DATA_SECTION;
    let trunc = |cut: usize| match load_reader(Cursor::new(&bytes[..cut])) {
        Err(PthError::Truncated { offset, what }) => (offset, what),
        other => panic!("cut at {cut}: {other:?}"),
    };
    // Inside the magic number pickle.
    let (offset, what) = trunc(5);
    assert_eq!(offset, 4);
    assert!(what.starts_with("legacy magic number"), "{what}");
    // Inside r1's element count.
    let (offset, what) = trunc(data + 3);
    assert_eq!(offset, data);
    assert!(what.contains("element count of storage `r1`"), "{what}");
    // Inside r2's data.
    let (offset, what) = trunc(bytes.len() - 1);
    assert_eq!(offset, bytes.len() - 32);
    assert!(what.contains("data of storage `r2`"), "{what}");
    assert!(what.contains("31 bytes left"), "{what}");
    let msg = load_reader(Cursor::new(&bytes[..bytes.len() - 1]))
        .unwrap_err()
        .to_string();
    assert!(msg.contains(&format!("byte {}", bytes.len() - 32)), "{msg}");
    // Inside the object pickle (the OrderedDict global is in it).
    let obj = bytes.windows(11).position(|w| w == b"collections").unwrap();
    let (_, what) = trunc(obj + 3);
    assert!(what.starts_with("legacy object pickle"), "{what}");
}

#[test]
fn legacy_corrupted_never_panics() {
    let bytes = std::fs::read(fixture("legacy_state_dict.pth")).unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..2000 {
        let mut b = bytes.clone();
        for _ in 0..2 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let i = (seed as usize) % b.len();
            b[i] = (seed >> 32) as u8;
        }
        if b[0] != 0x80 {
            b[0] = 0x80;
        }
        let _ = load_reader(Cursor::new(b));
    }
}

#[test]
fn legacy_structural_errors() {
    let bytes = std::fs::read(fixture("legacy_old.pth")).unwrap();
    let data = bytes.len() - OLD_DATA_SECTION;

    // Element count disagrees with the persistent id's numel.
    let mut b = bytes.clone();
    b[data] = 11;
    let r = load_reader(Cursor::new(b));
    match r {
        Err(PthError::StorageSizeMismatch {
            key,
            expected,
            found,
        }) => {
            assert_eq!((key.as_str(), expected, found), ("r1", 10, 11));
        }
        other => panic!("{other:?}"),
    }

    // Unknown / disallowed storage type.
    let b = replace(
        &bytes,
        b"torch\nLongStorage\n",
        b"torch\nComplexFloatStorage\n",
    );
    let r = load_reader(Cursor::new(b));
    assert!(matches!(r, Err(PthError::DisallowedGlobal(_))), "{r:?}");
    let b = replace(&bytes, b"torch\nLongStorage\n", b"numpy\nLongStorage\n");
    let r = load_reader(Cursor::new(b));
    assert!(matches!(r, Err(PthError::DisallowedGlobal(_))), "{r:?}");

    // Key list names a storage no persistent id declares.
    let b = replace(&bytes, b"U\x02r1U\x02r2e.", b"U\x02r1U\x02r3e.");
    let r = load_reader(Cursor::new(b));
    assert!(matches!(r, Err(PthError::Legacy(_))), "{r:?}");
    // Key listed twice.
    let b = replace(&bytes, b"U\x02r1U\x02r2e.", b"U\x02r1U\x02r1e.");
    let r = load_reader(Cursor::new(b));
    assert!(matches!(r, Err(PthError::Legacy(_))), "{r:?}");
    // A referenced storage is not in the key list.
    let b = replace(&bytes, b"U\x02r1U\x02r2e.", b"U\x02r1e.");
    let r = load_reader(Cursor::new(b));
    assert!(
        matches!(&r, Err(PthError::StorageMissing(k)) if k == "r2"),
        "{r:?}"
    );
    // Key list is not a list.
    let b = replace(&bytes, b"](U\x02r1U\x02r2e.", b"K\x01.");
    let r = load_reader(Cursor::new(b));
    assert!(matches!(r, Err(PthError::Legacy(_))), "{r:?}");

    // A storage view reaching past its root storage.
    let b = replace(&bytes, b"U\x02v1K\x04K\x06t", b"U\x02v1K\x05K\x06t");
    let r = load_reader(Cursor::new(b));
    assert!(matches!(r, Err(PthError::StorageTooShort { .. })), "{r:?}");

    // Wrong magic number (last magic byte changed).
    let mut b = bytes.clone();
    assert_eq!(b[13], 0x19);
    b[13] = 0x18;
    let r = load_reader(Cursor::new(b));
    assert!(matches!(r, Err(PthError::Legacy(_))), "{r:?}");

    // Trailing bytes after the last storage are ignored, as torch does.
    let mut b = bytes.clone();
    b.extend_from_slice(b"trailing");
    let sd = mbls_pth::state_dict_from_value(load_reader(Cursor::new(b)).unwrap()).unwrap();
    check_state_dict(&sd, &expected("legacy_old.json"));
}
