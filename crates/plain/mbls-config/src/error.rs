//! The error type of configuration composition and access.

use thiserror::Error;

/// Everything that can go wrong while composing a configuration or reading a value from it.
///
/// Each message names the offending override, key or value and, where there is a fixed set of
/// valid answers, lists them.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum ConfigError {
    /// An override that is not of the form `group=option`, `key=value` or `+key=value`, or
    /// whose key is past [`MAX_KEY_LEN`](crate::limits::MAX_KEY_LEN) or
    /// [`MAX_KEY_SEGMENTS`](crate::limits::MAX_KEY_SEGMENTS).
    #[error("bad override `{arg}`: {reason}")]
    BadOverride {
        /// The override as given (its start and `...` when it is over 200 bytes).
        arg: String,
        /// What is wrong with it.
        reason: String,
    },

    /// `group=option` with an option that the group does not have.
    #[error("unknown option `{option}` for config group `{group}`; valid options: {}", .valid.join(", "))]
    UnknownOption {
        /// The config group, e.g. `loss`.
        group: String,
        /// The option asked for.
        option: String,
        /// The options the group has.
        valid: Vec<String>,
    },

    /// `key=value` for a key that the composed config does not have.
    #[error("key `{key}` is not in the config{}{}; to add a new key use `+{key}=VALUE`",
        .suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default(),
        .hint.as_ref().map(|h| format!("; {h}")).unwrap_or_default())]
    UnknownKey {
        /// The dotted key as given.
        key: String,
        /// The closest existing key, when one is close enough.
        suggestion: Option<String>,
        /// Where the key does exist, e.g. `it exists with loss=logit_margin`.
        hint: Option<String>,
    },

    /// `+key=value` for a key that already exists.
    #[error("cannot add `{key}`: it is already in the config; to override it use `{key}=VALUE`")]
    KeyExists {
        /// The dotted key.
        key: String,
    },

    /// A value that does not parse as a YAML scalar or flow collection, or that is refused:
    /// a float out of range (`1e400`) or not finite (`.inf`, `.nan`), a YAML alias (`*name`),
    /// nesting deeper than [`MAX_YAML_DEPTH`](crate::limits::MAX_YAML_DEPTH).
    #[error("cannot parse the value `{value}` of `{key}`: {reason}")]
    BadValue {
        /// The dotted key.
        key: String,
        /// The value as given (its start and `...` when it is over 200 bytes).
        value: String,
        /// The parser's complaint.
        reason: String,
    },

    /// An override whose value has another type than the key's default.
    #[error("cannot set `{key}` to `{value}`: expected {expected}, got {found}")]
    TypeMismatch {
        /// The dotted key.
        key: String,
        /// The value as given.
        value: String,
        /// The type of the key's default, e.g. `a float`.
        expected: String,
        /// The type of the value given.
        found: String,
    },

    /// An interpolation `${...}` that refers to a key that does not exist.
    #[error("interpolation `${{{reference}}}` in `{key}` refers to a missing key{}",
        .suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    InterpolationMissing {
        /// The key whose value holds the interpolation.
        key: String,
        /// The referenced key, as written inside `${...}`.
        reference: String,
        /// The closest existing key, when one is close enough.
        suggestion: Option<String>,
    },

    /// Interpolations that refer to each other in a cycle.
    #[error("cyclic interpolation: {}", .chain.join(" -> "))]
    InterpolationCycle {
        /// The keys on the cycle, the first repeated at the end.
        chain: Vec<String>,
    },

    /// An interpolation that is malformed or uses a feature this crate does not support
    /// (resolvers such as `${now:...}` or `${oc.env:...}`, nesting), or that names a key past
    /// [`MAX_KEY_LEN`](crate::limits::MAX_KEY_LEN) or
    /// [`MAX_KEY_SEGMENTS`](crate::limits::MAX_KEY_SEGMENTS).
    #[error("bad interpolation in `{key}` (value `{value}`): {reason}")]
    InterpolationInvalid {
        /// The key whose value holds the interpolation.
        key: String,
        /// The whole value (its start and `...` when it is over 200 bytes).
        value: String,
        /// What is wrong.
        reason: String,
    },

    /// Interpolations nested past a limit: a chain of more than
    /// [`MAX_INTERPOLATION_DEPTH`](crate::limits::MAX_INTERPOLATION_DEPTH) `${...}` references
    /// (`a: ${b}`, `b: ${c}`, ...), or a resolution through more than
    /// [`MAX_RESOLVE_NESTING`](crate::limits::MAX_RESOLVE_NESTING) values inside one another.
    #[error("interpolation of `{key}` is too deep: more than {limit} {what}")]
    InterpolationTooDeep {
        /// The key whose resolution went past the limit.
        key: String,
        /// The limit passed.
        limit: usize,
        /// What the limit counts, e.g. `` `${...}` references in a chain ``.
        what: String,
    },

    /// Interpolations that build a string longer than
    /// [`MAX_STRING_LEN`](crate::limits::MAX_STRING_LEN) (`${a}${a}`, doubled again and
    /// again), or a resolved configuration larger than
    /// [`MAX_RESOLVED_SIZE`](crate::limits::MAX_RESOLVED_SIZE) (lists of whole copies of lists).
    #[error("resolving `{key}` makes {what} larger than the limit of {limit} bytes")]
    ResolvedTooLarge {
        /// The key being resolved when the limit was passed.
        key: String,
        /// What went past the limit: `its string` or `the configuration`.
        what: String,
        /// The limit passed, in bytes.
        limit: u64,
    },

    /// An accessor asked for a key that is not in the config.
    #[error("missing config key `{key}`{}",
        .suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    MissingKey {
        /// The dotted key.
        key: String,
        /// The closest existing key, when one is close enough.
        suggestion: Option<String>,
    },

    /// An accessor found a value of another type than it reads.
    #[error("config key `{key}` is {found} (`{value}`), expected {expected}")]
    WrongType {
        /// The dotted key.
        key: String,
        /// What the accessor reads, e.g. `a float`.
        expected: String,
        /// The type found.
        found: String,
        /// The value found, as YAML flow text.
        value: String,
    },

    /// YAML text given to [`Value::parse_yaml`](crate::Value::parse_yaml) that does not parse.
    #[error("cannot parse YAML: {reason}")]
    Parse {
        /// The parser's complaint.
        reason: String,
    },

    /// A file or folder of a user config folder (`--config-dir`) that cannot be used.
    #[error("{path}: {message}")]
    UserFile {
        /// The file or folder.
        path: String,
        /// What is wrong with it.
        message: String,
    },

    /// An embedded YAML file that does not parse or has an unexpected shape (a bug of this
    /// crate, caught by its tests).
    #[error("embedded config file `{file}`: {reason}")]
    Embedded {
        /// The file, relative to the crate's `configs/` folder.
        file: String,
        /// What is wrong.
        reason: String,
    },
}

/// `text` for a message that quotes input: as is up to 200 bytes, else its first 100
/// characters and `...` (an override can be as long as the command line allows).
pub(crate) fn shorten(text: &str) -> String {
    const MAX: usize = 200;
    if text.len() <= MAX {
        return text.to_string();
    }
    let end = text.char_indices().nth(100).map_or(text.len(), |(i, _)| i);
    format!("{}...", &text[..end])
}
