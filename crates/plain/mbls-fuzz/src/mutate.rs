//! Mutators: generic byte edits, and edits that know each format's structure (a `.npy`
//! header's shape and dtype, zip members, pickle opcodes and their arguments, safetensors'
//! JSON header, CIFAR records, IDX dimensions, override syntax), so that cases reach past the
//! first checks of a parser.

use crate::inputs::{Case, Format, zip_stored};
use crate::rng::Rng;
use std::io::{Cursor, Read};

/// Integers at the edges of what readers handle.
const INTERESTING: [u64; 14] = [
    0,
    1,
    2,
    0x7f,
    0xff,
    0x7fff,
    0xffff,
    1 << 28,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    1 << 40,
    i64::MAX as u64,
    u64::MAX,
];

/// Returns a mutated copy of `case`: one to four edits of its target file.
pub fn mutate(format: Format, case: &Case, rng: &mut Rng) -> Case {
    let mut out = case.clone();
    let target = out.target;
    let name = out.files[target].0.clone();
    let edits = rng.range(1, 4);
    for _ in 0..edits {
        let bytes = &mut out.files[target].1;
        if rng.one_in(3) {
            bytes_edit(bytes, rng);
        } else {
            structured(format, &name, bytes, rng);
        }
    }
    out
}

/// One generic edit: bit flip, interesting byte or word, truncation, deletion, duplication,
/// insertion, repetition.
pub fn bytes_edit(b: &mut Vec<u8>, rng: &mut Rng) {
    let len = b.len();
    match rng.below(8) {
        0 if len > 0 => {
            let i = rng.below(len);
            b[i] ^= 1 << rng.below(8);
        }
        1 if len > 0 => {
            let i = rng.below(len);
            b[i] = *rng.pick(&[0u8, 1, 0x7f, 0x80, 0xff, b'(', b'.', b'\n']);
        }
        2 if len >= 8 => {
            let i = rng.below(len - 7);
            let v = *rng.pick(&INTERESTING);
            let w = if rng.one_in(2) {
                v.to_le_bytes()
            } else {
                v.to_be_bytes()
            };
            let n = *rng.pick(&[2usize, 4, 8]);
            let w = if rng.one_in(2) { &w[..n] } else { &w[8 - n..] };
            b[i..i + n].copy_from_slice(w);
        }
        3 => b.truncate(rng.below(len + 1)),
        4 if len > 0 => {
            let i = rng.below(len);
            let n = rng.range(1, (len - i).min(64));
            b.drain(i..i + n);
        }
        5 if len > 0 => {
            let i = rng.below(len);
            let n = rng.range(1, (len - i).min(256));
            let chunk = b[i..i + n].to_vec();
            let at = rng.below(len + 1);
            b.splice(at..at, chunk);
        }
        6 => {
            let at = rng.below(len + 1);
            let k = rng.range(1, 16);
            let ins = rng.bytes(k);
            b.splice(at..at, ins);
        }
        _ if len > 0 => {
            // a short chunk repeated up to 64 kB
            let i = rng.below(len);
            let n = rng.range(1, (len - i).min(8));
            let times = rng.range(2, 8192);
            let chunk: Vec<u8> = b[i..i + n]
                .iter()
                .copied()
                .cycle()
                .take(n * times)
                .collect();
            b.splice(i..i, chunk);
        }
        _ => b.extend(rng.bytes(4)),
    }
}

fn structured(format: Format, name: &str, b: &mut Vec<u8>, rng: &mut Rng) {
    match format {
        Format::Npy => npy_header(b, rng),
        Format::Npz => zip_members(b, rng, |_, m, rng| {
            if rng.one_in(3) {
                bytes_edit(m, rng)
            } else {
                npy_header(m, rng)
            }
        }),
        Format::PthZip => zip_members(b, rng, |name, m, rng| {
            if name.ends_with("data.pkl") {
                pickle_edit(m, rng)
            } else if name.ends_with("version") || name.ends_with("byteorder") {
                *m = rng
                    .pick(&[&b"big"[..], b"3", b"99", b"", b"\xff\xfe"])
                    .to_vec()
            } else {
                bytes_edit(m, rng)
            }
        }),
        Format::PthLegacy | Format::CifarPickle => pickle_edit(b, rng),
        Format::Safetensors => safetensors_edit(b, rng),
        Format::CifarBinary => cifar_binary_edit(name, b, rng),
        Format::Idx => idx_edit(b, rng),
        Format::Config => config_edit(b, rng),
        Format::Jpeg => jpeg_edit(b, rng),
    }
}

/// Edits a JPEG file: the frame header's dimensions, sampling factors or table selectors, a
/// cut anywhere, or a marker segment repeated.
fn jpeg_edit(b: &mut Vec<u8>, rng: &mut Rng) {
    // start-of-frame markers: baseline, extended, progressive
    let Some(sof) = b
        .windows(2)
        .position(|w| w[0] == 0xFF && matches!(w[1], 0xC0..=0xC2))
    else {
        return bytes_edit(b, rng);
    };
    if sof + 13 > b.len() {
        return bytes_edit(b, rng);
    }
    match rng.below(5) {
        0 => {
            // height (sof+5) or width (sof+7)
            let at = sof + if rng.one_in(2) { 5 } else { 7 };
            let v: u16 = *rng.pick(&[0, 1, 7, 9, 4096, 16384, 30000, 65500, 65535]);
            b[at..at + 2].copy_from_slice(&v.to_be_bytes());
        }
        1 => {
            // a component's sampling factors (sof+11) or quantisation table (sof+12)
            let at = sof + 11 + rng.below(2);
            b[at] = *rng.pick(&[0x00, 0x11, 0x44, 0x41, 0x14, 0x55, 0xFF, 4, 9]);
        }
        2 => {
            let keep = rng.below(b.len());
            b.truncate(keep);
        }
        3 => {
            // the number of components
            b[sof + 9] = *rng.pick(&[0, 2, 4, 5, 255]);
        }
        _ => {
            let end = (sof + 2 + rng.range(2, 40)).min(b.len());
            let segment = b[sof..end].to_vec();
            let at = rng.below(b.len());
            b.splice(at..at, segment);
        }
    }
}

/// Shapes and dtypes that test a `.npy` reader's bounds.
const SHAPES: [&str; 12] = [
    "()",
    "(0,)",
    "(0, 5)",
    "(3, 0, 4, 4)",
    "(1000000000000,)",
    "(18446744073709551615,)",
    "(4294967296, 4294967296)",
    "(2, -1)",
    "(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)",
    "(7,)",
    "(2, 3)",
    "'x'",
];
const DESCRS: [&str; 12] = [
    "<f4", "<f8", ">f4", "<f2", "<i8", "|u1", "|b1", "<c8", "|O", "<U3", "<V8", "zz",
];

/// Rewrites a `.npy` header's shape, dtype, order or length field.
fn npy_header(b: &mut Vec<u8>, rng: &mut Rng) {
    if b.len() < 10 || &b[..6] != b"\x93NUMPY" {
        return bytes_edit(b, rng);
    }
    let hlen = usize::from(u16::from_le_bytes([b[8], b[9]]));
    let end = (10 + hlen).min(b.len());
    let Ok(header) = std::str::from_utf8(&b[10..end]) else {
        return bytes_edit(b, rng);
    };
    let mut h = header.trim_end().to_string();
    match rng.below(5) {
        0 | 1 => {
            if let (Some(s), Some(e)) = (h.find("'shape': "), h.rfind(')')) {
                let shape = *rng.pick(&SHAPES);
                h = format!("{}'shape': {shape}{}", &h[..s], &h[e + 1..]);
            }
        }
        2 => {
            if let Some(s) = h.find("'descr': '") {
                let rest = &h[s + 10..];
                if let Some(e) = rest.find('\'') {
                    h = format!(
                        "{}'descr': '{}'{}",
                        &h[..s],
                        rng.pick(&DESCRS),
                        &rest[e + 1..]
                    );
                }
            }
        }
        3 => {
            h = if h.contains("False") {
                h.replacen("False", "True", 1)
            } else {
                h.replacen("True", "False", 1)
            };
        }
        _ => {
            let v = *rng.pick(&[0u16, 1, 5, 0xffff, (hlen as u16).wrapping_add(64)]);
            b[8..10].copy_from_slice(&v.to_le_bytes());
            return;
        }
    }
    // re-pad to a multiple of 64 as NumPy does, keeping the data after the header
    let data = b[end..].to_vec();
    let mut hb = h.into_bytes();
    let total = (10 + hb.len() + 1).div_ceil(64) * 64;
    hb.resize(total - 11, b' ');
    hb.push(b'\n');
    let mut out = b[..8].to_vec();
    out.extend((hb.len().min(0xffff) as u16).to_le_bytes());
    out.extend(hb);
    out.extend(data);
    *b = out;
}

/// Edits a zip archive through its members: one member changed by `f`, dropped, renamed or
/// duplicated, and the archive rebuilt; unreadable archives get byte edits.
fn zip_members(b: &mut Vec<u8>, rng: &mut Rng, f: impl Fn(&str, &mut Vec<u8>, &mut Rng)) {
    let Some(mut members) = read_members(b) else {
        return bytes_edit(b, rng);
    };
    if members.is_empty() {
        return bytes_edit(b, rng);
    }
    let i = rng.below(members.len());
    match rng.below(8) {
        0 => {
            members.remove(i);
        }
        1 => {
            let m = members[i].clone();
            members.push(m);
        }
        2 => members[i].0.push_str(".x"),
        _ => {
            let (name, data) = &mut members[i];
            f(name, data, rng);
        }
    }
    *b = zip_stored(&members);
}

fn read_members(b: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let mut z = zip::ZipArchive::new(Cursor::new(b)).ok()?;
    let mut out = Vec::new();
    for i in 0..z.len() {
        let mut e = z.by_index(i).ok()?;
        if e.size() > 1 << 26 {
            return None;
        }
        let mut data = Vec::new();
        e.read_to_end(&mut data).ok()?;
        out.push((e.name().to_string(), data));
    }
    Some(out)
}

/// Pickle snippets that stress the reader's stack, memo and expansion limits.
const PICKLE_SNIPPETS: [&[u8]; 10] = [
    b"]q\x00(h\x00h\x00tq\x01(h\x01h\x01tq\x02(h\x02h\x02tq\x03(h\x03h\x03tq\x04",
    b"((((((((((((((((",
    b"h\x00h\x00h\x00h\x00",
    b"J\xff\xff\xff\x7f",
    b"\x8a\x09\x00\x00\x00\x00\x00\x00\x00\x00\x01",
    b"X\xff\xff\xff\x7f",
    b"cos\nsystem\n",
    b"ctorch._utils\n_rebuild_qtensor\n",
    b"e",
    b"0",
];

/// Edits a pickle: an integer argument set to an edge value, a snippet inserted, a string
/// length changed, or an opcode dropped.
pub fn pickle_edit(b: &mut Vec<u8>, rng: &mut Rng) {
    let positions = |op: u8, b: &[u8]| -> Vec<usize> {
        b.iter()
            .enumerate()
            .filter(|&(_, &x)| x == op)
            .map(|(i, _)| i)
            .collect()
    };
    match rng.below(5) {
        0 => {
            let js = positions(b'J', b);
            if let Some(&i) = rng.pick_opt(&js) {
                if i + 5 <= b.len() {
                    let v = *rng.pick(&[0i32, -1, 1 << 28, 1 << 30, i32::MAX, i32::MIN, 3]);
                    b[i + 1..i + 5].copy_from_slice(&v.to_le_bytes());
                }
            }
        }
        1 => {
            let ks = positions(b'K', b);
            if let Some(&i) = rng.pick_opt(&ks) {
                if i + 1 < b.len() {
                    b[i + 1] = *rng.pick(&[0u8, 1, 9, 10, 0xff]);
                }
            }
        }
        2 => {
            let at = rng.below(b.len() + 1);
            let s = *rng.pick(&PICKLE_SNIPPETS);
            b.splice(at..at, s.iter().copied());
        }
        3 => {
            let xs = positions(b'X', b);
            if let Some(&i) = rng.pick_opt(&xs) {
                if i + 5 <= b.len() {
                    let v = *rng.pick(&[0u32, 1, 0xffff, 0x7fff_ffff, u32::MAX]);
                    b[i + 1..i + 5].copy_from_slice(&v.to_le_bytes());
                }
            }
        }
        _ => {
            if !b.is_empty() {
                let i = rng.below(b.len());
                b.remove(i);
            }
        }
    }
}

/// Edits a safetensors file: a number or dtype in its JSON header, or the header length.
fn safetensors_edit(b: &mut Vec<u8>, rng: &mut Rng) {
    if b.len() < 8 {
        return bytes_edit(b, rng);
    }
    let n = u64::from_le_bytes(b[..8].try_into().unwrap_or([0; 8]));
    let Some(n) = usize::try_from(n).ok().filter(|&n| n <= b.len() - 8) else {
        return bytes_edit(b, rng);
    };
    let Ok(header) = std::str::from_utf8(&b[8..8 + n]) else {
        return bytes_edit(b, rng);
    };
    let mut h = header.to_string();
    match rng.below(4) {
        0 => {
            // replace one run of digits
            let runs: Vec<(usize, usize)> = digit_runs(&h);
            if let Some(&(s, e)) = rng.pick_opt(&runs) {
                let v = rng.pick(&[
                    "0",
                    "1",
                    "4294967296",
                    "18446744073709551615",
                    "99999999999999999999999",
                ]);
                h.replace_range(s..e, v);
            }
        }
        1 => {
            let dt = rng.pick(&[
                "\"F32\"",
                "\"BF16\"",
                "\"BOOL\"",
                "\"U8\"",
                "\"F8_E4M3\"",
                "\"XX\"",
                "1",
            ]);
            for from in ["\"F32\"", "\"F64\"", "\"I64\"", "\"F16\""] {
                if h.contains(from) {
                    h = h.replacen(from, dt, 1);
                    break;
                }
            }
        }
        2 => {
            let v = *rng.pick(&[0u64, 1, n as u64 + 100, u64::MAX, 1 << 40]);
            b[..8].copy_from_slice(&v.to_le_bytes());
            return;
        }
        _ => h = h.replacen('}', "},\"__metadata__\":{\"a\":[1,2]}", 1),
    }
    let data = b[8 + n..].to_vec();
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h.into_bytes());
    out.extend(data);
    *b = out;
}

fn digit_runs(s: &str) -> Vec<(usize, usize)> {
    let mut runs = Vec::new();
    let mut start = None;
    for (i, c) in s.char_indices() {
        match (c.is_ascii_digit(), start) {
            (true, None) => start = Some(i),
            (false, Some(st)) => {
                runs.push((st, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(st) = start {
        runs.push((st, s.len()));
    }
    runs
}

/// Edits CIFAR binary records: a label out of range, a partial record, or the class list.
fn cifar_binary_edit(name: &str, b: &mut Vec<u8>, rng: &mut Rng) {
    if name.ends_with(".txt") {
        return bytes_edit(b, rng);
    }
    let rec = 3073;
    match rng.below(3) {
        0 if b.len() >= rec => {
            let r = rng.below(b.len() / rec);
            b[r * rec] = *rng.pick(&[10u8, 11, 99, 255]);
        }
        1 => {
            let cut = rng.range(1, rec - 1).min(b.len());
            b.truncate(b.len() - cut);
        }
        _ => {
            let k = rng.range(1, rec * 2);
            let extra = rng.bytes(k);
            b.extend(extra);
        }
    }
}

/// Edits an IDX header: magic number, dimension count or one dimension.
fn idx_edit(b: &mut Vec<u8>, rng: &mut Rng) {
    if b.len() < 8 {
        return bytes_edit(b, rng);
    }
    let word = 4 * rng.below((b.len() / 4).min(4));
    let v: u32 = *rng.pick(&[
        0,
        1,
        0x0801,
        0x0803,
        0x08ff,
        0x0c03,
        60_000,
        u32::MAX,
        1 << 31,
        28,
    ]);
    b[word..word + 4].copy_from_slice(&v.to_be_bytes());
}

/// Override values that test the configuration's limits.
const CONFIG_VALUES: [&str; 22] = [
    "1e400",
    "nan",
    "-inf",
    "-1",
    "9223372036854775807",
    "99999999999999999999",
    "${seed}",
    "${loss.alpha}${loss.alpha}",
    "${nope}",
    "[1, 2",
    "{a: 1}",
    "&a [*a, *a]",
    "'unterminated",
    "\"",
    "",
    "null",
    "true",
    "resnet110",
    "nope",
    "~",
    "[[[[[[[[[[]]]]]]]]]]",
    "0x10",
];

/// Edits one override line (value, key or syntax), or adds or removes a line.
fn config_edit(b: &mut Vec<u8>, rng: &mut Rng) {
    let text = String::from_utf8_lossy(b).into_owned();
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    match rng.below(6) {
        0 | 1 => {
            let key = rng
                .pick(&crate::inputs::CONFIG_KEYS)
                .trim_start_matches('~');
            lines.push(format!("{key}={}", rng.pick(&CONFIG_VALUES)));
        }
        2 if !lines.is_empty() => {
            let i = rng.below(lines.len());
            lines.remove(i);
        }
        3 => {
            let parts = rng.range(2, 200);
            let key: Vec<String> = (0..parts).map(|i| format!("k{i}")).collect();
            lines.push(format!("+{}=1", key.join(".")));
        }
        4 => {
            let n = rng.range(100, 20_000);
            lines.push(format!("+extra.long={}", "x".repeat(n)));
        }
        _ => {
            let i = rng.below(lines.len().max(1));
            if let Some(l) = lines.get_mut(i) {
                let cut = rng.below(l.len() + 1);
                let cut = (0..=cut)
                    .rev()
                    .find(|&c| l.is_char_boundary(c))
                    .unwrap_or(0);
                l.truncate(cut);
                const TAILS: [&str; 7] = ["=", "==", ".", "=${", "+", "@", " "];
                let tail = *rng.pick(&TAILS);
                l.push_str(tail);
            } else {
                lines.push("=".into());
            }
        }
    }
    *b = lines.join("\n").into_bytes();
}
