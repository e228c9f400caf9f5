//! ImageNet-pretrained weights for `pretrained=true`, as the reference uses them: torchvision's
//! classic ResNet files (`resnet50-19c8e357.pth`, ...) loaded with `strict=False` into the
//! ImageNet-style ResNets (then a fresh `fc`) and into DeepLabV3's encoder.
//!
//! The file is taken from, in order: an explicit path; `$TORCH_HOME/hub/checkpoints`;
//! `$XDG_CACHE_HOME/torch/hub/checkpoints`; `~/.cache/torch/hub/checkpoints` (PyTorch's own
//! cache, so weights already downloaded by PyTorch are reused). If it is in none of them it is
//! downloaded from torchvision's address into the first cache folder, when a network is there,
//! and checked against the SHA-256 prefix in its name, as torch.hub does.

use std::path::{Path, PathBuf};

use mbls_base::download::{Checksum, DownloadError, download_checked};
use tch::nn::VarStore;

use crate::checkpoint::{CheckpointError, LoadOptions, LoadReport, load_weights};

/// Where torchvision publishes its weights.
pub const TORCHVISION_BASE_URL: &str = "https://download.pytorch.org/models";

/// torchvision's classic ImageNet weight file of ResNet-`depth` (the ones the reference's
/// `resnet.py` names), or `None`.
pub fn torchvision_resnet_file(depth: u32) -> Option<&'static str> {
    Some(match depth {
        18 => "resnet18-5c106cde.pth",
        34 => "resnet34-333f7ec4.pth",
        50 => "resnet50-19c8e357.pth",
        101 => "resnet101-5d3b4d8f.pth",
        152 => "resnet152-b121ed2d.pth",
        _ => return None,
    })
}

/// PyTorch's weight cache folders, most specific first.
pub fn cache_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(t) = std::env::var_os("TORCH_HOME") {
        dirs.push(PathBuf::from(t).join("hub/checkpoints"));
    }
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME") {
        dirs.push(PathBuf::from(x).join("torch/hub/checkpoints"));
    }
    if let Some(h) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(h).join(".cache/torch/hub/checkpoints"));
    }
    dirs
}

/// The hexadecimal SHA-256 prefix torch.hub reads from a file name (`name-<hex>.ext`).
fn hash_prefix(file: &str) -> Option<&str> {
    let stem = file.rsplit_once('.').map_or(file, |(s, _)| s);
    let (_, h) = stem.rsplit_once('-')?;
    (h.len() >= 6 && h.bytes().all(|b| b.is_ascii_hexdigit())).then_some(h)
}

/// Downloads `url` to `dest` (through `dest.part`, resumable; `mbls_base::download`), checking
/// the SHA-256 prefix of the file name when it has one; `dest` only appears once complete and
/// checked.
pub fn download(url: &str, dest: &Path) -> Result<(), CheckpointError> {
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned());
    let checksum = match name.as_deref().and_then(hash_prefix) {
        Some(prefix) => Checksum::Sha256Prefix(prefix),
        None => Checksum::None,
    };
    match download_checked(url, dest, checksum) {
        Ok(_) => Ok(()),
        Err(DownloadError::Checksum {
            expected, actual, ..
        }) => Err(CheckpointError::Format {
            path: dest.to_path_buf(),
            message: format!("downloaded file has SHA-256 {actual}, expected a prefix {expected}"),
        }),
        Err(DownloadError::Io { path, error }) => Err(CheckpointError::Io { path, error }),
        Err(e) => Err(CheckpointError::Unavailable {
            message: format!("cannot download {url}: {e}"),
        }),
    }
}

/// Finds `file` (explicit path first, then [`cache_dirs`]), downloading it from
/// `base_url/file` into the first cache folder if `download_allowed` and it is nowhere.
pub fn locate(
    file: &str,
    explicit: Option<&Path>,
    base_url: &str,
    download_allowed: bool,
) -> Result<PathBuf, CheckpointError> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(CheckpointError::NotFound {
                path: p.to_path_buf(),
            })
        };
    }
    let dirs = cache_dirs();
    if let Some(found) = dirs.iter().map(|d| d.join(file)).find(|p| p.is_file()) {
        return Ok(found);
    }
    let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    let url = format!("{}/{file}", base_url.trim_end_matches('/'));
    let Some(dest_dir) = dirs.first().filter(|_| download_allowed) else {
        return Err(CheckpointError::Unavailable {
            message: format!(
                "pretrained weights {file} not found (looked in {}); download {url} into one \
                 of these folders or give its path",
                looked.join(", ")
            ),
        });
    };
    let dest = dest_dir.join(file);
    download(&url, &dest).map_err(|e| CheckpointError::Unavailable {
        message: format!(
            "pretrained weights {file} not found (looked in {}) and {e}; without a network, \
             copy the file into one of these folders or give its path",
            looked.join(", ")
        ),
    })?;
    Ok(dest)
}

/// Loads torchvision's ImageNet ResNet-`depth` weights from `path` into a model built by
/// [`crate::models::build_model`]: an ImageNet-style ResNet (`fc` kept fresh, as the
/// reference replaces it after loading) or DeepLabV3 (into `encoder.`; torchvision's `fc`
/// skipped). Everything else must match; differences are errors naming the entries.
pub fn load_imagenet_resnet(
    vs: &VarStore,
    model_name: &str,
    path: &Path,
) -> Result<LoadReport, CheckpointError> {
    let opts = if model_name == "deeplabv3" {
        LoadOptions {
            strict: false,
            add_prefix: "encoder.".into(),
            skip: vec!["encoder.fc.".into()],
        }
    } else {
        LoadOptions {
            strict: false,
            add_prefix: String::new(),
            skip: vec!["fc.".into()],
        }
    };
    let report = load_weights(vs, path, &opts)?;
    // Only the decoder and head of DeepLabV3 may stay as initialised.
    let real_missing: Vec<&String> = report
        .missing
        .iter()
        .filter(|n| !(n.starts_with("decoder.") || n.starts_with("segmentation_head.")))
        .collect();
    if !real_missing.is_empty() || !report.unexpected.is_empty() || !report.mismatched.is_empty() {
        return Err(CheckpointError::Mismatch {
            path: path.to_path_buf(),
            report: Box::new(report),
        });
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_prefixes_from_names() {
        assert_eq!(hash_prefix("resnet50-19c8e357.pth"), Some("19c8e357"));
        assert_eq!(hash_prefix("resnet50.pth"), None);
        assert_eq!(hash_prefix("my-model.pth"), None);
        for d in [18, 34, 50, 101, 152] {
            assert!(hash_prefix(torchvision_resnet_file(d).unwrap()).is_some());
        }
        assert_eq!(torchvision_resnet_file(110), None);
    }
}
