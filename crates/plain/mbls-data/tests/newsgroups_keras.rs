//! The whole `ng_loader` pipeline on the committed mini 20 Newsgroups tree, compared with the
//! results of keras_preprocessing 1.1.2 (Keras 2's Tokenizer / pad_sequences) and NumPy written by
//! tests/fixtures/newsgroups/make_fixtures.py. Everything must match exactly: word index,
//! padded sequences, labels, class names, split and embedding matrix.

use mbls_data::*;
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/newsgroups")
}

fn read(name: &str) -> String {
    std::fs::read_to_string(dir().join(name)).unwrap()
}

fn ints(line: &str) -> Vec<i64> {
    line.split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect()
}

/// Undoes Python's `unicode_escape` for the characters the fixture can hold (`\xNN`, `\\`).
fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut it = s.chars();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('x') => {
                let hex: String = it.by_ref().take(2).collect();
                out.push(char::from(u8::from_str_radix(&hex, 16).unwrap()));
            }
            Some('\\') => out.push('\\'),
            other => panic!("unexpected escape {other:?}"),
        }
    }
    out
}

fn options() -> NewsgroupsOptions {
    NewsgroupsOptions {
        max_sequence_length: 15,
        max_num_words: 12,
        embedding_dim: 4,
        test_split: 0.2,
        n_val: 2,
        seed: 1,
        glove_path: None,
    }
}

#[test]
fn tokenizer_matches_keras_word_index_and_sequences() {
    let texts = read_newsgroups(&dir().join("data/20_newsgroups")).unwrap();
    let mut tok = Tokenizer::new(Some(12));
    tok.fit_on_texts(&texts.texts);
    let expected: Vec<(usize, String)> = read("expected_word_index.txt")
        .lines()
        .map(|l| {
            let (i, w) = l.split_once(' ').unwrap();
            (i.parse().unwrap(), unescape(w))
        })
        .collect();
    assert_eq!(tok.words().len(), expected.len());
    for (i, w) in &expected {
        assert_eq!(&tok.words()[i - 1], w, "index {i}");
        assert_eq!(tok.word_index()[w], *i);
    }
    let padded = pad_sequences(&tok.texts_to_sequences(&texts.texts), 15);
    let want: Vec<i64> = read("expected_sequences.txt")
        .lines()
        .flat_map(ints)
        .collect();
    assert_eq!(padded, want);
    let labels = read("expected_labels.txt");
    let mut lines = labels.lines();
    let want_labels: Vec<usize> = ints(lines.next().unwrap())
        .iter()
        .map(|&x| x as usize)
        .collect();
    assert_eq!(texts.labels, want_labels);
    let names: Vec<&str> = lines.next().unwrap().split(' ').collect();
    assert_eq!(texts.class_names, names);
}

#[test]
fn load_newsgroups_matches_reference_pipeline() {
    let data = load_newsgroups(dir().join("data"), &options()).unwrap();
    let seqs: Vec<Vec<i64>> = read("expected_sequences.txt").lines().map(ints).collect();
    let labels = ints(read("expected_labels.txt").lines().next().unwrap());
    let split: Vec<Vec<i64>> = read("expected_split.txt").lines().map(ints).collect();
    let check = |x: &[i64], y: &[i64], idx: &[i64], what: &str| {
        assert_eq!(y.len(), idx.len(), "{what} size");
        for (k, &i) in idx.iter().enumerate() {
            assert_eq!(
                &x[k * 15..(k + 1) * 15],
                &seqs[i as usize][..],
                "{what} row {k}"
            );
            assert_eq!(y[k], labels[i as usize], "{what} label {k}");
        }
    };
    check(&data.x_train, &data.y_train, &split[0], "train");
    check(&data.x_val, &data.y_val, &split[1], "val");
    check(&data.x_test, &data.y_test, &split[2], "test");
    assert_eq!(
        (data.num_words, data.embedding_dim, data.sequence_length),
        (12, 4, 15)
    );
    assert_eq!(data.embedding_shape, (12, 4));
    let want: Vec<f32> = read("expected_embedding.txt")
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    assert_eq!(data.embedding, want);
    assert_eq!(
        data.class_names,
        ["alt.atheism", "comp.graphics", "sci.space"]
    );
}
