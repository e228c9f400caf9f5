//! Unit tests of the pickle machine, its limits and its rules.

use super::*;

/// `to_f32` of one little-endian 16-bit value of `dtype`.
fn half_to_f32(dtype: DType, bits: u16) -> f32 {
    let t = TensorData {
        dtype,
        shape: vec![],
        data: bits.to_le_bytes().to_vec(),
    };
    let v = t.to_f32().unwrap();
    assert_eq!(v.len(), 1);
    v[0]
}

#[test]
fn half_conversion() {
    let f16_to_f32 = |bits| half_to_f32(DType::F16, bits);
    assert_eq!(f16_to_f32(0x3c00), 1.0);
    assert_eq!(f16_to_f32(0xc000), -2.0);
    assert_eq!(f16_to_f32(0x7bff), 65504.0);
    assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
    assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
    assert!(f16_to_f32(0x7e00).is_nan());
    assert_eq!(f16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
    // bfloat16 is the top half of an f32.
    let bf16_to_f32 = |bits| half_to_f32(DType::BF16, bits);
    assert_eq!(bf16_to_f32(0x3f80), 1.0);
    assert_eq!(bf16_to_f32(0xc040), -3.0);
    assert_eq!(bf16_to_f32(0x7f80), f32::INFINITY);
    assert_eq!(bf16_to_f32(0x0001).to_bits(), 0x0001_0000);
    assert!(bf16_to_f32(0x7fc1).is_nan());
    assert_eq!(bf16_to_f32(0x8000).to_bits(), (-0.0f32).to_bits());
}

#[test]
fn long1_decoding() {
    assert_eq!(decode_long(&[]), Some(0));
    assert_eq!(decode_long(&[0xff]), Some(-1));
    assert_eq!(decode_long(&[0x00, 0x80, 0x00]), Some(0x8000));
    assert_eq!(
        decode_long(&[0, 0, 0, 0, 0, 0xff, 0xff, 0xff]),
        Some(-(1 << 40))
    );
    assert_eq!(decode_long(&[1, 0, 0, 0, 0, 0, 0, 0, 1]), None);
}

struct NoStorage;
impl Storages for NoStorage {
    fn get(&mut self, key: &str) -> Result<&[u8], PthError> {
        Err(PthError::StorageMissing(key.into()))
    }
    fn big_endian(&self) -> bool {
        false
    }
    fn loaded_bytes(&self) -> usize {
        0
    }
}

/// One float32 storage `"0"` of `numel` elements, all zero.
struct OneStorage(Vec<u8>);
impl Storages for OneStorage {
    fn get(&mut self, key: &str) -> Result<&[u8], PthError> {
        match key {
            "0" => Ok(&self.0),
            _ => Err(PthError::StorageMissing(key.into())),
        }
    }
    fn big_endian(&self) -> bool {
        false
    }
    fn loaded_bytes(&self) -> usize {
        self.0.len()
    }
}

/// `_rebuild_tensor_v2` of storage `"0"` (float32, `numel` elements) with the given
/// size and stride, `copies` times in a list (the storage's persistent id memoised).
fn tensor_pickle(numel: u8, size: &[u32], stride: &[u32], copies: usize) -> Vec<u8> {
    let mut p = b"\x80\x02]q\x00(".to_vec();
    for i in 0..copies {
        p.extend(b"ctorch._utils\n_rebuild_tensor_v2\n(");
        if i == 0 {
            p.extend(b"(X\x07\x00\x00\x00storagectorch\nFloatStorage\n");
            p.extend(b"X\x01\x00\x00\x000X\x03\x00\x00\x00cpuK");
            p.extend([numel, b't', b'Q', b'q', 1]);
        } else {
            p.extend(b"h\x01");
        }
        p.extend(b"K\x00(");
        for &d in size {
            p.push(b'J');
            p.extend(d.to_le_bytes());
        }
        p.extend(b"t(");
        for &d in stride {
            p.push(b'J');
            p.extend(d.to_le_bytes());
        }
        p.extend(b"t\x89ccollections\nOrderedDict\n)RtR");
    }
    p.extend(b"e.");
    p
}

fn unpickle_with(bytes: &[u8], numel: u8) -> Result<Value, PthError> {
    let mut up = Unpickler::new(bytes, 0, &TORCH_RULES);
    let root = up.run()?;
    up.to_value(root, 0, &mut OneStorage(vec![0; 4 * usize::from(numel)]))
}

#[test]
fn strided_views_are_read_within_the_allowance() {
    // a transposed 2 x 3 view and two stride-0 rows of a 6-element storage: fine
    let v = unpickle_with(&tensor_pickle(6, &[3, 2], &[1, 3], 1), 6).unwrap();
    let Value::List(items) = v else { panic!() };
    let Value::Tensor(t) = &items[0] else {
        panic!()
    };
    assert_eq!(t.shape, vec![3, 2]);
    let v = unpickle_with(&tensor_pickle(6, &[4, 6], &[0, 1], 3), 6).unwrap();
    assert!(matches!(v, Value::List(ref l) if l.len() == 3));
}

#[test]
fn stride_zero_expansion_is_refused() {
    // 2^28 float32 elements (1 GiB) viewed over one element: refused before allocating
    let p = tensor_pickle(1, &[1 << 14, 1 << 14], &[0, 0], 1);
    let err = unpickle_with(&p, 1).unwrap_err();
    assert!(matches!(err, PthError::Amplified(_)), "{err}");
    assert!(err.to_string().contains("stride 0"), "{err}");
}

#[test]
fn many_views_of_one_storage_are_refused() {
    // 200 views of one 16-byte storage, each expanded to 64 x 2^16 elements (16 MiB)
    let p = tensor_pickle(4, &[64, 1 << 16], &[0, 0], 200);
    let err = unpickle_with(&p, 4).unwrap_err();
    assert!(matches!(err, PthError::Amplified(_)), "{err}");
}

#[test]
fn memo_references_expanding_at_every_use_are_refused() {
    // t0 = []; t_i = (t_{i-1}, t_{i-1}): 2^40 nodes when expanded as a tree
    let mut p = b"\x80\x02]q\x00".to_vec();
    for i in 1..=40u8 {
        p.extend([b'(', b'h', i - 1, b'h', i - 1, b't', b'q', i]);
    }
    p.push(b'.');
    let err = unpickle(&p).unwrap_err();
    assert!(matches!(err, PthError::Amplified(_)), "{err}");
    // shallow sharing is fine
    let mut p = b"\x80\x02]q\x00".to_vec();
    for i in 1..=8u8 {
        p.extend([b'(', b'h', i - 1, b'h', i - 1, b't', b'q', i]);
    }
    p.push(b'.');
    unpickle(&p).unwrap();
}

#[test]
fn copies_made_by_calls_are_bounded() {
    // a list of 60,000 ints, then 2,000 calls of list(l): 2,000 x 480 kB of ids
    let mut p = b"\x80\x02]q\x00(".to_vec();
    for _ in 0..60_000 {
        p.extend(b"K\x01");
    }
    p.extend(b"ecbuiltins\nlist\nq\x01");
    for _ in 0..2_000 {
        p.extend(b"h\x01h\x00\x85R");
    }
    p.push(b'.');
    let err = unpickle(&p).unwrap_err();
    assert!(matches!(err, PthError::Amplified(_)), "{err}");
}

fn unpickle(bytes: &[u8]) -> Result<Value, PthError> {
    let mut up = Unpickler::new(bytes, 0, &TORCH_RULES);
    let root = up.run()?;
    up.to_value(root, 0, &mut NoStorage)
}

#[test]
fn plain_values() {
    // {'a': [1, (True, None)], 'b': 2.5} as protocol 2, built by hand.
    let mut p = vec![0x80, 2, b'}', b'(', 0x8c, 1, b'a', b']', b'(', b'K', 1];
    p.extend([0x88, b'N', 0x86, b'e', 0x8c, 1, b'b', b'G']);
    p.extend(2.5f64.to_be_bytes());
    p.extend([b'u', b'.']);
    let v = unpickle(&p).unwrap();
    assert_eq!(
        v.get("a"),
        Some(&Value::List(vec![
            Value::Int(1),
            Value::Tuple(vec![Value::Bool(true), Value::None])
        ]))
    );
    assert_eq!(v.get("b"), Some(&Value::Float(2.5)));
}

#[test]
fn opaque_and_forbidden_globals() {
    let p = b"\x80\x02cargparse\nNamespace\n)\x81}b.";
    assert_eq!(
        unpickle(p).unwrap(),
        Value::Object("argparse.Namespace".into())
    );
    let p = b"\x80\x02ctorch._utils\n_rebuild_qtensor\n)R.";
    assert!(matches!(unpickle(p), Err(PthError::DisallowedGlobal(_))));
    let p = b"\x80\x02cos\nsystem\n.";
    assert!(matches!(unpickle(p), Err(PthError::DisallowedGlobal(_))));
}

#[test]
fn unknown_opcode_is_named() {
    // EXT1: the extension registry is not supported
    let err = unpickle(b"\x80\x02\x82\x01.").unwrap_err();
    assert!(err.to_string().contains("EXT1"), "{err}");
}

#[test]
fn module_persistent_id_yields_the_class() {
    // Whole-module legacy saves pickle the class as ('module', cls, file, source).
    let p = b"\x80\x02(U\x06modulecmodels\nNet\nNNtQ)\x81}b.";
    assert_eq!(unpickle(p).unwrap(), Value::Object("models.Net".into()));
}

#[test]
fn cuda_storage_classes_and_python2_strings() {
    let p =
        b"\x80\x02(U\x07storagectorch.cuda\nHalfStorage\nT\x01\x00\x00\x00kU\x06cuda:0K\x02NtQ.";
    assert_eq!(unpickle(p).unwrap(), Value::Object("storage:k".into()));
    // Negative BINSTRING length.
    let p = b"\x80\x02T\xff\xff\xff\xff.";
    assert!(matches!(unpickle(p), Err(PthError::Malformed(_))));
}

#[test]
fn oversized_int_is_an_error_in_values() {
    let p = b"\x80\x02\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01.";
    assert!(matches!(unpickle(p), Err(PthError::Malformed(_))));
}

/// NumPy's allow-list, as mbls-data gives it for CIFAR files.
fn numpy_rules() -> Rules {
    fn globals(module: &str, name: &str) -> Resolution {
        Resolution::Known(match (module, name) {
            ("numpy.core.multiarray", "_reconstruct") => Callable::NumpyReconstruct,
            ("numpy", "ndarray") => Callable::NumpyNdarray,
            ("numpy", "dtype") => Callable::NumpyDtype,
            ("_codecs", "encode") => Callable::CodecsEncode,
            _ => return Resolution::Refused,
        })
    }
    Rules {
        globals,
        python2_str: Python2Str::Bytes,
    }
}

/// `_reconstruct(ndarray, (0,), b'b')` + BUILD `(1, shape, dtype(descr), fortran, data)`,
/// Python 2 style (U/T strings).
fn numpy_pickle(descr: &str, order: u8, shape: &[u8], fortran: bool, data: &[u8]) -> Vec<u8> {
    let mut p = b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R(K\x01(".to_vec();
    for &d in shape {
        p.extend([b'K', d]);
    }
    p.extend(b"tcnumpy\ndtype\nU");
    p.push(descr.len() as u8);
    p.extend(descr.as_bytes());
    p.extend(b"K\x00K\x01\x87R(K\x03U\x01");
    p.push(order);
    p.extend(b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb");
    p.push(if fortran { 0x88 } else { 0x89 });
    p.push(b'T');
    p.extend((data.len() as u32).to_le_bytes());
    p.extend(data);
    p.extend(b"tb.");
    p
}

#[test]
fn numpy_arrays_in_c_and_fortran_order_and_both_byte_orders() {
    let rules = numpy_rules();
    let v = super::unpickle(
        &numpy_pickle("u1", b'|', &[2, 3], false, &[1, 2, 3, 4, 5, 6]),
        &rules,
    )
    .unwrap();
    let Value::Tensor(t) = v else { panic!("{v:?}") };
    assert_eq!(
        (t.dtype, t.shape.clone(), t.data.clone()),
        (DType::U8, vec![2, 3], vec![1, 2, 3, 4, 5, 6])
    );
    // Fortran order: columns first; the tensor comes out in C order
    let v = super::unpickle(
        &numpy_pickle("u1", b'|', &[2, 3], true, &[1, 4, 2, 5, 3, 6]),
        &rules,
    )
    .unwrap();
    let Value::Tensor(t) = v else { panic!("{v:?}") };
    assert_eq!(t.data, vec![1, 2, 3, 4, 5, 6]);
    // big-endian int16 [1, -2]
    let v = super::unpickle(
        &numpy_pickle("i2", b'>', &[2], false, &[0, 1, 0xff, 0xfe]),
        &rules,
    )
    .unwrap();
    let Value::Tensor(t) = v else { panic!("{v:?}") };
    assert_eq!(t.to_i64().unwrap(), vec![1, -2]);
    // a shape the data does not fill, an unsupported dtype
    let err =
        super::unpickle(&numpy_pickle("u1", b'|', &[2, 4], false, &[0; 6]), &rules).unwrap_err();
    assert!(err.to_string().contains("needs 8 bytes"), "{err}");
    let err =
        super::unpickle(&numpy_pickle("U3", b'<', &[1], false, &[0; 12]), &rules).unwrap_err();
    assert!(err.to_string().contains("unsupported NumPy dtype"), "{err}");
    // the same pickle under the checkpoint rules: numpy is opaque there, not an array
    assert_eq!(
        super::unpickle(&numpy_pickle("u1", b'|', &[1], false, &[7]), &TORCH_RULES).unwrap(),
        Value::Object("numpy.core.multiarray._reconstruct".into())
    );
}

#[test]
fn every_cut_of_a_numpy_pickle_is_an_error() {
    let p = numpy_pickle("f4", b'<', &[2, 2], false, &[0; 16]);
    super::unpickle(&p, &numpy_rules()).unwrap();
    for cut in 0..p.len() {
        assert!(
            super::unpickle(&p[..cut], &numpy_rules()).is_err(),
            "cut at {cut}"
        );
    }
}

#[test]
fn the_callers_rules_decide_and_code_is_always_refused() {
    // refused by the NumPy rules, opaque under the checkpoint rules
    let p = b"\x80\x02cargparse\nNamespace\n)\x81.";
    assert!(
        matches!(super::unpickle(p, &numpy_rules()), Err(PthError::DisallowedGlobal(g)) if g == "argparse.Namespace")
    );
    assert_eq!(
        super::unpickle(p, &TORCH_RULES).unwrap(),
        Value::Object("argparse.Namespace".into())
    );
    // rules that allow everything still cannot name os.system or builtins.eval
    let everything = Rules {
        globals: |_, _| Resolution::Opaque,
        python2_str: Python2Str::Utf8,
    };
    for p in [
        &b"\x80\x02cos\nsystem\n."[..],
        b"\x80\x02cbuiltins\neval\n.",
    ] {
        assert!(matches!(
            super::unpickle(p, &everything),
            Err(PthError::DisallowedGlobal(_))
        ));
    }
}

#[test]
fn protocol_0_and_bytes_opcodes() {
    // (dp0 / S'k' / p1 / (lp2 / I01 / aI-7 / aF2.5 / aL12L / a g1 / a s.  -> {b'k': [True, -7, 2.5, 12, b'k']}
    let p = b"(dp0\nS'k'\np1\n(lp2\nI01\naI-7\naF2.5\naL12L\nag1\nas.";
    let v = super::unpickle(p, &numpy_rules()).unwrap();
    assert_eq!(
        v.get("k"),
        Some(&Value::List(vec![
            Value::Bool(true),
            Value::Int(-7),
            Value::Float(2.5),
            Value::Int(12),
            Value::Bytes(b"k".to_vec())
        ]))
    );
    // the same under the checkpoint rules: Python 2 strings are text
    let v = super::unpickle(p, &TORCH_RULES).unwrap();
    assert!(matches!(v.get("k"), Some(Value::List(l)) if l[4] == Value::Str("k".into())));
    // protocol 3 bytes (C, B), DUP, POP, POP_MARK
    let p = b"\x80\x03]q\x00(C\x02ab2B\x01\x00\x00\x00c(N1K\x050e.";
    let v = super::unpickle(p, &TORCH_RULES).unwrap();
    assert_eq!(
        v,
        Value::List(vec![
            Value::Bytes(b"ab".to_vec()),
            Value::Bytes(b"ab".to_vec()),
            Value::Bytes(b"c".to_vec())
        ])
    );
}

#[test]
fn self_reference_does_not_overflow() {
    // l = []; l.append(l)
    let err = unpickle(b"\x80\x02]q\x00h\x00a.").unwrap_err();
    assert!(matches!(err, PthError::Malformed(_)));
}
