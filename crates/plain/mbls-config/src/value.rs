//! The configuration tree: an ordered YAML value, and its conversion from and to YAML text.

use std::fmt;

use yaml_rust2::{Yaml, YamlEmitter, YamlLoader};

use crate::error::ConfigError;

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

    /// Converts a parsed YAML node (the loader expands aliases). Mapping keys must be scalars.
    pub(crate) fn from_yaml(y: &Yaml) -> Result<Value, String> {
        Ok(match y {
            Yaml::Null => Value::Null,
            Yaml::Boolean(b) => Value::Bool(*b),
            Yaml::Integer(i) => Value::Int(*i),
            Yaml::Real(s) => Value::Float(
                y.as_f64()
                    .ok_or_else(|| format!("`{s}` is not a valid float"))?,
            ),
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
    /// non-scalar mapping keys.
    pub fn parse_yaml(text: &str) -> Result<Value, ConfigError> {
        Value::parse_document(text).map_err(|reason| ConfigError::Parse { reason })
    }

    /// Parses one YAML document (an empty document is an empty mapping).
    pub(crate) fn parse_document(text: &str) -> Result<Value, String> {
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
}
