//! The `data.*` configuration keys → [`DataSpec`] (shared by `mbls data` and the trainers).
//!
//! Keys read (missing optional keys take the reference's value for the dataset, see
//! [`DataSpec::reference`]): `data.name` (required; `ng` is 20 Newsgroups), `data.data_root`
//! (required), `data.batch_size` (required), `data.num_workers`, `data.random_seed` (else the
//! top-level `seed`), `data.shuffle`, `data.augment`, `data.val_split`,
//! `data.val_samples_per_class`, `data.scale_size`, `data.crop_size`, `data.test_split`,
//! `data.cache`. The loaders' order/augmentation seed is the run's top-level `seed`.

use anyhow::{Context, Result, bail};
use mbls_config::{Config, Value};
use mbls_data::pipeline::{DataSpec, DatasetName};

/// A seed from `key`: an integer in `0..2^32` (NumPy's `np.random.seed` range), or, for `null`
/// (the reference's "random seed"), one drawn from the clock and the process id.
fn seed_at(cfg: &Config, key: &str) -> Result<u32> {
    if matches!(cfg.get(key), Some(Value::Null)) {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() ^ d.as_secs() as u32)
            .unwrap_or(0);
        return Ok(nanos ^ std::process::id().rotate_left(16));
    }
    let s = cfg.get_i64(key)?;
    u32::try_from(s).with_context(|| {
        format!("{key}={s}: a seed must be between 0 and 4294967295 (NumPy's range)")
    })
}

fn opt_usize(cfg: &Config, key: &str, default: usize) -> Result<usize> {
    Ok(if cfg.contains(key) {
        cfg.get_usize(key)?
    } else {
        default
    })
}

fn opt_bool(cfg: &Config, key: &str, default: bool) -> Result<bool> {
    Ok(if cfg.contains(key) {
        cfg.get_bool(key)?
    } else {
        default
    })
}

fn opt_f64(cfg: &Config, key: &str, default: f64) -> Result<f64> {
    Ok(if cfg.contains(key) {
        cfg.get_f64(key)?
    } else {
        default
    })
}

/// The [`DataSpec`] of the composed configuration's `data` group.
///
/// # Errors
/// A missing or mistyped key, an unknown `data.name`, a seed outside `0..2^32`, a zero batch
/// size.
pub fn data_spec(cfg: &Config) -> Result<DataSpec> {
    let name = DatasetName::parse(cfg.get_str("data.name")?)?;
    let root = cfg.get_str("data.data_root")?;
    if root.is_empty() {
        bail!("data.data_root is empty: give the dataset folder, e.g. data.data_root=DIR");
    }
    let base = DataSpec::reference(name, root);
    let batch_size = cfg.get_usize("data.batch_size")?;
    if batch_size == 0 {
        bail!("data.batch_size must be positive");
    }
    let seed = if cfg.contains("data.random_seed") {
        seed_at(cfg, "data.random_seed")?
    } else {
        seed_at(cfg, "seed")?
    };
    let loader_seed = if cfg.contains("seed") {
        u64::from(seed_at(cfg, "seed")?)
    } else {
        u64::from(seed)
    };
    Ok(DataSpec {
        batch_size,
        num_workers: opt_usize(cfg, "data.num_workers", base.num_workers)?,
        seed,
        loader_seed,
        shuffle: opt_bool(cfg, "data.shuffle", base.shuffle)?,
        augment: opt_bool(cfg, "data.augment", base.augment)?,
        val_split: opt_f64(cfg, "data.val_split", base.val_split)?,
        val_samples_per_class: opt_usize(
            cfg,
            "data.val_samples_per_class",
            base.val_samples_per_class,
        )?,
        scale_size: opt_usize(cfg, "data.scale_size", base.scale_size)?,
        crop_size: opt_usize(cfg, "data.crop_size", base.crop_size)?,
        test_split: opt_f64(cfg, "data.test_split", base.test_split)?,
        cache: opt_bool(cfg, "data.cache", base.cache)?,
        ..base
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_configs_map_onto_specs() {
        let cfg = Config::compose(&["data.data_root=/d", "seed=5"]).unwrap();
        let s = data_spec(&cfg).unwrap();
        assert_eq!(s.name, DatasetName::Cifar10);
        assert_eq!(
            (s.batch_size, s.num_workers, s.seed, s.loader_seed),
            (128, 4, 5, 5)
        );
        assert!(s.shuffle && s.augment && !s.cache);
        assert_eq!(s.root, std::path::Path::new("/d"));

        let cfg = Config::compose(&["data=cub"]).unwrap();
        let s = data_spec(&cfg).unwrap();
        assert_eq!(
            (s.name, s.scale_size, s.crop_size),
            (DatasetName::Cub, 256, 224)
        );
        assert_eq!((s.batch_size, s.num_workers), (32, 8));

        let cfg = Config::compose(&["data=tiny_imagenet", "data.val_samples_per_class=3"]).unwrap();
        let s = data_spec(&cfg).unwrap();
        assert_eq!((s.val_samples_per_class, s.crop_size), (3, 64));

        let cfg = Config::compose(&["data=newgroups"]).unwrap();
        assert_eq!(data_spec(&cfg).unwrap().name, DatasetName::Newsgroups);

        let cfg = Config::compose(&["data=folder", "data.cache=true"]).unwrap();
        let s = data_spec(&cfg).unwrap();
        assert!(s.cache);
        assert_eq!(s.name, DatasetName::Folder);
    }

    #[test]
    fn bad_values_are_errors() {
        let cfg = Config::compose(&["seed=-1"]).unwrap();
        let e = data_spec(&cfg).unwrap_err().to_string();
        assert!(e.contains("seed"), "{e}");
        let cfg = Config::compose(&["data.name=mnist"]).unwrap();
        let e = data_spec(&cfg).unwrap_err().to_string();
        assert!(e.contains("unknown dataset"), "{e}");
        let cfg = Config::compose(&["data.batch_size=0"]).unwrap();
        assert!(data_spec(&cfg).is_err());
    }
}
