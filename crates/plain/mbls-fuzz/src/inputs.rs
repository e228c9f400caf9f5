//! Valid inputs of every format, generated from a seed: the starting points that the mutators
//! bend. Each [`Case`] is a set of named files (one of them the fuzz target) as the readers
//! and the `mbls` commands expect to find them in a folder.

use crate::pickle::Pickle;
use crate::rng::Rng;
use mbls_npy::{NpyArray, NpyData};
use std::path::Path;

/// The formats the harness covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A `.npy` logits/labels pair.
    Npy,
    /// An `.npz` archive of logits and labels.
    Npz,
    /// A zip-format PyTorch checkpoint (`torch.save` since 1.6).
    PthZip,
    /// A legacy (pre-1.6) PyTorch checkpoint.
    PthLegacy,
    /// A safetensors weights file.
    Safetensors,
    /// CIFAR-10 binary record files.
    CifarBinary,
    /// CIFAR-10 python pickles.
    CifarPickle,
    /// MNIST IDX files.
    Idx,
    /// Configuration overrides (one per line).
    Config,
    /// An image folder (`train/`, `test/`) of JPEG files, decoded by libjpeg-turbo.
    Jpeg,
}

impl Format {
    /// Every format, in a fixed order.
    pub const ALL: [Format; 10] = [
        Format::Npy,
        Format::Npz,
        Format::PthZip,
        Format::PthLegacy,
        Format::Safetensors,
        Format::CifarBinary,
        Format::CifarPickle,
        Format::Idx,
        Format::Config,
        Format::Jpeg,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Format::Npy => "npy",
            Format::Npz => "npz",
            Format::PthZip => "pth",
            Format::PthLegacy => "pth-legacy",
            Format::Safetensors => "safetensors",
            Format::CifarBinary => "cifar-bin",
            Format::CifarPickle => "cifar-pickle",
            Format::Idx => "idx",
            Format::Config => "config",
            Format::Jpeg => "jpeg",
        }
    }

    /// The format of a command-line name.
    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// A set of files (relative path, bytes); `target` indexes the one being fuzzed.
#[derive(Clone, Debug)]
pub struct Case {
    /// The files, by path relative to the case's folder.
    pub files: Vec<(String, Vec<u8>)>,
    /// Index in `files` of the file the mutators change.
    pub target: usize,
}

impl Case {
    /// Bytes of all files together (the input size that memory is measured against).
    pub fn total_bytes(&self) -> usize {
        self.files.iter().map(|(_, b)| b.len()).sum()
    }

    /// Writes the files under `dir` (creating sub-folders).
    pub fn write_to(&self, dir: &Path) -> std::io::Result<()> {
        for (name, bytes) in &self.files {
            let p = dir.join(name);
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(p, bytes)?;
        }
        Ok(())
    }

    /// The path of file `name` under `dir`.
    pub fn path(dir: &Path, name: &str) -> String {
        dir.join(name).to_string_lossy().into_owned()
    }
}

/// A valid case of `format`.
pub fn seed_case(format: Format, rng: &mut Rng) -> Case {
    match format {
        Format::Npy => npy_pair(rng),
        Format::Npz => npz(rng),
        Format::PthZip => Case {
            files: vec![("model.pth".into(), pth_zip(&tensors(rng)))],
            target: 0,
        },
        Format::PthLegacy => Case {
            files: vec![("model.pth".into(), pth_legacy(&tensors(rng)))],
            target: 0,
        },
        Format::Safetensors => Case {
            files: vec![("model.safetensors".into(), safetensors(&tensors(rng)))],
            target: 0,
        },
        Format::CifarBinary => cifar_binary(rng),
        Format::CifarPickle => cifar_pickle(rng),
        Format::Idx => idx(rng),
        Format::Config => config(rng),
        Format::Jpeg => jpeg_folder(rng),
    }
}

fn npy_bytes(a: &NpyArray) -> Vec<u8> {
    let mut v = Vec::new();
    a.write_to(&mut v).expect("writing to memory");
    v
}

/// Logits (`n x c`, float32 or float64) and labels in `0..c`.
fn logits_labels(rng: &mut Rng) -> (NpyArray, NpyArray) {
    let (n, c) = (rng.range(1, 40), rng.range(2, 12));
    let vals: Vec<f64> = (0..n * c).map(|_| rng.unit() * 8.0 - 4.0).collect();
    let data = if rng.one_in(4) {
        NpyData::F64(vals)
    } else {
        NpyData::F32(vals.iter().map(|&v| v as f32).collect())
    };
    let labels: Vec<i64> = (0..n).map(|_| rng.below(c) as i64).collect();
    (
        NpyArray::new(vec![n, c], data).expect("shape"),
        NpyArray::new(vec![n], NpyData::I64(labels)).expect("shape"),
    )
}

fn npy_pair(rng: &mut Rng) -> Case {
    let (l, y) = logits_labels(rng);
    Case {
        files: vec![
            ("logits.npy".into(), npy_bytes(&l)),
            ("labels.npy".into(), npy_bytes(&y)),
        ],
        target: usize::from(rng.one_in(4)),
    }
}

/// A stored (uncompressed) zip of `members`, as NumPy and PyTorch write; written by hand so
/// that hostile archives (duplicate names, say) can be built too.
pub fn zip_stored(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in members {
        let offset = out.len() as u32;
        let crc = crc32fast::hash(data);
        let (n, len) = (name.len() as u16, data.len() as u32);
        // local file header: version 2.0, no flags, stored, no time
        out.extend(0x0403_4b50u32.to_le_bytes());
        out.extend([20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        out.extend(crc.to_le_bytes());
        out.extend(len.to_le_bytes());
        out.extend(len.to_le_bytes());
        out.extend(n.to_le_bytes());
        out.extend(0u16.to_le_bytes());
        out.extend(name.as_bytes());
        out.extend(data);
        // central directory entry
        central.extend(0x0201_4b50u32.to_le_bytes());
        central.extend([20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        central.extend(crc.to_le_bytes());
        central.extend(len.to_le_bytes());
        central.extend(len.to_le_bytes());
        central.extend(n.to_le_bytes());
        central.extend([0u8; 12]);
        central.extend(offset.to_le_bytes());
        central.extend(name.as_bytes());
    }
    let cd_offset = out.len() as u32;
    let cd_len = central.len() as u32;
    out.extend(central);
    let count = members.len() as u16;
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0u8; 4]);
    out.extend(count.to_le_bytes());
    out.extend(count.to_le_bytes());
    out.extend(cd_len.to_le_bytes());
    out.extend(cd_offset.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

fn npz(rng: &mut Rng) -> Case {
    let (l, y) = logits_labels(rng);
    let members = vec![
        ("logits.npy".to_string(), npy_bytes(&l)),
        ("labels.npy".to_string(), npy_bytes(&y)),
    ];
    Case {
        files: vec![("data.npz".into(), zip_stored(&members))],
        target: 0,
    }
}

/// A tensor to save: name, torch dtype name, shape, little-endian bytes.
#[derive(Clone, Debug)]
pub struct Tensor {
    /// State-dict key.
    pub name: String,
    /// Element type.
    pub dtype: Dtype,
    /// Shape (contiguous strides).
    pub shape: Vec<usize>,
    /// Little-endian element bytes.
    pub data: Vec<u8>,
}

/// The element types generated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dtype {
    /// float32
    F32,
    /// float64
    F64,
    /// int64
    I64,
    /// float16
    F16,
}

impl Dtype {
    fn size(self) -> usize {
        match self {
            Dtype::F32 => 4,
            Dtype::F64 | Dtype::I64 => 8,
            Dtype::F16 => 2,
        }
    }
    fn storage(self) -> &'static str {
        match self {
            Dtype::F32 => "FloatStorage",
            Dtype::F64 => "DoubleStorage",
            Dtype::I64 => "LongStorage",
            Dtype::F16 => "HalfStorage",
        }
    }
    fn safetensors(self) -> &'static str {
        match self {
            Dtype::F32 => "F32",
            Dtype::F64 => "F64",
            Dtype::I64 => "I64",
            Dtype::F16 => "F16",
        }
    }
}

/// A few small tensors with layer-like names.
pub fn tensors(rng: &mut Rng) -> Vec<Tensor> {
    let names = [
        "conv1.weight",
        "bn1.weight",
        "bn1.bias",
        "bn1.running_mean",
        "bn1.num_batches_tracked",
        "fc.weight",
        "fc.bias",
    ];
    let k = rng.range(1, 4);
    (0..k)
        .map(|i| {
            let dtype = *rng.pick(&[Dtype::F32, Dtype::F32, Dtype::F64, Dtype::I64, Dtype::F16]);
            let dims = rng.range(0, 3);
            let shape: Vec<usize> = (0..dims).map(|_| rng.range(1, 5)).collect();
            let n: usize = shape.iter().product();
            Tensor {
                name: names[(i + rng.below(names.len())) % names.len()].to_string(),
                dtype,
                shape,
                data: rng.bytes(n * dtype.size()),
            }
        })
        .collect()
}

fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1usize; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// The pickle of a state dict: an `OrderedDict` of `_rebuild_tensor_v2` calls whose
/// persistent ids name storages `"0"`, `"1"`, ...; `legacy` adds the view-metadata field.
fn state_dict_pickle(ts: &[Tensor], legacy: bool) -> Vec<u8> {
    let mut p = Pickle::new();
    p.global("collections", "OrderedDict")
        .empty_tuple()
        .reduce();
    p.mark();
    for (i, t) in ts.iter().enumerate() {
        p.str(&t.name);
        p.global("torch._utils", "_rebuild_tensor_v2");
        p.mark();
        p.mark()
            .str("storage")
            .global("torch", t.dtype.storage())
            .str(&i.to_string())
            .str("cpu")
            .int((t.data.len() / t.dtype.size()) as i64);
        if legacy {
            p.none();
        }
        p.tuple().binpersid();
        p.int(0);
        p.mark();
        for &d in &t.shape {
            p.int(d as i64);
        }
        p.tuple();
        p.mark();
        for s in contiguous_strides(&t.shape) {
            p.int(s as i64);
        }
        p.tuple();
        p.bool(false)
            .global("collections", "OrderedDict")
            .empty_tuple()
            .reduce();
        p.tuple().reduce();
    }
    p.setitems();
    p.finish()
}

/// A zip-format checkpoint of `ts`.
pub fn pth_zip(ts: &[Tensor]) -> Vec<u8> {
    pth_zip_with(&state_dict_pickle(ts, false), ts)
}

/// A zip-format checkpoint with the pickle `pkl` and the storages of `ts`.
pub fn pth_zip_with(pkl: &[u8], ts: &[Tensor]) -> Vec<u8> {
    let mut m = vec![("archive/data.pkl".to_string(), pkl.to_vec())];
    for (i, t) in ts.iter().enumerate() {
        m.push((format!("archive/data/{i}"), t.data.clone()));
    }
    m.push(("archive/version".into(), b"3\n".to_vec()));
    m.push(("archive/byteorder".into(), b"little".to_vec()));
    zip_stored(&m)
}

/// A legacy (pre-1.6) checkpoint of `ts`.
pub fn pth_legacy(ts: &[Tensor]) -> Vec<u8> {
    let mut out = Vec::new();
    // magic number 0x1950a86a20f9469cfc6c as LONG1
    out.extend(b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.");
    out.extend(b"\x80\x02M\xe9\x03.");
    out.extend(b"\x80\x02}.");
    out.extend(state_dict_pickle(ts, true));
    let mut keys = Pickle::new();
    keys.empty_list().mark();
    for i in 0..ts.len() {
        keys.str(&i.to_string());
    }
    keys.appends();
    out.extend(keys.finish());
    for t in ts {
        out.extend(((t.data.len() / t.dtype.size()) as u64).to_le_bytes());
        out.extend(&t.data);
    }
    out
}

/// A safetensors file of `ts`.
pub fn safetensors(ts: &[Tensor]) -> Vec<u8> {
    let mut header = String::from("{");
    let mut off = 0usize;
    let mut seen = std::collections::BTreeSet::new();
    for t in ts {
        if !seen.insert(t.name.clone()) {
            continue;
        }
        if seen.len() > 1 {
            header.push(',');
        }
        let shape: Vec<String> = t.shape.iter().map(usize::to_string).collect();
        header.push_str(&format!(
            "\"{}\":{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}",
            t.name,
            t.dtype.safetensors(),
            shape.join(","),
            off,
            off + t.data.len()
        ));
        off += t.data.len();
    }
    header.push('}');
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header.as_bytes());
    let mut seen = std::collections::BTreeSet::new();
    for t in ts {
        if seen.insert(t.name.clone()) {
            out.extend(&t.data);
        }
    }
    out
}

const CIFAR_PIXELS: usize = 3072;
const CIFAR10_NAMES: [&str; 10] = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
];
const CIFAR_FILES: [&str; 6] = [
    "data_batch_1",
    "data_batch_2",
    "data_batch_3",
    "data_batch_4",
    "data_batch_5",
    "test_batch",
];

fn cifar_binary(rng: &mut Rng) -> Case {
    let dir = "cifar-10-batches-bin";
    let mut files = vec![(
        format!("{dir}/batches.meta.txt"),
        (CIFAR10_NAMES.join("\n") + "\n").into_bytes(),
    )];
    for f in CIFAR_FILES {
        let n = rng.range(1, 4);
        let mut b = Vec::with_capacity(n * (CIFAR_PIXELS + 1));
        for _ in 0..n {
            b.push(rng.below(10) as u8);
            b.extend(rng.bytes(CIFAR_PIXELS));
        }
        files.push((format!("{dir}/{f}.bin"), b));
    }
    let target = 1 + rng.below(files.len() - 1);
    Case { files, target }
}

/// A CIFAR-10 python batch: `{'batch_label': ..., 'labels': [...], 'data': uint8 n x 3072}`
/// pickled as NumPy does (protocol 2, `_reconstruct` + `BUILD`).
pub fn cifar_batch_pickle(labels: &[u8], pixels: &[u8]) -> Vec<u8> {
    let n = labels.len();
    let mut p = Pickle::new();
    p.empty_dict().mark();
    p.str("batch_label").str("fuzz batch");
    p.str("labels").empty_list().mark();
    for &l in labels {
        p.int(i64::from(l));
    }
    p.appends();
    p.str("data");
    p.global("numpy.core.multiarray", "_reconstruct")
        .global("numpy", "ndarray");
    p.int(0).tuple1().bytes(b"b").tuple3().reduce();
    p.mark().int(1);
    p.int(n as i64).int(CIFAR_PIXELS as i64).tuple2();
    p.global("numpy", "dtype")
        .str("u1")
        .bool(false)
        .bool(true)
        .tuple3()
        .reduce();
    p.mark()
        .int(3)
        .str("|")
        .none()
        .none()
        .none()
        .int(-1)
        .int(-1)
        .int(0)
        .tuple()
        .build();
    p.bool(false).bytes(pixels).tuple().build();
    p.setitems();
    p.finish()
}

fn cifar_pickle(rng: &mut Rng) -> Case {
    let dir = "cifar-10-batches-py";
    let mut meta = Pickle::new();
    meta.empty_dict().str("label_names").empty_list().mark();
    for name in CIFAR10_NAMES {
        meta.str(name);
    }
    meta.appends().setitem();
    let mut files = vec![(format!("{dir}/batches.meta"), meta.finish())];
    for f in CIFAR_FILES {
        let n = rng.range(1, 4);
        let labels: Vec<u8> = (0..n).map(|_| rng.below(10) as u8).collect();
        files.push((
            format!("{dir}/{f}"),
            cifar_batch_pickle(&labels, &rng.bytes(n * CIFAR_PIXELS)),
        ));
    }
    let target = 1 + rng.below(files.len() - 1);
    Case { files, target }
}

/// An IDX file: magic `0x0000_08_<ndim>`, big-endian dimensions, then the bytes.
pub fn idx_file(dims: &[u32], body: &[u8]) -> Vec<u8> {
    let mut out = (0x0800u32 | dims.len() as u32).to_be_bytes().to_vec();
    for d in dims {
        out.extend(d.to_be_bytes());
    }
    out.extend(body);
    out
}

fn idx(rng: &mut Rng) -> Case {
    let mut files = Vec::new();
    for split in ["train", "t10k"] {
        let n = rng.range(1, 6);
        files.push((
            format!("{split}-images-idx3-ubyte"),
            idx_file(&[n as u32, 28, 28], &rng.bytes(n * 784)),
        ));
        let labels: Vec<u8> = (0..n).map(|_| rng.below(10) as u8).collect();
        files.push((
            format!("{split}-labels-idx1-ubyte"),
            idx_file(&[n as u32], &labels),
        ));
    }
    let target = rng.below(files.len());
    Case { files, target }
}

/// JPEG files written by Pillow (mbls-data's fixtures: baseline 4:2:0/4:2:2/4:4:4, progressive,
/// optimised Huffman tables, restart markers, grayscale, real CIFAR-10 images).
const JPEGS: [&[u8]; 8] = [
    include_bytes!("../../mbls-data/tests/fixtures/jpeg/synth_420.jpg"),
    include_bytes!("../../mbls-data/tests/fixtures/jpeg/synth_422.jpg"),
    include_bytes!("../../mbls-data/tests/fixtures/jpeg/synth_444.jpg"),
    include_bytes!("../../mbls-data/tests/fixtures/jpeg/synth_progressive.jpg"),
    include_bytes!("../../mbls-data/tests/fixtures/jpeg/synth_optimized.jpg"),
    include_bytes!("../../mbls-data/tests/fixtures/jpeg/synth_restart.jpg"),
    include_bytes!("../../mbls-data/tests/fixtures/jpeg/synth_gray.jpg"),
    include_bytes!("../../mbls-data/tests/fixtures/jpeg/cifar_cat.jpg"),
];

/// An image folder for `data=folder`: two classes, five training and one test image each.
fn jpeg_folder(rng: &mut Rng) -> Case {
    let mut files = Vec::new();
    for (split, n) in [("train", 5), ("test", 1)] {
        for class in ["a", "b"] {
            for i in 0..n {
                files.push((
                    format!("{split}/{class}/{i}.jpg"),
                    rng.pick(&JPEGS).to_vec(),
                ));
            }
        }
    }
    let target = rng.below(files.len());
    Case { files, target }
}

/// Override keys the config mutator adds values to (see `mutate`).
pub const CONFIG_KEYS: [&str; 16] = [
    "loss",
    "loss.alpha",
    "loss.margin",
    "model",
    "model.num_classes",
    "data",
    "data.batch_size",
    "data.data_root",
    "optim",
    "optim.lr",
    "scheduler",
    "train.max_epoch",
    "seed",
    "log_period",
    "+extra.key",
    "~wandb",
];

fn config(rng: &mut Rng) -> Case {
    let mut lines = Vec::new();
    // a loss and keys it has
    let losses: [(&str, &[&str]); 5] = [
        ("ce", &[]),
        ("ls", &["loss.alpha=0.05"]),
        ("focal", &["loss.gamma=3"]),
        ("logit_margin", &["loss.margin=10", "loss.alpha=0.1"]),
        ("mmce", &["loss.lamda=2"]),
    ];
    if rng.one_in(2) {
        let (name, keys) = rng.pick(&losses);
        lines.push(format!("loss={name}"));
        for k in *keys {
            if rng.one_in(2) {
                lines.push(k.to_string());
            }
        }
    }
    let others: [&[&str]; 10] = [
        &[
            "model=resnet18_cifar",
            "model=resnet50_cifar",
            "model=resnet34_tiny",
        ],
        &["model.num_classes=10", "model.num_classes=100"],
        &[
            "data=cifar10",
            "data=cifar100",
            "data=tiny_imagenet",
            "data=mnist",
        ],
        &["data.batch_size=64", "data.data_root=/tmp/x"],
        &["optim=sgd", "optim=adam", "optim.lr=0.01"],
        &[
            "scheduler=multi_step",
            "scheduler=cosine",
            "scheduler=plateau",
        ],
        &["train.max_epoch=1", "train.max_epoch=200"],
        &["seed=1", "seed=42"],
        &["log_period=100"],
        &["+extra.key=1", "+extra.text=${seed}"],
    ];
    for group in others {
        if rng.one_in(3) {
            lines.push(rng.pick(group).to_string());
        }
    }
    Case {
        files: vec![("overrides.txt".into(), lines.join("\n").into_bytes())],
        target: 0,
    }
}
