//! Bit-exactness of `NumpyRandomState` and the splits against NumPy output
//! (`tests/fixtures/numpy/rng.txt`, written by `tests/fixtures/numpy/make_fixtures.py`).

use mbls_data::NumpyRandomState;
use mbls_data::{cifar_split, newsgroups_split, per_class_split};
use std::collections::HashMap;
use std::path::Path;

fn fixtures() -> HashMap<String, Vec<u128>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/numpy/rng.txt");
    let text = std::fs::read_to_string(&path).expect("rng.txt");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|line| {
            let mut parts = line.split_whitespace();
            let name = parts.next().unwrap().to_string();
            let values = parts.map(|v| v.parse::<u128>().unwrap()).collect();
            (name, values)
        })
        .collect()
}

fn get<'a>(f: &'a HashMap<String, Vec<u128>>, name: &str) -> &'a [u128] {
    f.get(name)
        .unwrap_or_else(|| panic!("fixture {name} missing"))
}

fn as_u128(v: &[usize]) -> Vec<u128> {
    v.iter().map(|&x| x as u128).collect()
}

fn checksum(v: &[usize]) -> u128 {
    v.iter()
        .enumerate()
        .map(|(i, &x)| i as u128 * x as u128)
        .sum()
}

#[test]
fn raw_outputs() {
    let f = fixtures();
    for seed in [0u32, 1, 42, u32::MAX] {
        let mut rs = NumpyRandomState::new(seed);
        let first: Vec<u128> = (0..20).map(|_| rs.next_u32() as u128).collect();
        assert_eq!(first, get(&f, &format!("raw_seed{seed}")), "seed {seed}");
        // continue to output 700..724 (crosses the regeneration at 624)
        for _ in 20..700 {
            rs.next_u32();
        }
        let later: Vec<u128> = (0..24).map(|_| rs.next_u32() as u128).collect();
        assert_eq!(
            later,
            get(&f, &format!("raw_seed{seed}_from700")),
            "seed {seed}"
        );
    }
}

#[test]
fn shuffles() {
    let f = fixtures();
    for seed in [1u32, 2, 42] {
        for n in [1usize, 2, 10, 1000] {
            let mut x: Vec<usize> = (0..n).collect();
            NumpyRandomState::new(seed).shuffle(&mut x);
            assert_eq!(
                as_u128(&x),
                get(&f, &format!("shuffle_n{n}_seed{seed}")),
                "n {n} seed {seed}"
            );
        }
        let mut x: Vec<usize> = (0..50_000).collect();
        NumpyRandomState::new(seed).shuffle(&mut x);
        assert_eq!(
            as_u128(&x[..50]),
            get(&f, &format!("shuffle_n50000_seed{seed}_head"))
        );
        assert_eq!(
            as_u128(&x[50_000 - 50..]),
            get(&f, &format!("shuffle_n50000_seed{seed}_tail"))
        );
        assert_eq!(
            [checksum(&x)],
            get(&f, &format!("shuffle_n50000_seed{seed}_checksum"))
        );
    }
}

#[test]
fn shuffle_of_any_type_matches_index_shuffle() {
    let mut idx: Vec<usize> = (0..37).collect();
    NumpyRandomState::new(11).shuffle(&mut idx);
    let mut names: Vec<String> = (0..37).map(|i| format!("s{i}")).collect();
    NumpyRandomState::new(11).shuffle(&mut names);
    let expected: Vec<String> = idx.iter().map(|i| format!("s{i}")).collect();
    assert_eq!(names, expected);
}

#[test]
fn permutations_on_one_stream() {
    let f = fixtures();
    let mut rs = NumpyRandomState::new(7);
    assert_eq!(as_u128(&rs.permutation(10)), get(&f, "perm_seed7_a"));
    assert_eq!(as_u128(&rs.permutation(100)), get(&f, "perm_seed7_b"));
}

#[test]
fn bounded_integers() {
    let f = fixtures();
    let mut rs = NumpyRandomState::new(5);
    for (name, max) in [
        ("interval_seed5_max6", 6u64),
        ("interval_seed5_max1e6", 1_000_000),
        ("interval_seed5_max2p40p5", (1 << 40) + 5),
    ] {
        let got: Vec<u128> = (0..30).map(|_| rs.random_interval(max) as u128).collect();
        assert_eq!(got, get(&f, name), "{name}");
    }
}

#[test]
fn random_sample_bits() {
    let f = fixtures();
    let mut rs = NumpyRandomState::new(3);
    let got: Vec<u128> = (0..10)
        .map(|_| rs.random_sample().to_bits() as u128)
        .collect();
    assert_eq!(got, get(&f, "sample_seed3_bits"));
}

#[test]
fn cifar_reference_split() {
    let f = fixtures();
    for seed in [1u32, 42] {
        let (train, valid) = cifar_split(50_000, 0.1, Some(seed)).unwrap();
        assert_eq!(valid.len(), 5_000);
        assert_eq!(train.len(), 45_000);
        assert_eq!(
            as_u128(&valid[..20]),
            get(&f, &format!("cifar_seed{seed}_valid_head"))
        );
        assert_eq!(
            as_u128(&train[..20]),
            get(&f, &format!("cifar_seed{seed}_train_head"))
        );
        assert_eq!(
            [checksum(&valid)],
            get(&f, &format!("cifar_seed{seed}_valid_checksum"))
        );
        assert_eq!(
            [checksum(&train)],
            get(&f, &format!("cifar_seed{seed}_train_checksum"))
        );
    }
}

#[test]
fn tiny_imagenet_reference_split() {
    let f = fixtures();
    let labels: Vec<usize> = (0..3).flat_map(|c| std::iter::repeat_n(c, 500)).collect();
    let (train, valid) = per_class_split(&labels, 50, 1).unwrap();
    assert_eq!(train.len(), 1_350);
    assert_eq!(as_u128(&valid), get(&f, "tiny_seed1_val"));
    assert_eq!(as_u128(&train[..20]), get(&f, "tiny_seed1_train_head"));
    assert_eq!([checksum(&train)], get(&f, "tiny_seed1_train_checksum"));
}

#[test]
fn newsgroups_reference_split() {
    let f = fixtures();
    let (train, valid, test) = newsgroups_split(19_997, 0.2, 900, 1).unwrap();
    assert_eq!(
        [train.len() as u128, valid.len() as u128, test.len() as u128],
        get(&f, "ng_seed1_sizes")
    );
    for (name, part) in [("train", &train), ("val", &valid), ("test", &test)] {
        assert_eq!(
            as_u128(&part[..20]),
            get(&f, &format!("ng_seed1_{name}_head"))
        );
        assert_eq!(
            [checksum(part)],
            get(&f, &format!("ng_seed1_{name}_checksum"))
        );
    }
}
