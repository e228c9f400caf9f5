//! Parallel, seeded, prefetching batch loader.
