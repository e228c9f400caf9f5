//! What each case is fed to: the library readers in this process, or the `mbls` binary.

use crate::inputs::{Case, Format};
use mbls_data::{Cifar, CifarKind, Dataset, Mnist, MnistKind};
use mbls_npy::{NpyArray, NpyStream, Npz};
use std::path::Path;

/// Feeds the case (written under `dir`) to the readers `mbls` uses for its format. Returns
/// whether the input was accepted; a refusal is an `Err` with the reader's message. A panic
/// propagates (the runner catches it).
pub fn read_in_process(format: Format, case: &Case, dir: &Path) -> Result<(), String> {
    let p = |name: &str| dir.join(name);
    let e = |e: &dyn std::fmt::Display| e.to_string();
    match format {
        Format::Npy => {
            for name in ["logits.npy", "labels.npy"] {
                NpyArray::read(p(name)).map_err(|x| e(&x))?;
                let mut s = NpyStream::open(p(name)).map_err(|x| e(&x))?;
                while s.remaining() > 0 {
                    s.read_chunk(4096).map_err(|x| e(&x))?;
                }
            }
            Ok(())
        }
        Format::Npz => {
            mbls_npy::read_npz(p("data.npz")).map_err(|x| e(&x))?;
            let mut z = Npz::open(p("data.npz")).map_err(|x| e(&x))?;
            for k in z.keys() {
                z.get(&k).map_err(|x| e(&x))?;
            }
            Ok(())
        }
        Format::PthZip | Format::PthLegacy => {
            mbls_pth::load(p("model.pth")).map_err(|x| e(&x))?;
            mbls_pth::load_state_dict(p("model.pth")).map_err(|x| e(&x))?;
            Ok(())
        }
        // read by libtorch's safetensors reader (through `tch`): only the binary covers it
        Format::Safetensors => Ok(()),
        Format::CifarBinary | Format::CifarPickle => {
            Cifar::open(dir, CifarKind::Cifar10, true).map_err(|x| e(&x))?;
            Cifar::open(dir, CifarKind::Cifar10, false).map_err(|x| e(&x))?;
            Ok(())
        }
        Format::Idx => {
            Mnist::open_kind(dir, true, MnistKind::Digits).map_err(|x| e(&x))?;
            Mnist::open_kind(dir, false, MnistKind::Digits).map_err(|x| e(&x))?;
            Ok(())
        }
        Format::Jpeg => {
            let (train, test, _) = mbls_data::open_folder_splits(dir).map_err(|x| e(&x))?;
            for split in [&train, &test] {
                for i in 0..split.len() {
                    split.get(i).map_err(|x| e(&x))?;
                }
            }
            Ok(())
        }
        Format::Config => {
            let overrides = overrides(case);
            let cfg = mbls_config::Config::compose_args(&overrides).map_err(|x| e(&x))?;
            let _ = cfg.to_yaml();
            Ok(())
        }
    }
}

/// The override lines of a config case (NUL bytes dropped: a command-line argument cannot
/// hold one).
pub fn overrides(case: &Case) -> Vec<String> {
    String::from_utf8_lossy(&case.files[case.target].1)
        .lines()
        .map(|l| l.replace('\0', ""))
        .collect()
}

/// The `mbls` command line (after the program name) that reads the case written under `dir`;
/// `variant` picks among the commands that read the format.
pub fn mbls_args(format: Format, case: &Case, dir: &Path, variant: usize) -> Vec<String> {
    let p = |name: &str| Case::path(dir, name);
    let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    match format {
        Format::Npy if variant % 2 == 1 => v(&[
            "loss",
            &p("logits.npy"),
            &p("labels.npy"),
            "loss=logit_margin",
        ]),
        Format::Npy => v(&["eval", &p("logits.npy"), &p("labels.npy")]),
        Format::Npz => v(&["eval", &p("data.npz")]),
        Format::PthZip | Format::PthLegacy => {
            v(&["model", "model=resnet18_cifar", "--load", &p("model.pth")])
        }
        Format::Safetensors => v(&[
            "model",
            "model=resnet18_cifar",
            "--load",
            &p("model.safetensors"),
        ]),
        Format::CifarBinary | Format::CifarPickle => v(&[
            "data",
            "data=cifar10",
            &format!("data.data_root={}", dir.display()),
            "--show",
            "2",
        ]),
        Format::Idx => v(&[
            "data",
            "data=mnist",
            &format!("data.data_root={}", dir.display()),
            "--show",
            "2",
        ]),
        Format::Jpeg => v(&[
            "data",
            "data=folder",
            &format!("data.data_root={}", dir.display()),
            "data.batch_size=2",
            "--bench",
            "4",
        ]),
        Format::Config => {
            let mut a = v(&["train", "--cfg"]);
            a.extend(overrides(case));
            a
        }
    }
}
