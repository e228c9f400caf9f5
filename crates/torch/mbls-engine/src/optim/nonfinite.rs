//! Serde for `f64` values that may be infinite or NaN (JSON has no such numbers): finite
//! values are numbers, the others the strings `"inf"`, `"-inf"` and `"nan"`.

use serde::{Deserialize, Deserializer, Serializer};

/// Writes a finite value as a number, the others as `"inf"`, `"-inf"`, `"nan"`.
pub(crate) fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    if v.is_finite() {
        s.serialize_f64(*v)
    } else if v.is_nan() {
        s.serialize_str("nan")
    } else if *v > 0.0 {
        s.serialize_str("inf")
    } else {
        s.serialize_str("-inf")
    }
}

/// Reads what [`serialize`] writes.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Num(f64),
        Str(String),
    }
    match Repr::deserialize(d)? {
        Repr::Num(v) => Ok(v),
        Repr::Str(s) => match s.as_str() {
            "inf" => Ok(f64::INFINITY),
            "-inf" => Ok(f64::NEG_INFINITY),
            "nan" => Ok(f64::NAN),
            other => Err(serde::de::Error::custom(format!(
                "expected a number, \"inf\", \"-inf\" or \"nan\", found \"{other}\""
            ))),
        },
    }
}
