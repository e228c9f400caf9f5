//! Command-line overrides: parsing, and type-checked assignment.

use yaml_rust2::Yaml;

use crate::error::{ConfigError, shorten};
use crate::interp::is_interpolation;
use crate::limits::{MAX_KEY_LEN, MAX_KEY_SEGMENTS};
use crate::registry;
use crate::suggest::closest;
use crate::value::{Value, format_float, join};

/// What an override does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `group=option`.
    Select,
    /// `key=value`: the key must exist.
    Set,
    /// `+key=value`: the key must not exist.
    Add,
    /// `++key=value`: set if it exists, add otherwise.
    Force,
}

/// One parsed override.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Override {
    /// The argument as given.
    pub arg: String,
    pub kind: Kind,
    /// The dotted key (the group name for [`Kind::Select`]).
    pub key: String,
    /// The value text, trimmed.
    pub value: String,
}

/// Parses `group=option`, `key=value`, `+key=value` or `++key=value`.
pub(crate) fn parse(arg: &str) -> Result<Override, ConfigError> {
    let bad = |reason: &str| ConfigError::BadOverride {
        arg: shorten(arg),
        reason: reason.to_string(),
    };
    if arg.trim_start().starts_with('~') {
        return Err(bad("deleting keys (`~key`) is not supported"));
    }
    let Some((lhs, value)) = arg.split_once('=') else {
        return Err(bad(
            "expected `group=option`, `key=value` or `+key=value` (no `=` found)",
        ));
    };
    let lhs = lhs.trim();
    let (prefix, key) = if let Some(k) = lhs.strip_prefix("++") {
        (Kind::Force, k)
    } else if let Some(k) = lhs.strip_prefix('+') {
        (Kind::Add, k)
    } else {
        (Kind::Set, lhs)
    };
    if key.is_empty() {
        return Err(bad("the key is empty"));
    }
    // Bounded before anything walks the key: adding a key of n parts builds n paths.
    if key.len() > MAX_KEY_LEN {
        return Err(bad(&format!(
            "the key is {} bytes long; a key is at most {MAX_KEY_LEN} bytes",
            key.len()
        )));
    }
    let segments = key.split('.').count();
    if segments > MAX_KEY_SEGMENTS {
        return Err(bad(&format!(
            "the key has {segments} dot-separated parts; a key has at most {MAX_KEY_SEGMENTS}"
        )));
    }
    if !key.split('.').all(|seg| {
        !seg.is_empty()
            && seg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    }) {
        return Err(bad(
            "a key is made of dot-separated names of letters, digits, `_` and `-`",
        ));
    }
    let is_group = registry::options(key).is_some();
    let kind = match prefix {
        Kind::Set | Kind::Force if is_group => Kind::Select,
        Kind::Add if is_group => {
            return Err(ConfigError::KeyExists {
                key: key.to_string(),
            });
        }
        k => k,
    };
    Ok(Override {
        arg: arg.to_string(),
        kind,
        key: key.to_string(),
        value: value.trim().to_string(),
    })
}

/// A parsed override value, and its text when it was an unquoted scalar (a string key takes
/// that text as is: `data.data_root=123` is the string `123`).
#[derive(Debug)]
pub(crate) struct Parsed {
    pub value: Value,
    pub plain: Option<String>,
}

/// Parses a value as YAML: an unquoted scalar by the YAML 1.2 core schema (`0.1`, `5e-4`,
/// `-100`, `True`, `null`, anything else a string), a quoted string, or a flow list or
/// mapping (`[40, 60]`, `{a: 1}`). The empty value is the empty string. Refused: YAML aliases
/// (`*name`), nesting past [`MAX_YAML_DEPTH`](crate::limits::MAX_YAML_DEPTH), and floats that
/// are not finite (`1e400`, out of range; `.inf`, `.nan`).
pub(crate) fn parse_value(key: &str, text: &str) -> Result<Parsed, ConfigError> {
    let bad = |reason: String| ConfigError::BadValue {
        key: key.to_string(),
        value: shorten(text),
        reason,
    };
    if text.is_empty() {
        return Ok(Parsed {
            value: Value::Str(String::new()),
            plain: Some(String::new()),
        });
    }
    let first = text.chars().next().unwrap_or(' ');
    if matches!(first, '[' | '{' | '"' | '\'') {
        let v = Value::parse_document_with(text, false).map_err(bad)?;
        let ok = match first {
            '[' => matches!(v, Value::List(_)),
            '{' => matches!(v, Value::Map(_)),
            _ => matches!(v, Value::Str(_)),
        };
        if !ok {
            return Err(bad(format!("it parses as {}", v.type_name())));
        }
        if let Some(x) = non_finite(&v) {
            return Err(bad(not_finite_reason(x)));
        }
        return Ok(Parsed {
            value: v,
            plain: None,
        });
    }
    let value = Value::from_yaml(&Yaml::from_str(text)).map_err(bad)?;
    if let Some(x) = non_finite(&value) {
        return Err(bad(not_finite_reason(x)));
    }
    Ok(Parsed {
        value,
        plain: Some(text.to_string()),
    })
}

/// The first float of `v` (or of its elements) that is not finite.
fn non_finite(v: &Value) -> Option<f64> {
    match v {
        Value::Float(x) if !x.is_finite() => Some(*x),
        Value::List(items) => items.iter().find_map(non_finite),
        Value::Map(entries) => entries.iter().find_map(|(_, v)| non_finite(v)),
        _ => None,
    }
}

/// Why a non-finite float is refused in an override.
fn not_finite_reason(x: f64) -> String {
    format!(
        "`{}` is not a finite float; an override takes finite numbers only",
        format_float(x)
    )
}

/// The value to store at `key` whose current value is `old`, given the new `value`: the same
/// type as `old` (an integer is accepted for a float and converted; an unquoted scalar for a
/// string is taken as its text; a list is checked element by element; a mapping is merged key
/// by key into `old`, each key checked). Interpolations, and keys whose current value is an
/// interpolation or null, are not checked here.
pub(crate) fn coerce(
    key: &str,
    old: &Value,
    value: Value,
    plain: Option<&str>,
    arg_value: &str,
) -> Result<Value, ConfigError> {
    if is_interpolation(&value) || is_interpolation(old) {
        return Ok(value);
    }
    let mismatch = |found: &Value| ConfigError::TypeMismatch {
        key: key.to_string(),
        value: arg_value.to_string(),
        expected: old.type_name().to_string(),
        found: found.type_name().to_string(),
    };
    match (old, value) {
        (Value::Null, v) => Ok(v),
        (Value::Float(_), Value::Int(i)) => Ok(Value::Float(i as f64)),
        (Value::Float(_), v @ Value::Float(_))
        | (Value::Int(_), v @ Value::Int(_))
        | (Value::Bool(_), v @ Value::Bool(_))
        | (Value::Str(_), v @ Value::Str(_)) => Ok(v),
        (Value::Str(_), v @ (Value::Int(_) | Value::Float(_) | Value::Bool(_))) => {
            Ok(Value::Str(match plain {
                Some(text) => text.to_string(),
                None => v.to_string(),
            }))
        }
        (Value::List(template), Value::List(items)) => {
            let Some(element) = element_template(template) else {
                return Ok(Value::List(items));
            };
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.into_iter().enumerate() {
                let item_text = item.to_string();
                out.push(
                    coerce(&join(key, &i.to_string()), &element, item, None, &item_text).map_err(
                        |e| match e {
                            ConfigError::TypeMismatch {
                                expected, found, ..
                            } => ConfigError::TypeMismatch {
                                key: key.to_string(),
                                value: arg_value.to_string(),
                                expected: format!("a list of {}", plural(&expected)),
                                found: format!("an element that is {found}"),
                            },
                            other => other,
                        },
                    )?,
                );
            }
            Ok(Value::List(out))
        }
        (Value::Map(_), Value::Map(entries)) => {
            let mut out = old.clone();
            for (k, v) in entries {
                let sub = join(key, &k);
                let Some(current) = old.get(&k) else {
                    let candidates: Vec<String> =
                        old.paths().iter().map(|p| join(key, p)).collect();
                    return Err(ConfigError::UnknownKey {
                        suggestion: closest(&sub, &candidates),
                        key: sub,
                        hint: None,
                    });
                };
                let text = v.to_string();
                let new = coerce(&sub, current, v, None, &text)?;
                out.set(&k, new);
            }
            Ok(out)
        }
        (_, v) => Err(mismatch(&v)),
    }
}

/// The element type a list default implies: a float when its elements are numbers and one
/// is a float, else its first element when all have the same type; `None` (no check) for an
/// empty or mixed list.
fn element_template(items: &[Value]) -> Option<Value> {
    let first = items.first()?;
    let numeric = items
        .iter()
        .all(|v| matches!(v, Value::Int(_) | Value::Float(_)));
    if numeric && items.iter().any(|v| matches!(v, Value::Float(_))) {
        return Some(Value::Float(0.0));
    }
    let same = items
        .iter()
        .all(|v| std::mem::discriminant(v) == std::mem::discriminant(first));
    (same && !matches!(first, Value::List(_) | Value::Map(_))).then(|| first.clone())
}

/// `a float` -> `floats`, for list messages.
fn plural(type_name: &str) -> String {
    let bare = type_name
        .strip_prefix("an ")
        .or_else(|| type_name.strip_prefix("a "))
        .unwrap_or(type_name);
    format!("{bare}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kinds() {
        let o = parse("loss=logit_margin").unwrap();
        assert_eq!(
            (o.kind, o.key.as_str(), o.value.as_str()),
            (Kind::Select, "loss", "logit_margin")
        );
        let o = parse("++optim=adam").unwrap();
        assert_eq!(o.kind, Kind::Select);
        let o = parse("loss.margin=5").unwrap();
        assert_eq!((o.kind, o.key.as_str()), (Kind::Set, "loss.margin"));
        let o = parse("seed=3").unwrap();
        assert_eq!(o.kind, Kind::Set);
        let o = parse("+train.extra= x ").unwrap();
        assert_eq!(
            (o.kind, o.key.as_str(), o.value.as_str()),
            (Kind::Add, "train.extra", "x")
        );
        let o = parse("++train.extra=1").unwrap();
        assert_eq!(o.kind, Kind::Force);
        assert!(matches!(
            parse("+loss=ce"),
            Err(ConfigError::KeyExists { .. })
        ));
        for bad in ["loss", "=3", "+=3", "a..b=1", "a b=1", "~seed", ".a=1"] {
            assert!(
                matches!(parse(bad), Err(ConfigError::BadOverride { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn parses_values() {
        let v = |t: &str| parse_value("k", t).unwrap().value;
        assert_eq!(v("5"), Value::Int(5));
        assert_eq!(v("-100"), Value::Int(-100));
        assert_eq!(v("0.05"), Value::Float(0.05));
        assert_eq!(v("5e-4"), Value::Float(5e-4));
        assert_eq!(v("True"), Value::Bool(true));
        assert_eq!(v("false"), Value::Bool(false));
        assert_eq!(v("null"), Value::Null);
        assert_eq!(v(""), Value::Str(String::new()));
        assert_eq!(v("cuda:0"), Value::Str("cuda:0".into()));
        assert_eq!(v("a: b"), Value::Str("a: b".into()));
        assert_eq!(v("#x"), Value::Str("#x".into()));
        assert_eq!(v("\"10\""), Value::Str("10".into()));
        assert_eq!(v("'True'"), Value::Str("True".into()));
        assert_eq!(
            v("[40, 60]"),
            Value::List(vec![Value::Int(40), Value::Int(60)])
        );
        assert_eq!(v("[]"), Value::List(vec![]));
        assert_eq!(v("{a: 1}"), Value::Map(vec![("a".into(), Value::Int(1))]));
        assert!(parse_value("k", "[1, 2").is_err());
        assert!(parse_value("k", "\"a\" b").is_err());
    }

    #[test]
    fn coerces_by_type() {
        let c = |old: Value, text: &str| {
            let p = parse_value("k", text).unwrap();
            coerce("k", &old, p.value, p.plain.as_deref(), text)
        };
        assert_eq!(c(Value::Float(0.1), "5"), Ok(Value::Float(5.0)));
        assert_eq!(
            c(Value::Str("x".into()), "123"),
            Ok(Value::Str("123".into()))
        );
        assert_eq!(
            c(Value::Str("x".into()), "1.50"),
            Ok(Value::Str("1.50".into()))
        );
        assert_eq!(
            c(Value::Str("x".into()), "${seed}"),
            Ok(Value::Str("${seed}".into()))
        );
        assert_eq!(c(Value::Str("${seed}".into()), "4"), Ok(Value::Int(4)));
        assert_eq!(c(Value::Null, "[1]"), Ok(Value::List(vec![Value::Int(1)])));
        let floats = Value::List(vec![Value::Float(0.9), Value::Float(0.999)]);
        assert_eq!(
            c(floats.clone(), "[1, 0.5]"),
            Ok(Value::List(vec![Value::Float(1.0), Value::Float(0.5)]))
        );
        let e = c(floats, "[0.9, x]").unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot set `k` to `[0.9, x]`: expected a list of floats, got an element that is a string"
        );
        let e = c(Value::Int(3), "3.5").unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot set `k` to `3.5`: expected an integer, got a float"
        );
        assert!(c(Value::Bool(true), "1").is_err());
        assert!(c(Value::Float(1.0), "null").is_err());
        assert!(c(Value::List(vec![]), "3").is_err());
        let map = Value::parse_document("a: 1\nb: x\n").unwrap();
        assert_eq!(
            c(map.clone(), "{a: 2}"),
            Ok(Value::parse_document("a: 2\nb: x\n").unwrap())
        );
        let e = c(map, "{c: 2}").unwrap_err();
        assert!(
            matches!(e, ConfigError::UnknownKey { ref key, .. } if key == "k.c"),
            "{e}"
        );
    }

    #[test]
    fn keys_are_bounded() {
        // 10,000 parts (20 kB): refused before any path is built, and not echoed whole
        let arg = format!("+{}=1", vec!["a"; 10_000].join("."));
        let e = parse(&arg).unwrap_err();
        let ConfigError::BadOverride { arg: shown, reason } = &e else {
            panic!("{e}");
        };
        assert_eq!(
            reason,
            "the key is 19999 bytes long; a key is at most 1000 bytes"
        );
        assert!(
            shown.starts_with("+a.a.a.") && shown.ends_with("..."),
            "{shown}"
        );
        assert!(e.to_string().len() < 300, "{e}");
        // parts
        let deep = vec!["a"; MAX_KEY_SEGMENTS + 1].join(".");
        let e = parse(&format!("+{deep}=1")).unwrap_err();
        assert_eq!(
            e,
            ConfigError::BadOverride {
                arg: format!("+{deep}=1"),
                reason: "the key has 33 dot-separated parts; a key has at most 32".into(),
            }
        );
        // at the limits
        let o = parse(&format!("+{}=1", vec!["a"; MAX_KEY_SEGMENTS].join("."))).unwrap();
        assert_eq!(o.kind, Kind::Add);
        let o = parse(&format!("++{}=1", "a".repeat(MAX_KEY_LEN))).unwrap();
        assert_eq!(o.key.len(), MAX_KEY_LEN);
    }

    #[test]
    fn values_refuse_aliases() {
        let bomb = "[&x [1,1,1,1,1,1,1,1,1], &y [*x,*x,*x,*x,*x,*x,*x,*x,*x], \
                    &z [*y,*y,*y,*y,*y,*y,*y,*y,*y], [*z,*z,*z,*z,*z,*z,*z,*z,*z]]";
        let Err(e) = parse_value("a", bomb) else {
            panic!("accepted");
        };
        let ConfigError::BadValue { key, value, reason } = &e else {
            panic!("{e}");
        };
        assert_eq!((key.as_str(), value.as_str()), ("a", bomb));
        assert!(
            reason.contains("aliases (`*name`) are not accepted"),
            "{reason}"
        );
        assert!(parse_value("a", "{b: &x 1, c: *x}").is_err());
        // `*x` unquoted is a plain string, as before
        assert_eq!(
            parse_value("a", "*x").unwrap().value,
            Value::Str("*x".into())
        );
        // nesting
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let e = parse_value("a", &deep).unwrap_err();
        assert!(e.to_string().contains("nested more than 64 levels"), "{e}");
        assert!(e.to_string().len() < 300, "{e}");
    }

    #[test]
    fn values_refuse_non_finite_floats() {
        let e = parse_value("loss.margin", "1e400").unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot parse the value `1e400` of `loss.margin`: `1e400` is out of range for a float"
        );
        for (text, shown) in [
            (".inf", ".inf"),
            ("-.inf", "-.inf"),
            ("+.INF", ".inf"),
            (".nan", ".nan"),
            (".NaN", ".nan"),
            ("[1, .inf]", ".inf"),
            ("{a: {b: .nan}}", ".nan"),
        ] {
            let e = parse_value("k", text).unwrap_err();
            assert_eq!(
                e,
                ConfigError::BadValue {
                    key: "k".into(),
                    value: text.into(),
                    reason: format!(
                        "`{shown}` is not a finite float; an override takes finite numbers only"
                    ),
                },
                "{text}"
            );
        }
        let e = parse_value("k", "[0.5, -2e308]").unwrap_err();
        assert!(e.to_string().contains("`-2e308` is out of range"), "{e}");
        // quoted, they are strings; finite extremes are floats
        assert_eq!(
            parse_value("k", "'.inf'").unwrap().value,
            Value::Str(".inf".into())
        );
        assert_eq!(
            parse_value("k", "1.7976931348623157e308").unwrap().value,
            Value::Float(f64::MAX)
        );
        assert_eq!(parse_value("k", "1e-400").unwrap().value, Value::Float(0.0));
    }
}
