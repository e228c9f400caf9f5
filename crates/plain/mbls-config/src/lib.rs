//! The configuration of mbls, composed Hydra-style as in the MbLS reference (Hydra 1.1).
//!
//! The configuration is a tree of YAML values built from files embedded in the binary
//! (`configs/` of this crate):
//!
//! - `configs/defaults.yaml`, the primary config: its `defaults` list picks one option of each
//!   *config group* (`data: cifar10`, `model: resnet50`, `loss: ce`, `optim: sgd`,
//!   `scheduler: multi_step`, `wandb: my`), and its other keys (`task`, `device`, `seed`,
//!   `train`, `calibrate`, `test`, ...) are merged over the group files (`_self_` last, as in
//!   the reference);
//! - `configs/<group>/<option>.yaml`, placed under the key `<group>` (`loss.margin`, ...).
//!
//! Command-line overrides, as `python tools/train_net.py` takes them:
//!
//! - `group=option` selects a group option: `loss=logit_margin`;
//! - `dotted.key=value` overrides an existing key: `loss.margin=5`, `optim.lr=0.05`,
//!   `scheduler.milestones=[40,60]`, `scheduler.milestones.0=30`, `train={max_epoch: 5}`;
//!   values are YAML (1.2 core schema) scalars, quoted strings or flow collections, and
//!   must have the type of the key's default (an integer is accepted for a float);
//! - `+new.key=value` adds a key that does not exist; `++key=value` sets or adds.
//!
//! Group selections are applied first, then key overrides in command-line order (a later one
//! wins), then `${key}` interpolations are resolved against the final tree.
//!
//! Input is bounded ([`limits`]): key length and depth, YAML nesting and aliases (refused in
//! override values), interpolation depth, and the size of what interpolation builds; past a
//! limit composition fails with an error naming the override or key.
//!
//! ```
//! use mbls_config::Config;
//!
//! let cfg = Config::compose(&["loss.margin=5", "loss=logit_margin", "optim.lr=0.05"])?;
//! assert_eq!(cfg.group("loss"), "logit_margin");
//! assert_eq!(cfg.get_f64("loss.margin")?, 5.0);
//! assert_eq!(cfg.get_f64("optim.lr")?, 0.05);
//! assert_eq!(cfg.get_i64("data.random_seed")?, 1); // `${seed}`
//! let loss = cfg.subtree("loss")?;
//! assert_eq!(loss.get_f64("alpha")?, 0.1);
//! println!("{}", cfg.to_yaml());
//! # Ok::<(), mbls_config::ConfigError>(())
//! ```
//!
//! Differences from the reference, on purpose: `device` defaults to `cpu` (the reference:
//! `cuda:0`); the `object: {_target_: ...}` sub-trees of the reference's group files (Python
//! class paths for Hydra's `instantiate`) are left out, the values they forwarded being the
//! group's own keys; override values are type-checked against the defaults (Hydra accepts
//! any value on its untyped YAML nodes); the YAML is read as YAML 1.2 (PyYAML reads 1.1, whose
//! `yes`/`no`/`on`/`off` booleans and `5e-4`-as-string do not occur in these files); the
//! `hydra` node (run directory, logging) is not part of the tree; interpolations are plain
//! key references (no resolvers like `${now:...}`).

#![warn(missing_docs)]

mod error;
mod interp;
pub mod limits;
mod overrides;
mod registry;
mod suggest;
mod user;
mod value;

use std::fmt;

pub use error::ConfigError;
pub use user::UserConfigs;
pub use value::Value;

use overrides::Kind;
use value::join;

/// A composed, fully resolved configuration (or a sub-tree of one, see [`Config::subtree`]).
///
/// Keys are dotted paths (`"loss.margin"`); a number indexes a list
/// (`"scheduler.milestones.0"`).
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The resolved tree (a mapping).
    root: Value,
    /// `(group, option)` for every config group, in defaults-list order.
    choices: Vec<(String, String)>,
    /// The dotted path of `root` in the full configuration (empty for the full one).
    prefix: String,
}

impl Config {
    /// Composes the configuration from the embedded defaults and command-line `overrides`
    /// (`group=option`, `dotted.key=value`, `+new.key=value`, `++key=value`).
    ///
    /// # Errors
    ///
    /// A malformed override ([`ConfigError::BadOverride`]), an unknown group option
    /// ([`ConfigError::UnknownOption`], listing the valid ones), an unknown key without `+`
    /// ([`ConfigError::UnknownKey`], with the closest key), `+` on an existing key
    /// ([`ConfigError::KeyExists`]), an unparsable value ([`ConfigError::BadValue`]), a value
    /// of the wrong type ([`ConfigError::TypeMismatch`]), a missing, cyclic or unsupported
    /// interpolation, or input past one of the [`limits`] (a key too long or too deep, a YAML
    /// alias in an override value, a non-finite float, interpolations too deep or that build
    /// too much: [`ConfigError::InterpolationTooDeep`], [`ConfigError::ResolvedTooLarge`]).
    pub fn compose(overrides: &[&str]) -> Result<Config, ConfigError> {
        Config::compose_args(overrides)
    }

    /// [`Config::compose`] for any string type (`&[String]` from a command-line parser).
    ///
    /// # Errors
    ///
    /// As [`Config::compose`].
    pub fn compose_args<S: AsRef<str>>(overrides: &[S]) -> Result<Config, ConfigError> {
        Config::compose_with(overrides, &UserConfigs::none())
    }

    /// [`Config::compose_args`] with the group option files of user folders
    /// (`--config-dir DIR`, [`UserConfigs::load`]), which replace built-in options of the same
    /// name and add new ones.
    ///
    /// # Errors
    ///
    /// As [`Config::compose`].
    pub fn compose_with<S: AsRef<str>>(
        overrides: &[S],
        user: &UserConfigs,
    ) -> Result<Config, ConfigError> {
        let parsed = overrides
            .iter()
            .map(|o| overrides::parse(o.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;

        let (mut defaults, primary) = primary_config()?;
        for o in parsed.iter().filter(|o| o.kind == Kind::Select) {
            let valid = user.options(&o.key);
            let value = registry::canonical_option(&o.key, &o.value);
            if !valid.iter().any(|v| v == value) {
                return Err(ConfigError::UnknownOption {
                    group: o.key.clone(),
                    option: o.value.clone(),
                    valid,
                });
            }
            for entry in defaults.iter_mut() {
                if let Entry::Group(g, option) = entry {
                    if *g == o.key {
                        *option = value.to_string();
                    }
                }
            }
        }

        let mut tree = Value::Map(Vec::new());
        let mut choices = Vec::new();
        for entry in &defaults {
            match entry {
                Entry::SelfConfig => tree.merge(primary.clone()),
                Entry::Group(group, option) => {
                    let mut node = Value::Map(Vec::new());
                    let file = match user.get(group, option) {
                        Some(v) => v.clone(),
                        None => group_file(group, option)?,
                    };
                    node.set(group, file);
                    tree.merge(node);
                    choices.push((group.clone(), option.clone()));
                }
            }
        }

        // Overrides whose value is an interpolation: type-checked after resolution.
        let mut deferred: Vec<(String, Value, String)> = Vec::new();
        for o in parsed.iter().filter(|o| o.kind != Kind::Select) {
            let parsed_value = overrides::parse_value(&o.key, &o.value)?;
            let exists = tree.at(&o.key).is_some();
            match (o.kind, exists) {
                (Kind::Add, true) => {
                    return Err(ConfigError::KeyExists { key: o.key.clone() });
                }
                (Kind::Set, false) => {
                    return Err(unknown_key(&o.key, &tree, &choices));
                }
                (Kind::Add | Kind::Force, false) => add(&mut tree, o, parsed_value.value)?,
                _ => {
                    let Some(slot) = at_mut(&mut tree, &o.key) else {
                        return Err(unknown_key(&o.key, &tree, &choices));
                    };
                    let is_interp = interp::is_interpolation(&parsed_value.value);
                    let new = overrides::coerce(
                        &o.key,
                        slot,
                        parsed_value.value,
                        parsed_value.plain.as_deref(),
                        &o.value,
                    )?;
                    if is_interp && !interp::is_interpolation(slot) {
                        deferred.push((o.key.clone(), slot.clone(), o.value.clone()));
                    }
                    *slot = new;
                }
            }
        }

        let mut root = interp::resolve(&tree)?;
        for (key, template, text) in deferred {
            if let Some(slot) = at_mut(&mut root, &key) {
                let resolved = std::mem::replace(slot, Value::Null);
                *slot = overrides::coerce(&key, &template, resolved, None, &text)?;
            }
        }
        Ok(Config {
            root,
            choices,
            prefix: String::new(),
        })
    }

    /// The config groups and their options, in the order of the defaults list, for help
    /// output: `[("data", ["cifar10", ...]), ("model", [...]), ...]`.
    pub fn groups() -> &'static [(&'static str, &'static [&'static str])] {
        registry::GROUPS
    }

    /// The built-in method sets of `mbls compare` (`compare/<name>.yaml` of this crate, e.g.
    /// `paper`, the paper's seven methods), with their YAML text.
    pub fn compare_sets() -> &'static [(&'static str, &'static str)] {
        registry::COMPARE_SETS
    }

    /// The embedded YAML of a group option (`configs/<group>/<option>.yaml`), e.g. to show an
    /// option's keys in help output.
    pub fn option_yaml(group: &str, option: &str) -> Option<&'static str> {
        registry::file(group, option)
    }

    /// The option chosen for config group `name` (`"loss"` -> `"logit_margin"`).
    ///
    /// # Panics
    ///
    /// When `name` is not a config group (see [`Config::groups`]); use [`Config::choice`] for
    /// a fallible version.
    pub fn group(&self, name: &str) -> &str {
        self.choice(name).unwrap_or_else(|| {
            let names: Vec<&str> = registry::GROUPS.iter().map(|(g, _)| *g).collect();
            panic!(
                "`{name}` is not a config group; groups: {}",
                names.join(", ")
            )
        })
    }

    /// The option chosen for config group `name`, or `None` when it is not a group.
    pub fn choice(&self, name: &str) -> Option<&str> {
        self.choices
            .iter()
            .find(|(g, _)| g == name)
            .map(|(_, o)| o.as_str())
    }

    /// `(group, option)` for every config group, in defaults-list order.
    pub fn choices(&self) -> &[(String, String)] {
        &self.choices
    }

    /// The dotted path of this config in the full configuration: empty for a composed config,
    /// `"loss"` for `cfg.subtree("loss")`.
    pub fn path(&self) -> &str {
        &self.prefix
    }

    /// The whole resolved tree (a mapping).
    pub fn value(&self) -> &Value {
        &self.root
    }

    /// The value at a dotted key, or `None`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.root.at(key)
    }

    /// Whether the dotted key exists.
    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// A float (an integer value is converted: `loss.margin: 10` reads as `10.0`).
    ///
    /// # Errors
    ///
    /// [`ConfigError::MissingKey`] or [`ConfigError::WrongType`].
    pub fn get_f64(&self, key: &str) -> Result<f64, ConfigError> {
        match self.require(key)? {
            Value::Float(x) => Ok(*x),
            Value::Int(i) => Ok(*i as f64),
            other => Err(self.wrong_type(key, "a float", other)),
        }
    }

    /// An integer.
    ///
    /// # Errors
    ///
    /// [`ConfigError::MissingKey`] or [`ConfigError::WrongType`] (a float is not read as an
    /// integer).
    pub fn get_i64(&self, key: &str) -> Result<i64, ConfigError> {
        match self.require(key)? {
            Value::Int(i) => Ok(*i),
            other => Err(self.wrong_type(key, "an integer", other)),
        }
    }

    /// A non-negative integer, as `usize` (sizes, counts, epochs).
    ///
    /// # Errors
    ///
    /// [`ConfigError::MissingKey`] or [`ConfigError::WrongType`] (also for a negative value).
    pub fn get_usize(&self, key: &str) -> Result<usize, ConfigError> {
        match self.require(key)? {
            Value::Int(i) if *i >= 0 => usize::try_from(*i)
                .map_err(|_| self.wrong_type(key, "a non-negative integer", &Value::Int(*i))),
            other => Err(self.wrong_type(key, "a non-negative integer", other)),
        }
    }

    /// A boolean.
    ///
    /// # Errors
    ///
    /// [`ConfigError::MissingKey`] or [`ConfigError::WrongType`].
    pub fn get_bool(&self, key: &str) -> Result<bool, ConfigError> {
        match self.require(key)? {
            Value::Bool(b) => Ok(*b),
            other => Err(self.wrong_type(key, "a boolean", other)),
        }
    }

    /// A string.
    ///
    /// # Errors
    ///
    /// [`ConfigError::MissingKey`] or [`ConfigError::WrongType`].
    pub fn get_str(&self, key: &str) -> Result<&str, ConfigError> {
        match self.require(key)? {
            Value::Str(s) => Ok(s),
            other => Err(self.wrong_type(key, "a string", other)),
        }
    }

    /// A list of floats (integer elements are converted).
    ///
    /// # Errors
    ///
    /// [`ConfigError::MissingKey`] or [`ConfigError::WrongType`].
    pub fn get_f64_list(&self, key: &str) -> Result<Vec<f64>, ConfigError> {
        let v = self.require(key)?;
        let err = || self.wrong_type(key, "a list of floats", v);
        match v {
            Value::List(items) => items
                .iter()
                .map(|x| match x {
                    Value::Float(f) => Ok(*f),
                    Value::Int(i) => Ok(*i as f64),
                    _ => Err(err()),
                })
                .collect(),
            _ => Err(err()),
        }
    }

    /// A list of integers.
    ///
    /// # Errors
    ///
    /// [`ConfigError::MissingKey`] or [`ConfigError::WrongType`].
    pub fn get_i64_list(&self, key: &str) -> Result<Vec<i64>, ConfigError> {
        let v = self.require(key)?;
        let err = || self.wrong_type(key, "a list of integers", v);
        match v {
            Value::List(items) => items
                .iter()
                .map(|x| match x {
                    Value::Int(i) => Ok(*i),
                    _ => Err(err()),
                })
                .collect(),
            _ => Err(err()),
        }
    }

    /// The sub-tree at a dotted key as a `Config` of its own, whose accessors take keys
    /// relative to it (`cfg.subtree("loss")?.get_f64("margin")`) and whose errors name full
    /// keys (`loss.margin`). It keeps the group choices of the full configuration.
    ///
    /// # Errors
    ///
    /// [`ConfigError::MissingKey`], or [`ConfigError::WrongType`] when the value is not a
    /// mapping.
    pub fn subtree(&self, key: &str) -> Result<Config, ConfigError> {
        match self.require(key)? {
            v @ Value::Map(_) => Ok(Config {
                root: v.clone(),
                choices: self.choices.clone(),
                prefix: join(&self.prefix, key),
            }),
            other => Err(self.wrong_type(key, "a mapping", other)),
        }
    }

    /// The resolved configuration as block YAML, in file order, as the reference logs it at
    /// startup. It parses back (YAML 1.2 or 1.1) to the same values.
    pub fn to_yaml(&self) -> String {
        self.root.to_yaml()
    }

    fn require(&self, key: &str) -> Result<&Value, ConfigError> {
        self.root.at(key).ok_or_else(|| {
            let candidates: Vec<String> = self
                .root
                .paths()
                .iter()
                .map(|p| join(&self.prefix, p))
                .collect();
            let full = join(&self.prefix, key);
            ConfigError::MissingKey {
                suggestion: suggest::closest(&full, &candidates),
                key: full,
            }
        })
    }

    fn wrong_type(&self, key: &str, expected: &str, found: &Value) -> ConfigError {
        ConfigError::WrongType {
            key: join(&self.prefix, key),
            expected: expected.to_string(),
            found: found.type_name().to_string(),
            value: found.to_string(),
        }
    }
}

/// The resolved configuration as YAML (same as [`Config::to_yaml`]).
impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_yaml())
    }
}

/// An entry of the defaults list.
#[derive(Debug, Clone)]
enum Entry {
    Group(String, String),
    SelfConfig,
}

/// The defaults list (with `_self_`, last when not listed) and the rest of `defaults.yaml`.
fn primary_config() -> Result<(Vec<Entry>, Value), ConfigError> {
    let embedded = |reason: String| ConfigError::Embedded {
        file: "defaults.yaml".into(),
        reason,
    };
    let Value::Map(entries) = Value::parse_document(registry::DEFAULTS).map_err(embedded)? else {
        return Err(embedded("not a mapping".into()));
    };
    let mut list = Vec::new();
    let mut rest = Vec::new();
    for (k, v) in entries {
        if k != "defaults" {
            rest.push((k, v));
            continue;
        }
        let Value::List(items) = v else {
            return Err(embedded("`defaults` is not a list".into()));
        };
        for item in items {
            match item {
                Value::Str(s) if s == "_self_" => list.push(Entry::SelfConfig),
                Value::Map(m) if m.len() == 1 => {
                    let (group, option) = &m[0];
                    let Value::Str(option) = option else {
                        return Err(embedded(format!("defaults entry `{group}` is not a name")));
                    };
                    if registry::file(group, option).is_none() {
                        return Err(embedded(format!("no config file {group}/{option}.yaml")));
                    }
                    list.push(Entry::Group(group.clone(), option.clone()));
                }
                other => return Err(embedded(format!("bad defaults entry `{other}`"))),
            }
        }
    }
    if !list.iter().any(|e| matches!(e, Entry::SelfConfig)) {
        list.push(Entry::SelfConfig);
    }
    for (group, _) in registry::GROUPS {
        if !list
            .iter()
            .any(|e| matches!(e, Entry::Group(g, _) if g == group))
        {
            return Err(embedded(format!("group `{group}` has no default option")));
        }
    }
    Ok((list, Value::Map(rest)))
}

/// The parsed content of `configs/<group>/<option>.yaml`.
fn group_file(group: &str, option: &str) -> Result<Value, ConfigError> {
    let file = format!("{group}/{option}.yaml");
    let text = registry::file(group, option).ok_or_else(|| ConfigError::Embedded {
        file: file.clone(),
        reason: "not registered".into(),
    })?;
    match Value::parse_document(text) {
        Ok(v @ Value::Map(_)) => Ok(v),
        Ok(_) => Err(ConfigError::Embedded {
            file,
            reason: "not a mapping".into(),
        }),
        Err(reason) => Err(ConfigError::Embedded { file, reason }),
    }
}

/// Mutable access to the node at a dotted path.
fn at_mut<'a>(tree: &'a mut Value, path: &str) -> Option<&'a mut Value> {
    let mut node = tree;
    for seg in path.split('.') {
        node = node.child_mut(seg)?;
    }
    Some(node)
}

/// Adds a new key, creating the mappings on its way.
fn add(tree: &mut Value, o: &overrides::Override, value: Value) -> Result<(), ConfigError> {
    let segs: Vec<&str> = o.key.split('.').collect();
    let (last, parents) = segs.split_last().expect("keys are never empty");
    let mut node = tree;
    let mut path = String::new();
    for seg in parents {
        path = join(&path, seg);
        if node.child(seg).is_none() {
            node.set(seg, Value::Map(Vec::new()));
        }
        node = node.child_mut(seg).expect("just checked or created");
        if !matches!(node, Value::Map(_)) {
            return Err(ConfigError::BadOverride {
                arg: o.arg.clone(),
                reason: format!(
                    "cannot add a key under `{path}`, which is {}",
                    node.type_name()
                ),
            });
        }
    }
    node.set(last, value);
    Ok(())
}

/// The error for setting a key that does not exist: the closest key, and the options of the
/// key's group that do have it (`loss.margin` with `loss=ce`).
fn unknown_key(key: &str, tree: &Value, choices: &[(String, String)]) -> ConfigError {
    let mut hint = None;
    let group_and_rest = key
        .split_once('.')
        .and_then(|(group, rest)| registry::options(group).map(|opts| (group, rest, opts)));
    if let Some((group, rest, options)) = group_and_rest {
        let chosen = choices
            .iter()
            .find(|(g, _)| g == group)
            .map(|(_, o)| o.as_str())
            .unwrap_or_default();
        let having: Vec<String> = options
            .iter()
            .filter(|o| {
                group_file(group, o)
                    .map(|v| v.at(rest).is_some())
                    .unwrap_or(false)
            })
            .map(|o| format!("{group}={o}"))
            .collect();
        if !having.is_empty() {
            hint = Some(format!(
                "the selected {group}={chosen} has no such key, it exists with {}",
                having.join(", ")
            ));
        }
    }
    ConfigError::UnknownKey {
        key: key.to_string(),
        suggestion: if hint.is_some() {
            None
        } else {
            suggest::closest(key, &tree.paths())
        },
        hint,
    }
}
