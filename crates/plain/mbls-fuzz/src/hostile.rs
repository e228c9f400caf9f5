//! The hand-made hostile inputs of the bad-input campaign (issue 13), kept as regression
//! cases: each must be refused quickly with a clear message and bounded memory.

use crate::inputs::{Dtype, Tensor, pth_zip_with};
use crate::pickle::Pickle;

/// A zip checkpoint whose one tensor views a 1-element storage with stride 0 as
/// 2^14 x 2^14 float32 elements (1 GiB dense) — 846 bytes in the campaign.
pub fn pth_stride_zero() -> Vec<u8> {
    views_pth(1, &[1 << 14, 1 << 14], &[0, 0], 1)
}

/// A zip checkpoint with 2,000 tensors, each a full 256 x 256 view of one 256 kB storage.
pub fn pth_many_views() -> Vec<u8> {
    views_pth(1 << 16, &[256, 256], &[256, 1], 2_000)
}

/// A zip checkpoint whose pickle nests memoised tuples 40 deep, each holding its predecessor
/// twice: 2^40 nodes when expanded as a tree, from under 400 bytes.
pub fn pth_memo_bomb() -> Vec<u8> {
    let mut p = Pickle::new();
    p.empty_list().put(0);
    for i in 1..=40u8 {
        p.mark().get(i - 1).get(i - 1).tuple().put(i);
    }
    pth_zip_with(&p.finish(), &[])
}

/// A state dict `{"w<i>": view}` of `copies` tensors of `size`/`stride` over storage `"0"`
/// (float32, `numel` elements).
fn views_pth(numel: usize, size: &[i64], stride: &[i64], copies: usize) -> Vec<u8> {
    let mut p = Pickle::new();
    p.empty_dict().mark();
    for i in 0..copies {
        p.str(&format!("w{i}"));
        p.global("torch._utils", "_rebuild_tensor_v2").mark();
        if i == 0 {
            p.mark()
                .str("storage")
                .global("torch", "FloatStorage")
                .str("0")
                .str("cpu")
                .int(numel as i64)
                .tuple()
                .binpersid()
                .put(1);
        } else {
            p.get(1);
        }
        p.int(0).mark();
        for &d in size {
            p.int(d);
        }
        p.tuple().mark();
        for &s in stride {
            p.int(s);
        }
        p.tuple()
            .bool(false)
            .global("collections", "OrderedDict")
            .empty_tuple()
            .reduce()
            .tuple()
            .reduce();
    }
    p.setitems();
    let storage = Tensor {
        name: "0".into(),
        dtype: Dtype::F32,
        shape: vec![numel],
        data: vec![0; 4 * numel],
    };
    pth_zip_with(&p.finish(), &[storage])
}

/// A YAML alias bomb in one override value (243 bytes that expanded to 6.3 GB).
pub fn config_alias_bomb() -> String {
    let mut s = String::from("+bomb={a: &a [x,x,x,x,x,x,x,x,x]");
    for i in 0..8 {
        let prev = if i == 0 {
            "a".to_string()
        } else {
            format!("a{i}")
        };
        s.push_str(&format!(
            ", b{i}: &a{} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]",
            i + 1
        ));
    }
    s.push('}');
    s
}

/// 30 overrides that double a string by interpolation (`${a}${a}`): 2^30 characters.
pub fn config_doubling() -> Vec<String> {
    let mut v = vec!["+s.k0=xx".to_string()];
    for i in 1..30 {
        v.push(format!("+s.k{i}=${{s.k{}}}${{s.k{}}}", i - 1, i - 1));
    }
    v
}

/// A dotted key of 10,000 parts (20 kB).
pub fn config_deep_key() -> String {
    let parts: Vec<String> = (0..10_000).map(|i| format!("k{i}")).collect();
    format!("+{}=1", parts.join("."))
}

/// A chain of 10,000 interpolations (`loss.k<i>=${loss.k<i+1>}`).
pub fn config_chain() -> Vec<String> {
    (0..10_000)
        .map(|i| format!("+loss.k{i}=${{loss.k{}}}", i + 1))
        .chain(std::iter::once("+loss.k10000=1".to_string()))
        .collect()
}
