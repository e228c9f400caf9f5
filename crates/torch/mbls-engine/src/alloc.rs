//! jemalloc as the allocator of the whole process (feature `jemalloc`, on in the `mbls` binary).
//!
//! libtorch allocates every CPU tensor with `malloc`/`posix_memalign`. With glibc, blocks above
//! its mmap threshold (32 MiB at most; a ResNet-18 activation at batch 128 is 33.5 MB) get a
//! fresh `mmap` and are unmapped on free, so every step page-faults its activations in again.
//! Linking jemalloc unprefixed replaces `malloc` for libtorch too (the executable exports the
//! symbols), and the options below keep freed pages for reuse instead of returning them to the
//! system (`dirty_decay_ms:-1,muzzy_decay_ms:-1`): the process stays at its peak size, as
//! PyTorch's caching allocators do, with less fragmentation than glibc's heap.
//! `bench/compare_models.sh` measured resnet18_cifar/resnet50_cifar steps faster than PyTorch
//! with about half of its peak memory. The `MALLOC_CONF` environment variable still overrides
//! these options at run time.

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's compile-time options string (a strong definition of its weak `malloc_conf`).
#[allow(non_upper_case_globals)]
#[unsafe(no_mangle)]
pub static malloc_conf: Option<&'static u8> = Some(&b"dirty_decay_ms:-1,muzzy_decay_ms:-1\0"[0]);
