//! Downloads with a checksum and resume.
//!
//! [`download`] fetches a file over HTTP(S) into `<dest>.part`, resuming an interrupted download
//! with an HTTP `Range` request, verifies its MD5 digest and only then renames it to `<dest>`, so a
//! wrong or incomplete file never sits at `dest`; [`download_checked`] does the same with another
//! [`Checksum`] (torch.hub's SHA-256 prefix). [`extract_tar_gz`] unpacks a `.tar.gz` archive.

use std::path::Path as StdPath;

/// What can go wrong while downloading, checking or unpacking.
#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// A local file or folder could not be read or written.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The operating-system error.
        error: std::io::Error,
    },
    /// A file's digest differs from the expected one (for a SHA-256 prefix: does not start
    /// with it).
    #[error("{}: {algorithm} {actual} differs from the expected {expected}", path.display())]
    Checksum {
        /// The file.
        path: PathBuf,
        /// `MD5` or `SHA-256`.
        algorithm: &'static str,
        /// Expected digest (hex).
        expected: String,
        /// Digest of the file (hex).
        actual: String,
    },
    /// The download failed (no network, HTTP error, ...).
    #[error("download of {url} failed: {message}")]
    Download {
        /// The address.
        url: String,
        /// What went wrong, with advice when offline.
        message: String,
    },
}

impl DownloadError {
    /// A [`DownloadError::Io`] for `path`.
    fn io(path: &StdPath, error: std::io::Error) -> Self {
        DownloadError::Io {
            path: path.to_path_buf(),
            error,
        }
    }
}
use md5::{Digest, Md5};
use sha2::Sha256;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The MD5 digest of a file, as 32 lowercase hex digits.
///
/// # Errors
/// [`DownloadError::Io`] when the file cannot be read.
pub fn md5_file(path: &Path) -> Result<String, DownloadError> {
    hex_digest::<Md5>(path)
}

/// The SHA-256 digest of a file, as 64 lowercase hex digits.
///
/// # Errors
/// [`DownloadError::Io`] when the file cannot be read.
pub fn sha256_file(path: &Path) -> Result<String, DownloadError> {
    hex_digest::<Sha256>(path)
}

fn hex_digest<H: Digest>(path: &Path) -> Result<String, DownloadError> {
    let mut file = File::open(path).map_err(|e| DownloadError::io(path, e))?;
    let mut hasher = H::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| DownloadError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// `<dest>.part`: where [`download`] keeps an unfinished download.
pub fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    dest.with_file_name(name)
}

/// What a downloaded file is checked against (hex digits, case-insensitive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum<'a> {
    /// The whole MD5 digest (the official CIFAR archives).
    Md5(&'a str),
    /// A prefix of the SHA-256 digest (torch.hub's `name-<prefix>.pth` convention).
    Sha256Prefix(&'a str),
    /// No check.
    None,
}

impl Checksum<'_> {
    /// The expected value, lower-case, for messages.
    fn expected(&self) -> String {
        match self {
            Checksum::Md5(h) | Checksum::Sha256Prefix(h) => h.to_ascii_lowercase(),
            Checksum::None => String::new(),
        }
    }

    /// `Ok(None)` when `path` passes, `Ok(Some(actual digest))` when it does not.
    fn mismatch(&self, path: &Path) -> Result<Option<String>, DownloadError> {
        let expected = self.expected();
        let actual = match self {
            Checksum::Md5(_) => md5_file(path)?,
            Checksum::Sha256Prefix(_) => sha256_file(path)?,
            Checksum::None => return Ok(None),
        };
        let ok = match self {
            Checksum::Sha256Prefix(_) => actual.starts_with(&expected),
            _ => actual == expected,
        };
        Ok((!ok).then_some(actual))
    }

    fn algorithm(&self) -> &'static str {
        match self {
            Checksum::Sha256Prefix(_) => "SHA-256",
            _ => "MD5",
        }
    }

    fn label(&self) -> String {
        match self {
            Checksum::Md5(h) => format!(" (MD5 {})", h.to_ascii_lowercase()),
            Checksum::Sha256Prefix(h) => format!(" (SHA-256 starting {})", h.to_ascii_lowercase()),
            Checksum::None => String::new(),
        }
    }
}

/// Downloads `url` to `dest` and checks its MD5 digest (`md5`, hex, case-insensitive):
/// [`download_checked`] with [`Checksum::Md5`].
pub fn download(url: &str, dest: &Path, md5: &str) -> Result<PathBuf, DownloadError> {
    download_checked(url, dest, Checksum::Md5(md5))
}

/// Downloads `url` to `dest` and checks it against `checksum`.
///
/// - If `dest` already exists and passes the check, nothing is downloaded.
/// - Otherwise the data goes to `<dest>.part`. When a partial `.part` file exists, the request
///   asks for the rest with `Range: bytes=<size>-`: a `206 Partial Content` answer is appended, a
///   `200 OK` answer (server without range support) restarts the file from the beginning.
/// - An interrupted transfer leaves the `.part` file for the next call to resume.
/// - When the complete file fails the check, the `.part` file is deleted and
///   [`DownloadError::Checksum`] returned; `dest` is left untouched.
/// - On success `.part` is renamed to `dest` and `dest` returned.
///
/// # Errors
/// [`DownloadError::Download`] when no connection can be made (the message says that no network was
/// reachable and to place the file at `dest` by hand), on HTTP errors and interrupted transfers;
/// [`DownloadError::Checksum`] on a digest mismatch; [`DownloadError::Io`] for local file errors.
pub fn download_checked(
    url: &str,
    dest: &Path,
    checksum: Checksum<'_>,
) -> Result<PathBuf, DownloadError> {
    let expected = checksum.expected();
    if dest.is_file() && checksum.mismatch(dest)?.is_none() {
        return Ok(dest.to_path_buf());
    }
    if let Some(parent) = dest.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| DownloadError::io(parent, e))?;
    }
    let part = part_path(dest);
    let by_hand = || {
        format!(
            "download {url} on a machine with network access and place it at {} by hand{}",
            dest.display(),
            checksum.label()
        )
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_per_read(Some(Duration::from_secs(120)))
        .build()
        .into();

    // At most two rounds: a resumed request, then (if the server says the range is unsatisfiable)
    // one fresh request.
    let mut allow_resume = true;
    loop {
        let have = if allow_resume {
            std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0)
        } else {
            0
        };
        let mut request = agent.get(url);
        if have > 0 {
            request = request.header("Range", format!("bytes={have}-"));
        }
        let response = request.call().map_err(|e| {
            let unreachable = matches!(
                e,
                ureq::Error::ConnectionFailed
                    | ureq::Error::HostNotFound
                    | ureq::Error::Timeout(_)
                    | ureq::Error::Io(_)
            );
            let message = if unreachable {
                format!("no network was reachable ({e}); {}", by_hand())
            } else {
                format!("{e}; {}", by_hand())
            };
            DownloadError::Download {
                url: url.to_string(),
                message,
            }
        })?;
        let status = response.status().as_u16();
        let append = match status {
            206 if have > 0 => {
                let start = response
                    .headers()
                    .get("content-range")
                    .and_then(|v| v.to_str().ok())
                    .and_then(content_range_start);
                // A server that answers another range than asked for: start over.
                if start != Some(have) {
                    allow_resume = false;
                    continue;
                }
                true
            }
            200 => false,
            416 if have > 0 => {
                // The `.part` file may already be complete.
                if checksum.mismatch(&part)?.is_none() {
                    return finish(&part, dest);
                }
                allow_resume = false;
                continue;
            }
            _ => {
                return Err(DownloadError::Download {
                    url: url.to_string(),
                    message: format!("the server answered HTTP {status}; {}", by_hand()),
                });
            }
        };
        let mut file = if append {
            OpenOptions::new().append(true).open(&part)
        } else {
            File::create(&part)
        }
        .map_err(|e| DownloadError::io(&part, e))?;
        let mut body = response.into_body().into_reader();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(DownloadError::Download {
                        url: url.to_string(),
                        message: format!(
                            "transfer interrupted ({e}); the partial file {} is kept and the next \
                             attempt resumes it, or {}",
                            part.display(),
                            by_hand()
                        ),
                    });
                }
            };
            file.write_all(&buf[..n])
                .map_err(|e| DownloadError::io(&part, e))?;
        }
        file.sync_all().map_err(|e| DownloadError::io(&part, e))?;
        drop(file);
        if let Some(actual) = checksum.mismatch(&part)? {
            // Nothing wrong is kept: the next attempt starts from scratch.
            let _ = std::fs::remove_file(&part);
            return Err(DownloadError::Checksum {
                path: dest.to_path_buf(),
                algorithm: checksum.algorithm(),
                expected,
                actual,
            });
        }
        return finish(&part, dest);
    }
}

/// Renames the verified `.part` file to `dest`.
fn finish(part: &Path, dest: &Path) -> Result<PathBuf, DownloadError> {
    std::fs::rename(part, dest).map_err(|e| DownloadError::io(dest, e))?;
    Ok(dest.to_path_buf())
}

/// The first byte position of a `Content-Range: bytes START-END/TOTAL` header.
fn content_range_start(value: &str) -> Option<u64> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (start, _) = rest.split_once('-')?;
    start.trim().parse().ok()
}

/// Unpacks the gzip-compressed tar archive `archive` into the folder `into` (created if missing).
/// Entries that would land outside `into` (absolute paths, `..`) are refused by the `tar` crate.
///
/// # Errors
/// [`DownloadError::Io`] naming the archive when it cannot be read or unpacked.
pub fn extract_tar_gz(archive: &Path, into: &Path) -> Result<(), DownloadError> {
    std::fs::create_dir_all(into).map_err(|e| DownloadError::io(into, e))?;
    let file = File::open(archive).map_err(|e| DownloadError::io(archive, e))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(std::io::BufReader::new(file)));
    tar.unpack(into).map_err(|e| DownloadError::io(archive, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parsing() {
        assert_eq!(content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(content_range_start("bytes  7-9/*"), Some(7));
        assert_eq!(content_range_start("items 1-2/3"), None);
    }

    #[test]
    fn checksums_of_a_known_file() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("abc");
        std::fs::write(&f, b"abc").unwrap();
        let sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_file(&f).unwrap(), sha);
        assert_eq!(
            Checksum::Sha256Prefix("BA7816BF").mismatch(&f).unwrap(),
            None
        );
        assert_eq!(
            Checksum::Sha256Prefix("00000000")
                .mismatch(&f)
                .unwrap()
                .as_deref(),
            Some(sha)
        );
        let md5 = "900150983cd24fb0d6963f7d28e17f72";
        assert_eq!(Checksum::Md5(md5).mismatch(&f).unwrap(), None);
        assert!(Checksum::Md5(sha).mismatch(&f).unwrap().is_some());
        assert_eq!(Checksum::None.mismatch(&f).unwrap(), None);
    }

    #[test]
    fn part_path_appends_suffix() {
        assert_eq!(
            part_path(Path::new("/a/b.tar.gz")),
            PathBuf::from("/a/b.tar.gz.part")
        );
    }
}
