//! The size limits of configuration input, shared by every command that composes a
//! configuration (`mbls train`, `mbls test`, `mbls loss`, `mbls model`, ...).
//!
//! A few bytes of overrides must not make the composition use unbounded memory, time or
//! stack: each limit below is checked where the input is read, before the work it bounds,
//! and going past one is a [`ConfigError`](crate::ConfigError) that names the override or
//! key. The limits are far above what a configuration needs (the built-in tree is a few
//! kilobytes, its keys at most 3 levels deep, its interpolations 1 reference deep).

/// The most `${...}` references in one chain (`a: ${b}`, `b: ${c}`, ...: `a` is 2 deep).
/// Past it: [`ConfigError::InterpolationTooDeep`](crate::ConfigError::InterpolationTooDeep).
pub const MAX_INTERPOLATION_DEPTH: usize = 64;

/// The most values (mappings, lists, and keys reached through references) being resolved
/// inside one another at a time, which bounds the stack of the resolution. Past it:
/// [`ConfigError::InterpolationTooDeep`](crate::ConfigError::InterpolationTooDeep).
pub const MAX_RESOLVE_NESTING: usize = 256;

/// The most dot-separated parts of an override's key (`train.max_epoch` has 2), or of a key
/// named by an interpolation. Past it: [`ConfigError::BadOverride`](crate::ConfigError::BadOverride)
/// (or [`ConfigError::InterpolationInvalid`](crate::ConfigError::InterpolationInvalid)).
pub const MAX_KEY_SEGMENTS: usize = 32;

/// The longest key of an override, or named by an interpolation, in bytes. Past it: as for
/// [`MAX_KEY_SEGMENTS`].
pub const MAX_KEY_LEN: usize = 1000;

/// The deepest nesting of mappings and lists in a YAML text (an override value, a config
/// file). Past it: [`ConfigError::BadValue`](crate::ConfigError::BadValue) for an override, a
/// parse error for a file.
pub const MAX_YAML_DEPTH: usize = 64;

/// The most nodes that YAML aliases (`*name`) may add to one YAML document when they are
/// expanded (config files only: an override value may not hold an alias at all). Past it:
/// a parse error.
pub const MAX_ALIAS_NODES: u64 = 100_000;

/// The most bytes of scalar text that YAML aliases may add to one YAML document when they
/// are expanded (as [`MAX_ALIAS_NODES`]).
pub const MAX_ALIAS_BYTES: u64 = 1 << 20;

/// The longest string that interpolation may build (`${a}${a}`), in bytes (1 MiB). Past it:
/// [`ConfigError::ResolvedTooLarge`](crate::ConfigError::ResolvedTooLarge).
pub const MAX_STRING_LEN: usize = 1 << 20;

/// The largest resolved configuration (16 MiB), counted as the bytes of its strings and keys
/// plus [`NODE_SIZE`] bytes a value; interpolations that take a mapping or a list whole copy
/// it, and copies of copies would grow without bound. Past it:
/// [`ConfigError::ResolvedTooLarge`](crate::ConfigError::ResolvedTooLarge).
pub const MAX_RESOLVED_SIZE: u64 = 16 << 20;

/// The bytes that [`MAX_RESOLVED_SIZE`] counts for each value besides its text (about the
/// memory a value takes).
pub const NODE_SIZE: u64 = 32;
