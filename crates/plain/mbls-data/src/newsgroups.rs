//! 20 Newsgroups: text reading as the reference, a Keras-equivalent tokenizer, padding, and GloVe vectors.
//!
//! [`load_newsgroups`] is the reference's `ng_loader` (spec 5.5):
//!
//! 1. GloVe vectors from `data_dir/glove.6B/glove.6B.{dim}d.txt` ([`read_glove`]): `word v1 .. vd`
//!    per line, whitespace separated; here the dimension is checked on every line.
//! 2. Texts ([`read_newsgroups`]): each sub-folder of `data_dir/20_newsgroups`, in sorted order, is a
//!    class (label = running index); in it, each file whose name is all digits, in sorted (string)
//!    order, read as latin-1 text with Python's universal newlines, header cut at the first blank
//!    line ([`strip_header`]).
//! 3. Keras' `Tokenizer(num_words=2000)` ([`Tokenizer`]), `texts_to_sequences`, then
//!    `pad_sequences(maxlen=1000)` ([`pad_sequences`], pre-padding and pre-truncation with 0).
//! 4. The split of [`crate::splits::newsgroups_split`] (NumPy's shuffle with the seed; train /
//!    900 validation / `int(0.2 n)` test).
//! 5. The embedding matrix ([`embedding_matrix`]): `min(2000, |word_index|) x dim`, row `i` = the
//!    GloVe vector of the word of index `i` when it has one, else zeros (row 0 always zero).
//!
//! Labels are class indices (`argmax` of the reference's one-hot rows).

use crate::error::DataError;
use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

/// Keras' default `Tokenizer` filters: ``!"#$%&()*+,-./:;<=>?@[\]^_`{|}~`` plus tab and newline
/// (not `'`, not `\r`).
pub const KERAS_FILTERS: &str = "!\"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n";

/// Python's `str.isspace` for one character (Unicode White_Space plus the separators
/// U+001C..U+001F).
fn py_isspace(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// Keras' `text_to_word_sequence` with its defaults: lower-case (Python's `str.lower`), every
/// filter character replaced by a space, split on `' '`, empty pieces dropped.
pub fn text_to_word_sequence(text: &str) -> Vec<String> {
    let lowered = text.to_lowercase();
    let mut words = Vec::new();
    let mut current = String::new();
    for c in lowered.chars() {
        if c == ' ' || KERAS_FILTERS.contains(c) {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
        } else {
            current.push(c);
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// Keras' `Tokenizer` (keras-preprocessing 1.1) with default filters, lower-casing, split on space,
/// no OOV token.
///
/// `fit_on_texts` counts words; the word index orders words by descending count, ties in order of
/// first occurrence (Python's stable sort over an insertion-ordered dict), indices from 1.
/// `texts_to_sequences` maps words to indices, dropping unknown words and, when `num_words` is set
/// (and non-zero), indices `>= num_words`.
#[derive(Clone, Debug, Default)]
pub struct Tokenizer {
    num_words: Option<usize>,
    /// (word, count) in first-occurrence order.
    counts: Vec<(String, usize)>,
    position: HashMap<String, usize>,
    /// Words by index - 1.
    words: Vec<String>,
    word_index: HashMap<String, usize>,
    document_count: usize,
}

impl Tokenizer {
    /// A tokenizer keeping indices below `num_words` in sequences (`None` keeps all).
    pub fn new(num_words: Option<usize>) -> Self {
        Tokenizer {
            num_words,
            ..Default::default()
        }
    }

    /// Counts the words of `texts` (adding to earlier fits) and rebuilds the word index.
    pub fn fit_on_texts<S: AsRef<str>>(&mut self, texts: &[S]) {
        for text in texts {
            self.document_count += 1;
            for w in text_to_word_sequence(text.as_ref()) {
                match self.position.get(&w) {
                    Some(&p) => self.counts[p].1 += 1,
                    None => {
                        self.position.insert(w.clone(), self.counts.len());
                        self.counts.push((w, 1));
                    }
                }
            }
        }
        let mut order: Vec<usize> = (0..self.counts.len()).collect();
        // Stable: equal counts keep first-occurrence order.
        order.sort_by(|&a, &b| self.counts[b].1.cmp(&self.counts[a].1));
        self.words = order.iter().map(|&i| self.counts[i].0.clone()).collect();
        self.word_index = self
            .words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i + 1))
            .collect();
    }

    /// The `num_words` limit.
    pub fn num_words(&self) -> Option<usize> {
        self.num_words
    }

    /// Number of texts fitted.
    pub fn document_count(&self) -> usize {
        self.document_count
    }

    /// word → index (from 1), over all fitted words.
    pub fn word_index(&self) -> &HashMap<String, usize> {
        &self.word_index
    }

    /// The words in index order: `words()[i - 1]` has index `i`.
    pub fn words(&self) -> &[String] {
        &self.words
    }

    /// How often `word` occurred in the fitted texts.
    pub fn word_count(&self, word: &str) -> Option<usize> {
        self.position.get(word).map(|&p| self.counts[p].1)
    }

    /// The index sequence of one text (Keras `texts_to_sequences` for one text).
    pub fn text_to_sequence(&self, text: &str) -> Vec<usize> {
        let limit = self.num_words.filter(|&n| n > 0);
        text_to_word_sequence(text)
            .iter()
            .filter_map(|w| self.word_index.get(w).copied())
            .filter(|&i| limit.is_none_or(|n| i < n))
            .collect()
    }

    /// Keras `texts_to_sequences`.
    pub fn texts_to_sequences<S: AsRef<str>>(&self, texts: &[S]) -> Vec<Vec<usize>> {
        texts
            .iter()
            .map(|t| self.text_to_sequence(t.as_ref()))
            .collect()
    }
}

/// Keras `pad_sequences(sequences, maxlen)` with its defaults: each row keeps the last `maxlen`
/// values (pre-truncation) and is left-padded with 0 (pre-padding). Returns `n x maxlen` values,
/// row-major.
pub fn pad_sequences(sequences: &[Vec<usize>], maxlen: usize) -> Vec<i64> {
    let mut out = vec![0i64; sequences.len() * maxlen];
    for (row, s) in out.chunks_mut(maxlen.max(1)).zip(sequences) {
        if maxlen == 0 {
            break;
        }
        let kept = &s[s.len().saturating_sub(maxlen)..];
        let start = maxlen - kept.len();
        for (o, &v) in row[start..].iter_mut().zip(kept) {
            *o = v as i64;
        }
    }
    out
}

/// Splits text into lines as Python's universal newlines (`\n`, `\r\n` and a lone `\r` end a line);
/// the terminators are dropped.
fn universal_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        match rest.find(['\n', '\r']) {
            Some(i) => {
                let line = &rest[..i];
                let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = &rest[i + skip..];
                Some(line)
            }
            None => {
                let line = rest;
                rest = "";
                Some(line)
            }
        }
    })
}

/// GloVe vectors: word → vector of `dim` values.
#[derive(Clone, Debug, Default)]
pub struct GloVe {
    /// Values per vector.
    pub dim: usize,
    /// The vectors (a repeated word keeps its last vector, as a Python dict).
    pub vectors: HashMap<String, Vec<f32>>,
}

/// Reads a GloVe text file (`word v1 .. vd` per line, split on whitespace as Python's
/// `str.split()`, UTF-8, universal newlines). Every line must hold a word and exactly `dim`
/// numbers, else [`DataError::Format`] with the line number. When `keep` is given only those words
/// are stored (every line is still checked).
pub fn read_glove(
    path: &Path,
    dim: usize,
    keep: Option<&HashSet<String>>,
) -> Result<GloVe, DataError> {
    let file = File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => DataError::Missing {
            path: path.to_path_buf(),
            what: "GloVe vector file".to_string(),
        },
        _ => DataError::io(path, e),
    })?;
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut vectors = HashMap::new();
    let mut buf = Vec::new();
    let mut line_no = 0usize;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| DataError::io(path, e))?;
        if n == 0 {
            break;
        }
        let chunk = std::str::from_utf8(&buf).map_err(|e| {
            DataError::format(path, format!("line {}: not UTF-8: {e}", line_no + 1))
        })?;
        for line in universal_lines(chunk) {
            line_no += 1;
            let mut fields = line.split(py_isspace).filter(|f| !f.is_empty());
            let Some(word) = fields.next() else {
                return Err(DataError::format(
                    path,
                    format!("line {line_no}: empty line"),
                ));
            };
            let mut values = Vec::with_capacity(dim);
            for f in fields {
                let v: f64 = f.parse().map_err(|_| {
                    DataError::format(
                        path,
                        format!("line {line_no}: {f:?} is not a number (word {word:?})"),
                    )
                })?;
                values.push(v as f32);
            }
            if values.len() != dim {
                return Err(DataError::format(
                    path,
                    format!(
                        "line {line_no}: word {word:?} has {} values, expected {dim}",
                        values.len()
                    ),
                ));
            }
            if keep.is_none_or(|k| k.contains(word)) {
                vectors.insert(word.to_string(), values);
            }
        }
    }
    Ok(GloVe { dim, vectors })
}

/// Decodes bytes as latin-1 (each byte is the code point) and translates newlines as Python's text
/// mode (`\r\n` and lone `\r` become `\n`).
pub fn decode_latin1(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + bytes.len() / 8);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'\r' {
            out.push('\n');
            if bytes.get(i + 1) == Some(&b'\n') {
                i += 1;
            }
        } else {
            out.push(char::from(b));
        }
        i += 1;
    }
    out
}

/// The reference's header cut: `i = t.find("\n\n"); if i > 0: t = t[i:]` (the text keeps the blank
/// line; a text starting with it, or without one, is kept whole).
pub fn strip_header(text: &str) -> &str {
    match text.find("\n\n") {
        Some(i) if i > 0 => &text[i..],
        _ => text,
    }
}

/// The documents of a `20_newsgroups` folder.
#[derive(Clone, Debug, Default)]
pub struct NewsgroupsTexts {
    /// The texts, header stripped.
    pub texts: Vec<String>,
    /// The label of each text (index into `class_names`).
    pub labels: Vec<usize>,
    /// The class folder names, sorted.
    pub class_names: Vec<String>,
    /// The file of each text.
    pub files: Vec<PathBuf>,
}

/// Sorted names of the entries of `dir` (byte-wise, = Python's sort of `os.listdir` strings).
fn sorted_entries(dir: &Path) -> Result<Vec<(String, PathBuf)>, DataError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| DataError::io(dir, e))? {
        let entry = entry.map_err(|e| DataError::io(dir, e))?;
        let path = entry.path();
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| DataError::format(&path, "name is not UTF-8"))?;
        out.push((name, path));
    }
    out.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    Ok(out)
}

/// Reads `dir` (the `20_newsgroups` folder): every sub-folder in sorted order is a class; in it every
/// file whose name is all ASCII digits, in sorted string order (`"10" < "9"`), is a document, read
/// as latin-1 ([`decode_latin1`]) and cut by [`strip_header`]. Entries that are not folders at the
/// top level, and other names inside, are skipped, as the reference.
pub fn read_newsgroups(dir: &Path) -> Result<NewsgroupsTexts, DataError> {
    if !dir.is_dir() {
        return Err(DataError::Missing {
            path: dir.to_path_buf(),
            what: "20_newsgroups folder".to_string(),
        });
    }
    let mut out = NewsgroupsTexts::default();
    for (name, path) in sorted_entries(dir)? {
        if !path.is_dir() {
            continue;
        }
        let label = out.class_names.len();
        out.class_names.push(name);
        for (fname, fpath) in sorted_entries(&path)? {
            if fname.is_empty() || !fname.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let bytes = fs::read(&fpath).map_err(|e| DataError::io(&fpath, e))?;
            let text = decode_latin1(&bytes);
            out.texts.push(strip_header(&text).to_string());
            out.labels.push(label);
            out.files.push(fpath);
        }
    }
    if out.class_names.is_empty() {
        return Err(DataError::format(dir, "no class folder"));
    }
    Ok(out)
}

/// The reference's embedding matrix: `rows = min(max_num_words, |word_index|)` rows of `dim`
/// `f32`, zero except row `i` = the GloVe vector of the word with index `i` (for `i <
/// max_num_words` with a vector). Returns `(matrix row-major, rows)`.
///
/// With fewer than `max_num_words` distinct words the last word's index equals `rows`: the
/// reference would raise an `IndexError` if that word had a vector; here it is skipped (and such a
/// sequence index is outside the matrix, as in the reference).
pub fn embedding_matrix(
    tokenizer: &Tokenizer,
    glove: &GloVe,
    max_num_words: usize,
) -> (Vec<f32>, usize) {
    let rows = max_num_words.min(tokenizer.words().len());
    let dim = glove.dim;
    let mut m = vec![0f32; rows * dim];
    for (k, word) in tokenizer.words().iter().enumerate() {
        let i = k + 1;
        if i >= max_num_words || i >= rows {
            break;
        }
        if let Some(v) = glove.vectors.get(word) {
            m[i * dim..(i + 1) * dim].copy_from_slice(v);
        }
    }
    (m, rows)
}

/// Settings of [`load_newsgroups`]; the defaults are the reference's.
#[derive(Clone, Debug, PartialEq)]
pub struct NewsgroupsOptions {
    /// Sequence length after padding/truncation (1000).
    pub max_sequence_length: usize,
    /// Tokenizer `num_words` and embedding row limit (2000).
    pub max_num_words: usize,
    /// GloVe dimension (100).
    pub embedding_dim: usize,
    /// Test fraction (0.2).
    pub test_split: f64,
    /// Validation documents (900).
    pub n_val: usize,
    /// Split seed (the run's `seed`).
    pub seed: u32,
    /// GloVe file; default `data_dir/glove.6B/glove.6B.{embedding_dim}d.txt`.
    pub glove_path: Option<PathBuf>,
}

impl Default for NewsgroupsOptions {
    fn default() -> Self {
        NewsgroupsOptions {
            max_sequence_length: 1000,
            max_num_words: 2000,
            embedding_dim: 100,
            test_split: 0.2,
            n_val: 900,
            seed: 1,
            glove_path: None,
        }
    }
}

/// What [`load_newsgroups`] returns (the reference's tuple, with labels as class indices).
#[derive(Clone, Debug, PartialEq)]
pub struct NewsgroupsData {
    /// `embedding_shape.0 x embedding_shape.1` `f32`, row-major.
    pub embedding: Vec<f32>,
    /// (rows = `num_words`, `embedding_dim`).
    pub embedding_shape: (usize, usize),
    /// Train sequences, `y_train.len() x sequence_length`, row-major.
    pub x_train: Vec<i64>,
    /// Train labels.
    pub y_train: Vec<i64>,
    /// Validation sequences.
    pub x_val: Vec<i64>,
    /// Validation labels.
    pub y_val: Vec<i64>,
    /// Test sequences.
    pub x_test: Vec<i64>,
    /// Test labels.
    pub y_test: Vec<i64>,
    /// Embedding rows: `min(max_num_words, |word_index|)`.
    pub num_words: usize,
    /// Embedding width.
    pub embedding_dim: usize,
    /// Columns of the `x_*` matrices.
    pub sequence_length: usize,
    /// Class folder names in label order.
    pub class_names: Vec<String>,
}

/// The reference's `ng_loader(data_dir, ...)` (see the module docs): reads
/// `data_dir/20_newsgroups` and the GloVe file, tokenizes, pads, splits and builds the embedding.
pub fn load_newsgroups(
    data_dir: impl AsRef<Path>,
    options: &NewsgroupsOptions,
) -> Result<NewsgroupsData, DataError> {
    let data_dir = data_dir.as_ref();
    if options.max_sequence_length == 0 || options.embedding_dim == 0 {
        return Err(DataError::Invalid(
            "max_sequence_length and embedding_dim must be positive".to_string(),
        ));
    }
    let texts = read_newsgroups(&data_dir.join("20_newsgroups"))?;
    let mut tokenizer = Tokenizer::new(Some(options.max_num_words));
    tokenizer.fit_on_texts(&texts.texts);
    let sequences = tokenizer.texts_to_sequences(&texts.texts);
    let len = options.max_sequence_length;
    let data = pad_sequences(&sequences, len);

    let glove_path = options.glove_path.clone().unwrap_or_else(|| {
        data_dir
            .join("glove.6B")
            .join(format!("glove.6B.{}d.txt", options.embedding_dim))
    });
    let keep: HashSet<String> = tokenizer
        .words()
        .iter()
        .take(options.max_num_words.saturating_sub(1))
        .cloned()
        .collect();
    let glove = read_glove(&glove_path, options.embedding_dim, Some(&keep))?;
    let (embedding, num_words) = embedding_matrix(&tokenizer, &glove, options.max_num_words);

    let (train, val, test) = crate::splits::newsgroups_split(
        texts.texts.len(),
        options.test_split,
        options.n_val,
        options.seed,
    )?;
    let gather = |idx: &[usize]| {
        let mut x = Vec::with_capacity(idx.len() * len);
        let mut y = Vec::with_capacity(idx.len());
        for &i in idx {
            x.extend_from_slice(&data[i * len..(i + 1) * len]);
            y.push(texts.labels[i] as i64);
        }
        (x, y)
    };
    let (x_train, y_train) = gather(&train);
    let (x_val, y_val) = gather(&val);
    let (x_test, y_test) = gather(&test);
    Ok(NewsgroupsData {
        embedding,
        embedding_shape: (num_words, options.embedding_dim),
        x_train,
        y_train,
        x_val,
        y_val,
        x_test,
        y_test,
        num_words,
        embedding_dim: options.embedding_dim,
        sequence_length: len,
        class_names: texts.class_names,
    })
}
