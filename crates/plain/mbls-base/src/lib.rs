//! The low-level pieces the mbls crates share, in plain Rust: crash-safe writes of files and
//! folders ([`fs`]), downloads with checksums and resume, and `.tar.gz` unpacking
//! ([`download`]), and a vectorisable float32 `exp` with the slice reductions the metrics and
//! the fused loss kernels use ([`fastmath`]). Nothing here knows about datasets, metrics or
//! models: the crates that do depend on this one, never on each other's internals.

#![warn(missing_docs)]

pub mod download;
pub mod fastmath;
pub mod fs;
