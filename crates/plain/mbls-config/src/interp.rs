//! `${key}` interpolation, resolved against the final tree.
//!
//! Supported: absolute references (`${seed}`, `${data.batch_size}`, `${scheduler.milestones.0}`),
//! relative ones (`${.alpha}`: a sibling of the key holding the interpolation; each further dot
//! goes one level up), several in one string (`${data.name}-${seed}`), and `\${` for a literal
//! `${`. A value that is exactly one interpolation takes the referenced node whole, with its
//! type; inside a longer string a reference must be a scalar and is written as Python writes
//! it (`True`, `None`, `0.1`), as the reference does. Resolvers (`${now:...}`, `${oc.env:...}`)
//! and nested interpolations are rejected.
//!
//! Bounded ([`crate::limits`]): chains of references ([`MAX_INTERPOLATION_DEPTH`], whatever
//! the order the keys are resolved in), values resolved inside one another
//! ([`MAX_RESOLVE_NESTING`], which bounds the stack), the strings interpolation builds
//! ([`MAX_STRING_LEN`]) and the whole resolved tree ([`MAX_RESOLVED_SIZE`]).

use std::collections::HashMap;

use crate::error::{ConfigError, shorten};
use crate::limits::{
    MAX_INTERPOLATION_DEPTH, MAX_KEY_LEN, MAX_KEY_SEGMENTS, MAX_RESOLVE_NESTING, MAX_RESOLVED_SIZE,
    MAX_STRING_LEN, NODE_SIZE,
};
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
        if inner.len() > MAX_KEY_LEN || body.split('.').count() > MAX_KEY_SEGMENTS {
            return Err(format!(
                "a reference names a key of at most {MAX_KEY_LEN} bytes and \
                 {MAX_KEY_SEGMENTS} dot-separated parts"
            ));
        }
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
        via: Vec::new(),
        size: 0,
    };
    match raw {
        Value::Map(entries) => {
            let mut out = Vec::with_capacity(entries.len());
            for (k, _) in entries {
                out.push((k.clone(), r.node(k)?.0));
            }
            Ok(Value::Map(out))
        }
        other => Ok(other.clone()),
    }
}

/// Stands in for a missing path: [`Resolver::node`] is only given paths that exist.
static NULL: Value = Value::Null;

struct Resolver<'a> {
    raw: &'a Value,
    /// The resolved scalars (strings included) by path, with their reference depth. Mappings
    /// and lists are resolved again at each use, which costs what copying them would, and
    /// what they cost is counted in `size`.
    done: HashMap<String, (Value, usize)>,
    /// The paths being resolved, outermost first.
    stack: Vec<String>,
    /// The keys whose references were followed on the way to the path being resolved,
    /// outermost first.
    via: Vec<String>,
    /// What has been resolved so far, as [`MAX_RESOLVED_SIZE`] counts it.
    size: u64,
}

impl<'a> Resolver<'a> {
    /// The resolved node at an existing path, and its reference depth: the most `${...}`
    /// references in a chain that starts below it (0 when it holds none).
    fn node(&mut self, path: &str) -> Result<(Value, usize), ConfigError> {
        if let Some((v, depth)) = self.done.get(path) {
            let (v, depth) = (v.clone(), *depth);
            self.count(path, &v)?;
            return Ok((v, depth));
        }
        if let Some(i) = self.stack.iter().position(|p| p == path) {
            let mut chain = self.stack[i..].to_vec();
            chain.push(path.to_string());
            return Err(ConfigError::InterpolationCycle { chain });
        }
        if self.stack.len() >= MAX_RESOLVE_NESTING {
            return Err(ConfigError::InterpolationTooDeep {
                key: path.to_string(),
                limit: MAX_RESOLVE_NESTING,
                what: "values resolved inside one another".into(),
            });
        }
        let raw: &'a Value = self.raw;
        let node: &'a Value = raw.at(path).unwrap_or(&NULL);
        self.stack.push(path.to_string());
        let (out, depth) = match node {
            Value::Str(s) => self.string(path, s)?,
            Value::List(items) => {
                let mut out = Vec::with_capacity(items.len());
                let mut depth: usize = 0;
                for i in 0..items.len() {
                    let (v, d) = self.node(&join(path, &i.to_string()))?;
                    depth = depth.max(d);
                    out.push(v);
                }
                (Value::List(out), depth)
            }
            Value::Map(entries) => {
                let mut out = Vec::with_capacity(entries.len());
                let mut depth: usize = 0;
                for (k, _) in entries {
                    let (v, d) = self.node(&join(path, k))?;
                    depth = depth.max(d);
                    out.push((k.clone(), v));
                }
                (Value::Map(out), depth)
            }
            other => (other.clone(), 0),
        };
        self.stack.pop();
        self.count(path, &out)?;
        if !matches!(out, Value::List(_) | Value::Map(_)) {
            self.done.insert(path.to_string(), (out.clone(), depth));
        }
        Ok((out, depth))
    }

    /// Counts the node `v` (not its children, counted when they were resolved) in the
    /// resolved size: [`NODE_SIZE`] and its text (a string, or a mapping's keys). Past
    /// [`MAX_RESOLVED_SIZE`], the error names the outermost key whose reference led to `path`
    /// (or `path`).
    fn count(&mut self, path: &str, v: &Value) -> Result<(), ConfigError> {
        let text = match v {
            Value::Str(s) => s.len() as u64,
            Value::Map(entries) => entries.iter().map(|(k, _)| k.len() as u64).sum::<u64>(),
            _ => 0,
        };
        self.size = self.size.saturating_add(NODE_SIZE).saturating_add(text);
        if self.size > MAX_RESOLVED_SIZE {
            // The key written with the reference that led here, rather than what it copies.
            let key = self.via.first().map_or(path, String::as_str);
            return Err(ConfigError::ResolvedTooLarge {
                key: key.to_string(),
                what: "the configuration".into(),
                limit: MAX_RESOLVED_SIZE,
            });
        }
        Ok(())
    }

    /// The resolved node at `target`, referenced from the value at `path`, and the reference
    /// depth of that value through it (one more than the target's).
    fn follow(&mut self, path: &str, target: &str) -> Result<(Value, usize), ConfigError> {
        let too_deep = || ConfigError::InterpolationTooDeep {
            key: path.to_string(),
            limit: MAX_INTERPOLATION_DEPTH,
            what: "`${...}` references in a chain".into(),
        };
        // On the way down (the chain is being resolved now) ...
        if self.via.len() >= MAX_INTERPOLATION_DEPTH {
            return Err(too_deep());
        }
        self.via.push(path.to_string());
        let found = self.node(target);
        self.via.pop();
        let (v, depth) = found?;
        // ... and on the way up (a part of it had been resolved before).
        let depth = depth + 1;
        if depth > MAX_INTERPOLATION_DEPTH {
            return Err(too_deep());
        }
        Ok((v, depth))
    }

    /// The resolved value of the string `s` held at `path`, and its reference depth.
    fn string(&mut self, path: &str, s: &str) -> Result<(Value, usize), ConfigError> {
        let invalid = |reason: String| ConfigError::InterpolationInvalid {
            key: path.to_string(),
            value: shorten(s),
            reason,
        };
        let Some(pieces) = pieces(s).map_err(invalid)? else {
            return Ok((Value::Str(s.to_string()), 0));
        };
        if let [Piece::Ref(r)] = pieces.as_slice() {
            let target = self.target(path, s, r)?;
            return self.follow(path, &target);
        }
        let mut out = String::new();
        let mut depth: usize = 0;
        for piece in &pieces {
            match piece {
                Piece::Text(t) => append(path, &mut out, t)?,
                Piece::Ref(r) => {
                    let target = self.target(path, s, r)?;
                    let (v, d) = self.follow(path, &target)?;
                    depth = depth.max(d);
                    let text = scalar_text(&v).ok_or_else(|| {
                        invalid(format!(
                            "`${{{r}}}` is {} and cannot be part of a string",
                            v.type_name()
                        ))
                    })?;
                    append(path, &mut out, &text)?;
                }
            }
        }
        Ok((Value::Str(out), depth))
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

/// Appends `text` to the string being built for `path`, within [`MAX_STRING_LEN`].
fn append(path: &str, out: &mut String, text: &str) -> Result<(), ConfigError> {
    if out.len().saturating_add(text.len()) > MAX_STRING_LEN {
        return Err(ConfigError::ResolvedTooLarge {
            key: path.to_string(),
            what: "its string".into(),
            limit: MAX_STRING_LEN as u64,
        });
    }
    out.push_str(text);
    Ok(())
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

    /// `k0` ... `kn`, a chain of `n` references ending in `0`: `k0 -> k1 -> ... -> kn` when
    /// `forward` (resolved from its start), else `kn -> ... -> k1 -> k0` (from its end).
    fn chain(n: usize, forward: bool) -> Value {
        let entries: Vec<(String, Value)> = (0..=n)
            .map(|i| {
                let v = match (forward, i) {
                    (true, i) if i == n => Value::Int(0),
                    (true, i) => Value::Str(format!("${{k{}}}", i + 1)),
                    (false, 0) => Value::Int(0),
                    (false, i) => Value::Str(format!("${{k{}}}", i - 1)),
                };
                (format!("k{i}"), v)
            })
            .collect();
        Value::Map(entries)
    }

    #[test]
    fn reference_chains_are_bounded_in_either_order() {
        let max = MAX_INTERPOLATION_DEPTH;
        for forward in [true, false] {
            let r = resolve(&chain(max, forward)).unwrap();
            assert_eq!(r.at("k0"), Some(&Value::Int(0)));
            assert_eq!(r.at(&format!("k{max}")), Some(&Value::Int(0)));
        }
        // One more is refused; a chain of 10,000 (a stack overflow before) as well, at once.
        for n in [max + 1, 10_000] {
            for forward in [true, false] {
                let e = resolve(&chain(n, forward)).unwrap_err();
                let ConfigError::InterpolationTooDeep { key, limit, .. } = &e else {
                    panic!("{e}");
                };
                assert_eq!(*limit, max);
                // from the start: the key whose reference would be the 65th of the chain;
                // from the end: the first key 65 references deep
                let deep = if forward { max } else { max + 1 };
                assert_eq!(key, &format!("k{deep}"), "{e}");
                assert_eq!(
                    e.to_string(),
                    format!(
                        "interpolation of `k{deep}` is too deep: more than 64 `${{...}}` \
                         references in a chain"
                    )
                );
            }
        }
    }

    #[test]
    fn nested_resolution_is_bounded() {
        // Mappings 300 deep (more than YAML text or override keys may nest) over a reference.
        let mut v = Value::Str("${top}".into());
        for _ in 0..300 {
            v = Value::Map(vec![("a".into(), v)]);
        }
        let t = Value::Map(vec![("top".into(), Value::Int(1)), ("deep".into(), v)]);
        let e = resolve(&t).unwrap_err();
        assert!(
            matches!(&e, ConfigError::InterpolationTooDeep { limit, .. }
                if *limit == MAX_RESOLVE_NESTING),
            "{e}"
        );
        assert!(
            e.to_string().contains("more than 256 values resolved"),
            "{e}"
        );
    }

    #[test]
    fn strings_built_by_interpolation_are_bounded() {
        // k0 = x, k1 = ${k0}${k0}, ...: k20 is 1 MiB, k21 would be 2 MiB (k29, 512 MiB).
        let mut entries = vec![("k0".to_string(), Value::Str("x".into()))];
        for i in 1..30 {
            let twice = format!("${{k{0}}}${{k{0}}}", i - 1);
            entries.push((format!("k{i}"), Value::Str(twice)));
        }
        let e = resolve(&Value::Map(entries)).unwrap_err();
        assert_eq!(
            e,
            ConfigError::ResolvedTooLarge {
                key: "k21".into(),
                what: "its string".into(),
                limit: MAX_STRING_LEN as u64,
            }
        );
        assert_eq!(
            e.to_string(),
            "resolving `k21` makes its string larger than the limit of 1048576 bytes"
        );
        // up to the limit, doubling works
        let mut entries = vec![("k0".to_string(), Value::Str("x".into()))];
        for i in 1..=20 {
            let twice = format!("${{k{0}}}${{k{0}}}", i - 1);
            entries.push((format!("k{i}"), Value::Str(twice)));
        }
        let r = resolve(&Value::Map(entries)).unwrap();
        assert!(matches!(r.at("k20"), Some(Value::Str(s)) if s.len() == MAX_STRING_LEN));
    }

    #[test]
    fn copies_of_copies_are_bounded() {
        // a: ten strings of 10 kB; b: ten copies of a (1 MB); c: of b (10 MB); d: 100 MB ...
        let names = ["a", "b", "c", "d", "e", "f"];
        let mut entries = vec![(
            "a".to_string(),
            Value::List(vec![Value::Str("x".repeat(10_000)); 10]),
        )];
        for w in names.windows(2) {
            let copy = Value::Str(format!("${{{}}}", w[0]));
            entries.push((w[1].to_string(), Value::List(vec![copy; 10])));
        }
        let e = resolve(&Value::Map(entries)).unwrap_err();
        assert_eq!(
            e,
            ConfigError::ResolvedTooLarge {
                key: "d.0".into(),
                what: "the configuration".into(),
                limit: MAX_RESOLVED_SIZE,
            }
        );
        assert_eq!(
            e.to_string(),
            "resolving `d.0` makes the configuration larger than the limit of 16777216 bytes"
        );
    }

    #[test]
    fn referenced_keys_are_bounded() {
        let deep = vec!["a"; MAX_KEY_SEGMENTS + 1].join(".");
        let e = pieces(&format!("${{{deep}}}")).unwrap_err();
        assert!(
            e.contains("at most 1000 bytes and 32 dot-separated parts"),
            "{e}"
        );
        let long = "a".repeat(MAX_KEY_LEN + 1);
        let e = pieces(&format!("x${{{long}}}")).unwrap_err();
        assert!(e.contains("at most 1000 bytes"), "{e}");
        assert!(!e.contains(&long), "the key is not echoed: {e}");
        let ok = vec!["a"; MAX_KEY_SEGMENTS].join(".");
        assert_eq!(
            pieces(&format!("${{{ok}}}")).unwrap().unwrap(),
            vec![Piece::Ref(ok.as_str())]
        );
    }
}
