//! The configuration tree: an ordered YAML value, and its conversion from and to YAML text.

use std::collections::HashMap;
use std::fmt;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::{Yaml, YamlEmitter, YamlLoader};

use crate::error::ConfigError;
use crate::limits::{MAX_ALIAS_BYTES, MAX_ALIAS_NODES, MAX_YAML_DEPTH};

/// One node of a configuration tree.
///
/// Mappings keep the order of their keys (the order of the YAML files, new keys last), so that
/// [`Config::to_yaml`](crate::Config::to_yaml) prints the configuration in a stable, readable
/// order.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null` or `~`.
    Null,
    /// `True`, `false`, ... (YAML 1.2 core schema: `true`, `True`, `TRUE` and the same for false).
    Bool(bool),
    /// An integer (`-100`, `0x10`).
    Int(i64),
    /// A float (`0.1`, `5e-4`, `.inf`).
    Float(f64),
    /// A string.
    Str(String),
    /// A sequence.
    List(Vec<Value>),
    /// A mapping with string keys, in order.
    Map(Vec<(String, Value)>),
}

impl Value {
    /// The value under `key` of a mapping, or `None` (also when `self` is not a mapping).
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// Mutable access to the value under `key` of a mapping.
    pub(crate) fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        match self {
            Value::Map(entries) => entries.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The node at a dotted path (`"loss.margin"`, `"scheduler.milestones.0"`: a number
    /// indexes a list); the empty path is `self`.
    pub fn at(&self, path: &str) -> Option<&Value> {
        if path.is_empty() {
            return Some(self);
        }
        let mut node = self;
        for seg in path.split('.') {
            node = node.child(seg)?;
        }
        Some(node)
    }

    /// The child of a mapping (by key) or a list (by decimal index).
    pub(crate) fn child(&self, seg: &str) -> Option<&Value> {
        match self {
            Value::Map(_) => self.get(seg),
            Value::List(items) => seg.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        }
    }

    /// Mutable form of [`Value::child`].
    pub(crate) fn child_mut(&mut self, seg: &str) -> Option<&mut Value> {
        match self {
            Value::Map(_) => self.get_mut(seg),
            Value::List(items) => seg.parse::<usize>().ok().and_then(|i| items.get_mut(i)),
            _ => None,
        }
    }

    /// Sets `key` of a mapping, replacing its value in place or appending it. Does nothing when
    /// `self` is not a mapping.
    pub(crate) fn set(&mut self, key: &str, value: Value) {
        if let Value::Map(entries) = self {
            match entries.iter_mut().find(|(k, _)| k == key) {
                Some((_, v)) => *v = value,
                None => entries.push((key.to_string(), value)),
            }
        }
    }

    /// The type of the value in words, for messages: `a float`, `a string`, ...
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Str(_) => "a string",
            Value::List(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// Deep merge of `other` into `self`: mappings merge key by key (keys of `other` win, new
    /// keys are appended); anything else is replaced.
    pub(crate) fn merge(&mut self, other: Value) {
        match (self, other) {
            (this @ Value::Map(_), Value::Map(entries)) => {
                for (k, v) in entries {
                    match this.get_mut(&k) {
                        Some(existing) => existing.merge(v),
                        None => this.set(&k, v),
                    }
                }
            }
            (this, other) => *this = other,
        }
    }

    /// Every dotted path of the tree below `self` (mappings' keys, not list indices), parents
    /// before children.
    pub(crate) fn paths(&self) -> Vec<String> {
        fn walk(v: &Value, prefix: &str, out: &mut Vec<String>) {
            if let Value::Map(entries) = v {
                for (k, child) in entries {
                    let p = join(prefix, k);
                    out.push(p.clone());
                    walk(child, &p, out);
                }
            }
        }
        let mut out = Vec::new();
        walk(self, "", &mut out);
        out
    }

    /// Converts a parsed YAML node (the loader expands aliases). Mapping keys must be scalars;
    /// a float out of range (`1e400`, read as infinity) is an error.
    pub(crate) fn from_yaml(y: &Yaml) -> Result<Value, String> {
        Ok(match y {
            Yaml::Null => Value::Null,
            Yaml::Boolean(b) => Value::Bool(*b),
            Yaml::Integer(i) => Value::Int(*i),
            Yaml::Real(s) => {
                let x = y
                    .as_f64()
                    .ok_or_else(|| format!("`{s}` is not a valid float"))?;
                // `1e400` reads as infinity: refused, where `.inf` is infinity on purpose.
                let inf_literal = s
                    .trim_start_matches(['+', '-'])
                    .eq_ignore_ascii_case(".inf");
                if x.is_infinite() && !inf_literal {
                    return Err(format!("`{s}` is out of range for a float"));
                }
                Value::Float(x)
            }
            Yaml::String(s) => Value::Str(s.clone()),
            Yaml::Array(items) => Value::List(
                items
                    .iter()
                    .map(Value::from_yaml)
                    .collect::<Result<_, _>>()?,
            ),
            Yaml::Hash(h) => {
                let mut entries: Vec<(String, Value)> = Vec::with_capacity(h.len());
                for (k, v) in h {
                    let key = match k {
                        Yaml::String(s) => s.clone(),
                        Yaml::Integer(i) => i.to_string(),
                        Yaml::Boolean(b) => b.to_string(),
                        Yaml::Real(s) => s.clone(),
                        other => return Err(format!("unsupported mapping key {other:?}")),
                    };
                    if entries.iter().any(|(e, _)| *e == key) {
                        return Err(format!("duplicate key `{key}`"));
                    }
                    entries.push((key, Value::from_yaml(v)?));
                }
                Value::Map(entries)
            }
            Yaml::Alias(_) => return Err("unresolved YAML alias".into()),
            Yaml::BadValue => return Err("invalid YAML value".into()),
        })
    }

    /// Parses one YAML document (YAML 1.2 core schema; an empty document is an empty
    /// mapping), e.g. the output of [`Config::to_yaml`](crate::Config::to_yaml).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Parse`] for invalid YAML, several documents, duplicate or
    /// non-scalar mapping keys, a float out of range (`1e400`), mappings and lists nested
    /// deeper than [`MAX_YAML_DEPTH`](crate::limits::MAX_YAML_DEPTH), or aliases that expand
    /// past [`MAX_ALIAS_NODES`](crate::limits::MAX_ALIAS_NODES) or
    /// [`MAX_ALIAS_BYTES`](crate::limits::MAX_ALIAS_BYTES).
    pub fn parse_yaml(text: &str) -> Result<Value, ConfigError> {
        Value::parse_document(text).map_err(|reason| ConfigError::Parse { reason })
    }

    /// Parses one YAML document (an empty document is an empty mapping); aliases are
    /// expanded, within the limits.
    pub(crate) fn parse_document(text: &str) -> Result<Value, String> {
        Value::parse_document_with(text, true)
    }

    /// [`Value::parse_document`], refusing any alias when `aliases` is false (override
    /// values).
    pub(crate) fn parse_document_with(text: &str, aliases: bool) -> Result<Value, String> {
        // The loader recurses once per level of nesting and copies the anchored node at every
        // alias: check both on the events first, which takes no memory beyond the anchors.
        scan(text, aliases)?;
        let docs = YamlLoader::load_from_str(text).map_err(|e| e.to_string())?;
        match docs.as_slice() {
            [] => Ok(Value::Map(Vec::new())),
            [doc] => Value::from_yaml(doc),
            _ => Err("more than one YAML document".into()),
        }
    }

    /// The YAML node of this value.
    pub(crate) fn to_yaml_node(&self) -> Yaml {
        match self {
            Value::Null => Yaml::Null,
            Value::Bool(b) => Yaml::Boolean(*b),
            Value::Int(i) => Yaml::Integer(*i),
            Value::Float(f) => Yaml::Real(format_float(*f)),
            Value::Str(s) => Yaml::String(s.clone()),
            Value::List(items) => Yaml::Array(items.iter().map(Value::to_yaml_node).collect()),
            Value::Map(entries) => Yaml::Hash(
                entries
                    .iter()
                    .map(|(k, v)| (Yaml::String(k.clone()), v.to_yaml_node()))
                    .collect(),
            ),
        }
    }

    /// Block-style YAML text of this value, without the `---` document marker, ending with a
    /// newline. An empty mapping prints as `{}`.
    pub fn to_yaml(&self) -> String {
        let mut out = String::new();
        let mut emitter = YamlEmitter::new(&mut out);
        // Emitting to a String cannot fail (fmt::Write on String is infallible) and every
        // node we build is representable.
        if emitter.dump(&self.to_yaml_node()).is_err() {
            return String::new();
        }
        let body = out.strip_prefix("---\n").unwrap_or(&out);
        let body = body.strip_prefix("--- ").unwrap_or(body);
        let mut body = body.to_string();
        body.push('\n');
        body
    }
}

/// Walks the parser's events of a YAML text without building anything: refuses mappings and
/// lists nested deeper than [`MAX_YAML_DEPTH`], any alias when `aliases` is false, and
/// aliases whose expansion would add more than [`MAX_ALIAS_NODES`] nodes or
/// [`MAX_ALIAS_BYTES`] bytes of scalar text to the document. Syntax errors are the parser's,
/// as the loader reports them.
fn scan(text: &str, aliases: bool) -> Result<(), String> {
    let mut parser = Parser::new_from_str(text);
    // (anchor id, nodes, scalar bytes) of each mapping or list being read, outermost first
    let mut open: Vec<(usize, u64, u64)> = Vec::new();
    // (nodes, scalar bytes) of each anchored node, as expanded
    let mut anchored: HashMap<usize, (u64, u64)> = HashMap::new();
    let (mut alias_nodes, mut alias_bytes) = (0u64, 0u64);
    loop {
        let (event, _) = parser.next_token().map_err(|e| e.to_string())?;
        let (anchor, nodes, bytes): (usize, u64, u64) = match event {
            Event::StreamEnd => return Ok(()),
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if open.len() >= MAX_YAML_DEPTH {
                    return Err(format!(
                        "mappings and lists nested more than {MAX_YAML_DEPTH} levels deep"
                    ));
                }
                open.push((anchor, 1, 0));
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match open.pop() {
                Some(done) => done,
                None => continue,
            },
            Event::Scalar(s, _, anchor, _) => (anchor, 1, s.len() as u64),
            Event::Alias(id) => {
                if !aliases {
                    return Err(
                        "YAML aliases (`*name`) are not accepted in an override value; write \
                         the value out"
                            .into(),
                    );
                }
                let (nodes, bytes) = anchored.get(&id).copied().unwrap_or((1, 0));
                alias_nodes = alias_nodes.saturating_add(nodes);
                alias_bytes = alias_bytes.saturating_add(bytes);
                if alias_nodes > MAX_ALIAS_NODES || alias_bytes > MAX_ALIAS_BYTES {
                    return Err(format!(
                        "YAML aliases (`*name`) expand to more than {MAX_ALIAS_NODES} nodes or \
                         {MAX_ALIAS_BYTES} bytes"
                    ));
                }
                (0, nodes, bytes)
            }
            _ => continue,
        };
        if anchor > 0 {
            anchored.insert(anchor, (nodes, bytes));
        }
        if let Some(parent) = open.last_mut() {
            parent.1 = parent.1.saturating_add(nodes);
            parent.2 = parent.2.saturating_add(bytes);
        }
    }
}

/// Flow-style YAML text (`[40, 60]`, `{a: 1}`, `0.1`, `"cuda:0"`), used in messages.
impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{}", if *b { "True" } else { "False" }),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => f.write_str(&format_float(*x)),
            Value::Str(s) => {
                if s.is_empty() || s.contains([',', '[', ']', '{', '}', ':', '"', '\'', '#']) {
                    write!(f, "{s:?}")
                } else {
                    f.write_str(s)
                }
            }
            Value::List(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            Value::Map(entries) => {
                f.write_str("{")?;
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{k}: {v}")?;
                }
                f.write_str("}")
            }
        }
    }
}

impl serde::Serialize for Value {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self {
            Value::Null => serializer.serialize_unit(),
            Value::Bool(b) => serializer.serialize_bool(*b),
            Value::Int(i) => serializer.serialize_i64(*i),
            Value::Float(x) => serializer.serialize_f64(*x),
            Value::Str(s) => serializer.serialize_str(s),
            Value::List(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for v in items {
                    seq.serialize_element(v)?;
                }
                seq.end()
            }
            Value::Map(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

/// YAML text of a float that reads back as the same float with YAML 1.2 and 1.1 parsers
/// alike: always a decimal point, a signed exponent (`1.0e-10`), `.inf`, `-.inf`, `.nan`.
pub(crate) fn format_float(x: f64) -> String {
    if x.is_nan() {
        return ".nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { ".inf" } else { "-.inf" }.into();
    }
    // `{:?}` is the shortest text that round-trips: `0.1`, `1e-10`, `1e20`, `100.0`.
    let s = format!("{x:?}");
    let (mantissa, exponent) = match s.find(['e', 'E']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s.as_str(), None),
    };
    let mut out = mantissa.to_string();
    if !out.contains('.') {
        out.push_str(".0");
    }
    if let Some(e) = exponent {
        out.push('e');
        if !e.starts_with(['-', '+']) {
            out.push('+');
        }
        out.push_str(e);
    }
    out
}

/// `prefix.key`, or `key` when the prefix is empty.
pub(crate) fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_with_point_and_signed_exponent() {
        assert_eq!(format_float(0.1), "0.1");
        assert_eq!(format_float(100.0), "100.0");
        assert_eq!(format_float(5e-4), "0.0005");
        assert_eq!(format_float(1e-10), "1.0e-10");
        assert_eq!(format_float(1.5e20), "1.5e+20");
        assert_eq!(format_float(-2.0), "-2.0");
        assert_eq!(format_float(f64::INFINITY), ".inf");
        assert_eq!(format_float(f64::NEG_INFINITY), "-.inf");
        assert_eq!(format_float(f64::NAN), ".nan");
        for x in [0.1, 1e-10, 1.5e20, 5e-4, -3.25, 1e300] {
            let v = Value::parse_document(&format_float(x)).unwrap();
            assert_eq!(v, Value::Float(x));
        }
    }

    #[test]
    fn parse_keeps_order_and_types() {
        let v = Value::parse_document("b: 1\na: [0.5, 2]\nc: {x: True, y: null, z: hi}\n").unwrap();
        let Value::Map(entries) = &v else {
            panic!("not a map")
        };
        let keys: Vec<&str> = entries.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["b", "a", "c"]);
        assert_eq!(v.at("a.1"), Some(&Value::Int(2)));
        assert_eq!(v.at("a.0"), Some(&Value::Float(0.5)));
        assert_eq!(v.at("c.x"), Some(&Value::Bool(true)));
        assert_eq!(v.at("c.y"), Some(&Value::Null));
        assert_eq!(v.at("c.z"), Some(&Value::Str("hi".into())));
        assert_eq!(v.at("c.w"), None);
        assert_eq!(
            v.to_string(),
            "{b: 1, a: [0.5, 2], c: {x: True, y: null, z: hi}}"
        );
    }

    #[test]
    fn duplicate_keys_are_rejected_and_aliases_expanded() {
        assert!(
            Value::parse_document("a: 1\na: 2\n")
                .unwrap_err()
                .contains("duplicate")
        );
        let v = Value::parse_document("a: &x [1]\nb: *x\n").unwrap();
        assert_eq!(v.at("b.0"), Some(&Value::Int(1)));
    }

    #[test]
    fn merge_is_deep() {
        let mut a = Value::parse_document("x: {p: 1, q: 2}\ny: 3\n").unwrap();
        a.merge(Value::parse_document("x: {q: 5, r: 6}\nz: 7\n").unwrap());
        assert_eq!(a.to_string(), "{x: {p: 1, q: 5, r: 6}, y: 3, z: 7}");
    }

    #[test]
    fn yaml_text_round_trips() {
        let text =
            "a: \"\"\nb: \"cuda:0\"\nc: \"True\"\nd: \"10\"\ne: [1.0e-10, 2]\nf: {}\ng: []\nh: ~\n";
        let v = Value::parse_document(text).unwrap();
        let back = Value::parse_document(&v.to_yaml()).unwrap();
        assert_eq!(v, back);
    }

    #[test]
    fn serializes_to_json_in_order() {
        let v = Value::parse_document("b: 1\na: [0.5, true, null, s]\n").unwrap();
        let json = serde_json::to_string(&v).unwrap();
        assert_eq!(json, r#"{"b":1,"a":[0.5,true,null,"s"]}"#);
    }

    /// The alias bomb of the issue: nine levels of nine aliases of the level below, 9^9
    /// (387 million) numbers from about 250 bytes.
    fn alias_bomb() -> String {
        let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
        let mut levels = vec!["&a [1,1,1,1,1,1,1,1,1]".to_string()];
        for w in names.windows(2) {
            let aliases = vec![format!("*{}", w[0]); 9].join(",");
            levels.push(format!("&{} [{aliases}]", w[1]));
        }
        format!("[{}]", levels.join(", "))
    }

    #[test]
    fn alias_expansion_is_bounded() {
        let bomb = alias_bomb();
        assert!(bomb.len() < 300, "{}", bomb.len());
        let e = Value::parse_document(&bomb).unwrap_err();
        assert!(
            e.contains("expand to more than 100000 nodes or 1048576 bytes"),
            "{e}"
        );
        // refused outright where aliases are not accepted (override values)
        let e = Value::parse_document_with(&bomb, false).unwrap_err();
        assert!(e.contains("not accepted in an override value"), "{e}");
        let e = Value::parse_document_with("[&x [1], *x]", false).unwrap_err();
        assert!(e.contains("not accepted"), "{e}");
        // an anchor alone is harmless
        assert_eq!(
            Value::parse_document_with("[&x 1, 2]", false).unwrap(),
            Value::List(vec![Value::Int(1), Value::Int(2)])
        );
        // within the limit, aliases expand: 3 levels of 9 (about 800 nodes)
        let small = "[&a [1,1,1,1,1,1,1,1,1], &b [*a,*a,*a,*a,*a,*a,*a,*a,*a], \
                     [*b,*b,*b,*b,*b,*b,*b,*b,*b]]";
        let v = Value::parse_document(small).unwrap();
        assert_eq!(v.at("2.8.8"), Some(&Value::List(vec![Value::Int(1); 9])));
        // text copied by aliases counts too: 2,000 copies of a 1 kB string is 2 MB
        let long = format!("&s {}", "x".repeat(1000));
        let copies = vec!["*s"; 2000].join(", ");
        let e = Value::parse_document(&format!("[{long}, {copies}]")).unwrap_err();
        assert!(e.contains("1048576 bytes"), "{e}");
    }

    #[test]
    fn nesting_is_bounded() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(Value::parse_document(&nested(MAX_YAML_DEPTH)).is_ok());
        let e = Value::parse_document(&nested(MAX_YAML_DEPTH + 1)).unwrap_err();
        assert_eq!(e, "mappings and lists nested more than 64 levels deep");
        // block style too, which the loader would recurse into without limit
        let block = "- ".repeat(100_000) + "x\n";
        let e = Value::parse_document(&block).unwrap_err();
        assert_eq!(e, "mappings and lists nested more than 64 levels deep");
        // syntax errors are reported as before
        let e = Value::parse_document("[1, 2").unwrap_err();
        assert!(!e.contains("nested"), "{e}");
    }

    #[test]
    fn floats_out_of_range_are_refused() {
        for text in ["1e400", "-1e400", "1.0e+309"] {
            let e = Value::parse_document(text).unwrap_err();
            assert_eq!(e, format!("`{text}` is out of range for a float"));
        }
        let e = Value::parse_document("{a: [1, 2e308]}").unwrap_err();
        assert_eq!(e, "`2e308` is out of range for a float");
        // infinity on purpose, and what underflows to zero, are floats
        assert_eq!(
            Value::parse_document(".inf").unwrap(),
            Value::Float(f64::INFINITY)
        );
        assert_eq!(
            Value::parse_document("-.Inf").unwrap(),
            Value::Float(f64::NEG_INFINITY)
        );
        assert_eq!(Value::parse_document("1e-400").unwrap(), Value::Float(0.0));
        assert_eq!(
            Value::parse_document("1.7976931348623157e308").unwrap(),
            Value::Float(f64::MAX)
        );
    }
}
