//! NumPy arrays and byte strings inside pickles: dtypes, arrays rebuilt from the pickle's
//! own bytes, their conversion to dense tensors, Python 2 string literals.

use std::rc::Rc;

use crate::{DType, PthError, TensorData};

/// A NumPy dtype: element type and byte order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct NumpyDtype {
    pub(super) dtype: DType,
    pub(super) big_endian: bool,
}

/// A NumPy array rebuilt from the pickle's own bytes.
#[derive(Debug, Clone)]
pub(crate) struct NdArray {
    pub(super) dtype: NumpyDtype,
    pub(super) shape: Vec<usize>,
    pub(super) fortran: bool,
    pub(super) data: Rc<Vec<u8>>,
}

/// The latin-1 bytes of `text` (every character below 256).
pub(super) fn latin1(text: &str) -> Result<Vec<u8>, PthError> {
    text.chars()
        .map(|ch| u8::try_from(u32::from(ch)))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| PthError::Malformed("non-latin-1 character in a byte string".into()))
}

/// A NumPy dtype descriptor such as `<f4`, `|u1`, `>i8`.
pub(super) fn parse_dtype(descr: &str) -> Result<NumpyDtype, PthError> {
    let (big_endian, rest) = match descr.as_bytes().first() {
        Some(b'<' | b'|' | b'=') => (false, &descr[1..]),
        Some(b'>') => (true, &descr[1..]),
        _ => (false, descr),
    };
    let dtype = match rest {
        "u1" => DType::U8,
        "i1" => DType::I8,
        "i2" => DType::I16,
        "i4" => DType::I32,
        "i8" => DType::I64,
        "f2" => DType::F16,
        "f4" => DType::F32,
        "f8" => DType::F64,
        "b1" => DType::Bool,
        _ => {
            return Err(PthError::Malformed(format!(
                "unsupported NumPy dtype {descr:?}"
            )));
        }
    };
    Ok(NumpyDtype { dtype, big_endian })
}

/// An array of `shape` over `data`, whose length must match.
pub(super) fn make_array(
    dtype: NumpyDtype,
    shape: Vec<usize>,
    fortran: bool,
    data: Rc<Vec<u8>>,
) -> Result<NdArray, PthError> {
    let bytes = shape
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .and_then(|n| n.checked_mul(dtype.dtype.size()))
        .ok_or_else(|| PthError::Malformed("array size overflows".into()))?;
    if bytes != data.len() {
        return Err(PthError::Malformed(format!(
            "array of shape {shape:?} needs {bytes} bytes, the pickle holds {}",
            data.len()
        )));
    }
    Ok(NdArray {
        dtype,
        shape,
        fortran,
        data,
    })
}

/// The array as a dense tensor: C order, little-endian.
pub(super) fn array_to_tensor(a: &NdArray) -> TensorData {
    let es = a.dtype.dtype.size();
    let mut data = if a.fortran && a.shape.len() > 1 {
        // element (i0, i1, ...) sits at sum(i_k * prod(shape[..k])) in Fortran order
        let n: usize = a.shape.iter().product();
        let mut strides = vec![1usize; a.shape.len()];
        for k in 1..a.shape.len() {
            strides[k] = strides[k - 1] * a.shape[k - 1];
        }
        let mut out = Vec::with_capacity(a.data.len());
        let mut idx = vec![0usize; a.shape.len()];
        for _ in 0..n {
            let at: usize = idx.iter().zip(&strides).map(|(i, s)| i * s).sum();
            out.extend_from_slice(&a.data[at * es..(at + 1) * es]);
            for ax in (0..a.shape.len()).rev() {
                idx[ax] += 1;
                if idx[ax] < a.shape[ax] {
                    break;
                }
                idx[ax] = 0;
            }
        }
        out
    } else {
        a.data.to_vec()
    };
    if a.dtype.big_endian && es > 1 {
        for c in data.chunks_exact_mut(es) {
            c.reverse();
        }
    }
    TensorData {
        dtype: a.dtype.dtype,
        shape: a.shape.clone(),
        data,
    }
}

/// The bytes of a Python 2 `repr()` of a byte string (protocol 0 `STRING`): quoted with `'`
/// or `"`, escapes `\\`, `\'`, `\"`, `\t`, `\n`, `\r`, `\xhh`.
pub(super) fn unquote_py2(line: &[u8]) -> Option<Vec<u8>> {
    let q = *line.first()?;
    if !(q == b'\'' || q == b'"') || line.len() < 2 || line[line.len() - 1] != q {
        return None;
    }
    let body = &line[1..line.len() - 1];
    let mut out = Vec::with_capacity(body.len());
    let mut i = 0;
    while i < body.len() {
        let c = body[i];
        i += 1;
        if c != b'\\' {
            out.push(c);
            continue;
        }
        let e = *body.get(i)?;
        i += 1;
        match e {
            b'\\' | b'\'' | b'"' => out.push(e),
            b't' => out.push(b'\t'),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b'x' => {
                let hex = std::str::from_utf8(body.get(i..i + 2)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            _ => return None,
        }
    }
    Some(out)
}
