//! `${key}` interpolation, resolved against the final tree.
//!
//! Supported: absolute references (`${seed}`, `${data.batch_size}`, `${scheduler.milestones.0}`),
//! relative ones (`${.alpha}`: a sibling of the key holding the interpolation; each further dot
//! goes one level up), several in one string (`${data.name}-${seed}`), and `\${` for a literal
//! `${`. A value that is exactly one interpolation takes the referenced node whole, with its
//! type; inside a longer string a reference must be a scalar and is written as Python writes
//! it (`True`, `None`, `0.1`), as the reference does. Resolvers (`${now:...}`, `${oc.env:...}`)
//! and nested interpolations are rejected.

use std::collections::HashMap;

use crate::error::ConfigError;
use crate::suggest::closest;
use crate::value::{Value, join};

/// A piece of a string value.
#[derive(Debug, PartialEq)]
enum Piece<'a> {
    Text(String),
    Ref(&'a str),
}

/// Splits a string into text and references; `Ok(None)` when it holds neither `${` nor `\${`.
fn pieces(s: &str) -> Result<Option<Vec<Piece<'_>>>, String> {
    if !s.contains("${") {
        return Ok(None);
    }
    let mut out = Vec::new();
    let mut text = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        if rest[..i].ends_with('\\') {
            text.push_str(&rest[..i - 1]);
            text.push_str("${");
            rest = &rest[i + 2..];
            continue;
        }
        text.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let end = after.find('}').ok_or_else(|| "unclosed `${`".to_string())?;
        let inner = &after[..end];
        if inner.contains("${") {
            return Err("nested interpolations are not supported".into());
        }
        if inner.contains(':') {
            return Err(format!(
                "resolvers such as `${{{inner}}}` are not supported; only `${{key}}` references"
            ));
        }
        let inner = inner.trim();
        let body = inner.trim_start_matches('.');
        if body.is_empty()
            || !body.split('.').all(|seg| {
                !seg.is_empty()
                    && seg
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            })
        {
            return Err(format!("`${{{inner}}}` is not a valid key reference"));
        }
        if !text.is_empty() {
            out.push(Piece::Text(std::mem::take(&mut text)));
        }
        out.push(Piece::Ref(inner));
        rest = &after[end + 1..];
    }
    text.push_str(rest);
    if !text.is_empty() {
        out.push(Piece::Text(text));
    }
    Ok(Some(out))
}

/// Whether a value is a string holding at least one `${...}` reference (well-formed or not).
pub(crate) fn is_interpolation(v: &Value) -> bool {
    match v {
        Value::Str(s) => match pieces(s) {
            Ok(Some(p)) => p.iter().any(|x| matches!(x, Piece::Ref(_))),
            Ok(None) => false,
            Err(_) => true,
        },
        _ => false,
    }
}

/// The text of a scalar inside a longer string, as Python's `str` writes it.
fn scalar_text(v: &Value) -> Option<String> {
    Some(match v {
        Value::Null => "None".into(),
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        Value::Int(i) => i.to_string(),
        Value::Float(x) => format!("{x:?}"),
        Value::Str(s) => s.clone(),
        Value::List(_) | Value::Map(_) => return None,
    })
}

/// Resolves every interpolation of a tree.
pub(crate) fn resolve(raw: &Value) -> Result<Value, ConfigError> {
    let mut r = Resolver {
        raw,
        done: HashMap::new(),
        stack: Vec::new(),
    };
    match raw {
        Value::Map(entries) => {
            let mut out = Vec::with_capacity(entries.len());
            for (k, _) in entries {
                out.push((k.clone(), r.node(k)?));
            }
            Ok(Value::Map(out))
        }
        other => Ok(other.clone()),
    }
}

struct Resolver<'a> {
    raw: &'a Value,
    done: HashMap<String, Value>,
    stack: Vec<String>,
}

impl Resolver<'_> {
    /// The resolved node at an existing path.
    fn node(&mut self, path: &str) -> Result<Value, ConfigError> {
        if let Some(v) = self.done.get(path) {
            return Ok(v.clone());
        }
        if let Some(i) = self.stack.iter().position(|p| p == path) {
            let mut chain = self.stack[i..].to_vec();
            chain.push(path.to_string());
            return Err(ConfigError::InterpolationCycle { chain });
        }
        let raw = self.raw.at(path).cloned().unwrap_or(Value::Null);
        self.stack.push(path.to_string());
        let out = match raw {
            Value::Str(s) => self.string(path, &s)?,
            Value::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                for i in 0..items.len() {
                    out.push(self.node(&join(path, &i.to_string()))?);
                }
                Value::List(out)
            }
            Value::Map(entries) => {
                let mut out = Vec::with_capacity(entries.len());
                for (k, _) in entries {
                    out.push((k.clone(), self.node(&join(path, &k))?));
                }
                Value::Map(out)
            }
            other => other,
        };
        self.stack.pop();
        self.done.insert(path.to_string(), out.clone());
        Ok(out)
    }

    /// The resolved value of the string `s` held at `path`.
    fn string(&mut self, path: &str, s: &str) -> Result<Value, ConfigError> {
        let invalid = |reason: String| ConfigError::InterpolationInvalid {
            key: path.to_string(),
            value: s.to_string(),
            reason,
        };
        let Some(pieces) = pieces(s).map_err(invalid)? else {
            return Ok(Value::Str(s.to_string()));
        };
        if let [Piece::Ref(r)] = pieces.as_slice() {
            let target = self.target(path, s, r)?;
            return self.node(&target);
        }
        let mut out = String::new();
        for piece in &pieces {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Ref(r) => {
                    let target = self.target(path, s, r)?;
                    let v = self.node(&target)?;
                    let text = scalar_text(&v).ok_or_else(|| {
                        invalid(format!(
                            "`${{{r}}}` is {} and cannot be part of a string",
                            v.type_name()
                        ))
                    })?;
                    out.push_str(&text);
                }
            }
        }
        Ok(Value::Str(out))
    }

    /// The absolute path of reference `r` found in the value `s` at `path`; it must exist.
    fn target(&self, path: &str, s: &str, r: &str) -> Result<String, ConfigError> {
        let body = r.trim_start_matches('.');
        let dots = r.len() - body.len();
        let target = if dots == 0 {
            body.to_string()
        } else {
            let mut base: Vec<&str> = path.split('.').collect();
            base.pop(); // the key holding the value
            for _ in 1..dots {
                if base.pop().is_none() {
                    return Err(ConfigError::InterpolationInvalid {
                        key: path.to_string(),
                        value: s.to_string(),
                        reason: format!("`${{{r}}}` goes above the root of the config"),
                    });
                }
            }
            join(&base.join("."), body)
        };
        if self.raw.at(&target).is_none() {
            return Err(ConfigError::InterpolationMissing {
                key: path.to_string(),
                reference: r.to_string(),
                suggestion: closest(&target, &self.raw.paths()),
            });
        }
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(text: &str) -> Value {
        Value::parse_document(text).unwrap()
    }

    #[test]
    fn splits_pieces() {
        assert_eq!(pieces("plain").unwrap(), None);
        assert_eq!(pieces("${a.b}").unwrap().unwrap(), vec![Piece::Ref("a.b")]);
        assert_eq!(
            pieces("x-${a}-\\${b}").unwrap().unwrap(),
            vec![
                Piece::Text("x-".into()),
                Piece::Ref("a"),
                Piece::Text("-${b}".into())
            ]
        );
        assert!(pieces("${a").unwrap_err().contains("unclosed"));
        assert!(pieces("${now:%Y}").unwrap_err().contains("resolvers"));
        assert!(pieces("${a.${b}}").unwrap_err().contains("nested"));
        assert!(pieces("${}").unwrap_err().contains("not a valid"));
    }

    #[test]
    fn whole_references_keep_types_and_strings_concatenate() {
        let t = tree(
            "seed: 1\nlr: 0.1\nflag: True\nlist: [1, 2]\na:\n  s: '${seed}'\n  l: '${list}'\n  \
             i: '${list.1}'\n  txt: 'run-${seed}-${lr}-${flag}'\n  rel: '${.s}'\n  up: '${..lr}'\n  \
             esc: '\\${seed}'\n",
        );
        let r = resolve(&t).unwrap();
        assert_eq!(r.at("a.s"), Some(&Value::Int(1)));
        assert_eq!(
            r.at("a.l"),
            Some(&Value::List(vec![Value::Int(1), Value::Int(2)]))
        );
        assert_eq!(r.at("a.i"), Some(&Value::Int(2)));
        assert_eq!(r.at("a.txt"), Some(&Value::Str("run-1-0.1-True".into())));
        assert_eq!(r.at("a.rel"), Some(&Value::Int(1)));
        assert_eq!(r.at("a.up"), Some(&Value::Float(0.1)));
        assert_eq!(r.at("a.esc"), Some(&Value::Str("${seed}".into())));
    }

    #[test]
    fn chains_resolve_and_cycles_fail() {
        let r = resolve(&tree("a: '${b}'\nb: '${c}'\nc: 3\n")).unwrap();
        assert_eq!(r.at("a"), Some(&Value::Int(3)));
        let e = resolve(&tree("a: '${b}'\nb: '${c}'\nc: '${a}'\n")).unwrap_err();
        assert_eq!(
            e,
            ConfigError::InterpolationCycle {
                chain: vec!["a".into(), "b".into(), "c".into(), "a".into()]
            }
        );
        let e = resolve(&tree("a: {b: '${a}'}\n")).unwrap_err();
        assert!(matches!(e, ConfigError::InterpolationCycle { .. }), "{e}");
    }

    #[test]
    fn missing_and_bad_references_fail() {
        let e = resolve(&tree("seed: 1\nx: '${sed}'\n")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "interpolation `${sed}` in `x` refers to a missing key (did you mean `seed`?)"
        );
        let e = resolve(&tree("m: {a: 1}\nx: 'v${m}'\n")).unwrap_err();
        assert!(
            e.to_string()
                .contains("is a mapping and cannot be part of a string"),
            "{e}"
        );
        let e = resolve(&tree("x: '${...a}'\n")).unwrap_err();
        assert!(e.to_string().contains("above the root"), "{e}");
    }
}
