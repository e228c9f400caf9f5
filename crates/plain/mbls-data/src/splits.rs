//! The reference's train/validation/test splits (CIFAR 45k/5k, Tiny-ImageNet 50 per class, 20
//! Newsgroups), and the same NumPy holdout by count for MNIST / Fashion-MNIST (55k/5k, not in
//! the reference).
//!
//! Each function reproduces the index lists of the reference bit-exactly, using
//! [`NumpyRandomState`] for `np.random.seed(seed); np.random.shuffle(...)` (spec section 5).
//! Python slicing quirks that would silently produce empty or overlapping sets (e.g. `x[:-0]`) are
//! reported as [`DataError::Invalid`] instead.

use crate::DataError;
use crate::rng::NumpyRandomState;

/// Train / validation split of a CIFAR-style training set (`calibrate/data/cifar10.py`).
///
/// `indices = 0..n_train`; `split = floor(valid_fraction * n_train)`; when `seed` is `Some`
/// (the reference's `shuffle=True`) `np.random.seed(seed); np.random.shuffle(indices)`; then
/// validation = `indices[:split]`, train = `indices[split:]`. With `seed == None` nothing is
/// shuffled. The reference's CIFAR-10 setting (`n_train = 50000`, `valid_fraction = 0.1`) gives
/// 45,000 train and 5,000 validation indices. Returns `(train, valid)`.
///
/// # Errors
/// [`DataError::Invalid`] when `valid_fraction` is not within `[0, 1]` (the reference asserts that).
pub fn cifar_split(
    n_train: usize,
    valid_fraction: f64,
    seed: Option<u32>,
) -> Result<(Vec<usize>, Vec<usize>), DataError> {
    check_fraction("valid_fraction", valid_fraction)?;
    // f64 -> usize truncates; the product is non-negative, so this is floor().
    let split = ((valid_fraction * n_train as f64).floor() as usize).min(n_train);
    holdout_split(n_train, split, seed)
}

/// [`cifar_split`] with the validation size given as a count: `indices = 0..n_train`, shuffled
/// by `np.random.seed(seed); np.random.shuffle(indices)` when `seed` is `Some`; validation =
/// `indices[:n_valid]`, train = `indices[n_valid:]`. MNIST and Fashion-MNIST (not in the
/// reference) use it with `n_valid = n_train / 12`: 55,000 / 5,000 of the 60,000 training
/// images. Returns `(train, valid)`.
///
/// # Errors
/// [`DataError::Invalid`] when `n_valid > n_train`.
pub fn holdout_split(
    n_train: usize,
    n_valid: usize,
    seed: Option<u32>,
) -> Result<(Vec<usize>, Vec<usize>), DataError> {
    if n_valid > n_train {
        return Err(DataError::Invalid(format!(
            "{n_valid} validation samples exceed the {n_train} training samples"
        )));
    }
    let mut indices: Vec<usize> = (0..n_train).collect();
    if let Some(seed) = seed {
        NumpyRandomState::new(seed).shuffle(&mut indices);
    }
    let train = indices.split_off(n_valid);
    Ok((train, indices))
}

/// Checks that a split fraction (`valid_fraction`, `test_fraction`) is within `[0, 1]`.
///
/// # Errors
/// [`DataError::Invalid`] naming `what` otherwise (also for NaN).
pub fn check_fraction(what: &str, fraction: f64) -> Result<(), DataError> {
    if (0.0..=1.0).contains(&fraction) {
        Ok(())
    } else {
        Err(DataError::Invalid(format!(
            "{what} {fraction} is not within [0, 1]"
        )))
    }
}

/// Per-class train / validation split of Tiny-ImageNet's official training set.
///
/// `np.random.seed(seed)` once; dataset indices are grouped by label in order of first appearance
/// (within a group in dataset order); for each group in turn `np.random.shuffle(group)` on the same
/// stream, train gets `group[:-per_class_val]` and validation `group[-per_class_val:]`. Train and
/// validation lists are the concatenations over the groups. The reference (500 images per class,
/// `val_samples_per_class: 50`) gives 90,000 / 10,000. Returns `(train, valid)`.
///
/// # Errors
/// [`DataError::Invalid`] when `per_class_val` is 0 (Python's `x[:-0]` would put every image into
/// validation) or a class has fewer than `per_class_val` samples (Python would silently put the
/// whole class into validation).
pub fn per_class_split(
    labels: &[usize],
    per_class_val: usize,
    seed: u32,
) -> Result<(Vec<usize>, Vec<usize>), DataError> {
    if per_class_val == 0 {
        return Err(DataError::Invalid(
            "per_class_val must be at least 1 (the reference slices indices[:-per_class_val])"
                .to_string(),
        ));
    }
    let mut order: Vec<usize> = Vec::new();
    let mut groups: std::collections::HashMap<usize, Vec<usize>> = Default::default();
    for (i, &label) in labels.iter().enumerate() {
        groups
            .entry(label)
            .or_insert_with(|| {
                order.push(label);
                Vec::new()
            })
            .push(i);
    }
    if let Some((label, group)) = groups.iter().find(|(_, g)| g.len() < per_class_val) {
        return Err(DataError::Invalid(format!(
            "class {label} has {} samples, fewer than the {per_class_val} validation samples per class",
            group.len()
        )));
    }
    let mut rs = NumpyRandomState::new(seed);
    let mut train = Vec::with_capacity(labels.len());
    let mut valid = Vec::with_capacity(order.len() * per_class_val);
    for label in order {
        let Some(mut group) = groups.remove(&label) else {
            continue;
        };
        rs.shuffle(&mut group);
        let cut = group.len() - per_class_val;
        valid.extend_from_slice(&group[cut..]);
        train.extend_from_slice(&group[..cut]);
    }
    Ok((train, valid))
}

/// Train, validation and test index lists, in this order.
pub type TrainValidTest = (Vec<usize>, Vec<usize>, Vec<usize>);

/// Train / validation / test split of 20 Newsgroups (`ng_loader`, spec 5.5 step 5).
///
/// `indices = 0..n`; `np.random.seed(seed); np.random.shuffle(indices)`;
/// `num_test = int(test_fraction * n)`; train = `indices[:-(num_test + n_val)]`,
/// validation = the next `n_val`, test = the last `num_test`. The reference uses
/// `test_fraction = 0.2`, `n_val = 900`; with 19,997 documents that is 15,098 / 900 / 3,999.
/// Returns `(train, valid, test)`.
///
/// # Errors
/// [`DataError::Invalid`] when `test_fraction` is not within `[0, 1]`, when `num_test` is 0
/// (Python's `x[-0:]` would make every document a test document), or when `num_test + n_val`
/// exceeds `n`.
pub fn newsgroups_split(
    n: usize,
    test_fraction: f64,
    n_val: usize,
    seed: u32,
) -> Result<TrainValidTest, DataError> {
    check_fraction("test_fraction", test_fraction)?;
    // Python's int() truncates toward zero; the product is non-negative.
    let num_test = (test_fraction * n as f64) as usize;
    if num_test == 0 {
        return Err(DataError::Invalid(format!(
            "test_fraction {test_fraction} of {n} documents gives no test document"
        )));
    }
    let held_out = num_test
        .checked_add(n_val)
        .filter(|&h| h <= n)
        .ok_or_else(|| {
            DataError::Invalid(format!(
                "{num_test} test + {n_val} validation documents exceed the {n} documents"
            ))
        })?;
    let mut indices: Vec<usize> = (0..n).collect();
    NumpyRandomState::new(seed).shuffle(&mut indices);
    let test = indices.split_off(n - num_test);
    let valid = indices.split_off(n - held_out);
    Ok((indices, valid, test))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cifar_sizes_and_partition() {
        let (train, valid) = cifar_split(50_000, 0.1, Some(1)).unwrap();
        assert_eq!((train.len(), valid.len()), (45_000, 5_000));
        let mut all: Vec<usize> = train.iter().chain(&valid).copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..50_000).collect::<Vec<_>>());
    }

    #[test]
    fn holdout_is_cifar_split_by_count() {
        let (train, valid) = holdout_split(60_000, 5_000, Some(3)).unwrap();
        assert_eq!((train.len(), valid.len()), (55_000, 5_000));
        let (t2, v2) = cifar_split(60_000, 5_000.0 / 60_000.0, Some(3)).unwrap();
        assert_eq!((train, valid), (t2, v2));
        assert_eq!(
            holdout_split(5, 2, None).unwrap(),
            (vec![2usize, 3, 4], vec![0usize, 1])
        );
        assert!(holdout_split(5, 6, None).is_err());
        let (train, valid) = holdout_split(0, 0, Some(1)).unwrap();
        assert!(train.is_empty() && valid.is_empty());
    }

    #[test]
    fn cifar_unshuffled() {
        let (train, valid) = cifar_split(10, 0.25, None).unwrap();
        assert!(cifar_split(10, 1.5, None).is_err());
        assert_eq!(valid, vec![0, 1]);
        assert_eq!(train, (2..10).collect::<Vec<_>>());
        assert!(check_fraction("valid_fraction", 1.5).is_err());
        assert!(check_fraction("valid_fraction", f64::NAN).is_err());
        assert!(check_fraction("valid_fraction", 1.0).is_ok());
    }

    #[test]
    fn per_class_groups_in_first_appearance_order() {
        let labels = [2, 2, 0, 0, 2, 0];
        let (train, valid) = per_class_split(&labels, 1, 3).unwrap();
        assert_eq!(train.len(), 4);
        assert_eq!(valid.len(), 2);
        // first group is label 2 (indices 0, 1, 4)
        assert!([0, 1, 4].contains(&valid[0]));
        assert!([2, 3, 5].contains(&valid[1]));
    }

    #[test]
    fn per_class_impossible_sizes() {
        let labels = [0, 0, 1, 1, 1];
        assert!(per_class_split(&labels, 0, 3).is_err());
        assert!(per_class_split(&labels, 3, 3).is_err());
        let (train, valid) = per_class_split(&labels, 2, 3).unwrap();
        assert_eq!((train.len(), valid.len()), (1, 4));
    }

    #[test]
    fn newsgroups_sizes() {
        let (train, valid, test) = newsgroups_split(19_997, 0.2, 900, 1).unwrap();
        assert_eq!((train.len(), valid.len(), test.len()), (15_098, 900, 3_999));
        assert!(newsgroups_split(100, 0.2, 81, 1).is_err());
        assert!(newsgroups_split(100, 0.001, 10, 1).is_err());
        assert!(newsgroups_split(100, -0.1, 10, 1).is_err());
    }
}
