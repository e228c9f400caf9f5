//! Crash-safe writes of files and folders, shared by the mbls crates.
//!
//! Every output that a later run reads back (arrays, checkpoints, plots, run logs, converted
//! datasets) is written so that its name holds either the old content or the complete new one,
//! whatever happens on the way (an error, a full disk, a kill):
//!
//! * [`write_atomic`] and [`write_atomic_path`] write one file: a temporary file with a unique
//!   name in the same folder is written, flushed and synced to disk, then renamed over the
//!   target (a rename within one folder is atomic). On failure the temporary file is removed
//!   and the target is untouched. A target that exists and is not a regular file (a folder, a
//!   device such as `/dev/null`, a pipe) is refused rather than replaced.
//! * [`replace_dir_atomic`] writes a whole folder: it is built as a temporary folder beside the
//!   destination and swapped in only once complete, so a failed build leaves the destination
//!   as it was, and a reader never sees a mix of old and new files.
//!
//! Each function takes the caller's mapping from an I/O error (and the path it concerns) to
//! the caller's error type, so that every caller keeps its own errors.
//!
//! ```
//! use std::io::Write as _;
//! use std::path::Path;
//!
//! fn io(path: &Path, e: std::io::Error) -> String {
//!     format!("{}: {e}", path.display())
//! }
//!
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("notes.txt");
//! mbls_base::fs::write_atomic(&path, io, |w| w.write_all(b"hello\n").map_err(|e| io(&path, e)))
//!     .unwrap();
//! assert_eq!(std::fs::read(&path).unwrap(), b"hello\n");
//!
//! let out = dir.path().join("out");
//! mbls_base::fs::replace_dir_atomic(&out, io, |tmp| {
//!     std::fs::write(tmp.join("a.txt"), b"a").map_err(|e| io(tmp, e))
//! })
//! .unwrap();
//! assert_eq!(std::fs::read(out.join("a.txt")).unwrap(), b"a");
//! ```

#![warn(missing_docs)]

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use tempfile::{NamedTempFile, TempDir, TempPath};

/// Capacity of the buffered writer that [`write_atomic`] hands to its callback (1 MiB).
const BUFFER_CAPACITY: usize = 1 << 20;

/// Characters of the target's name kept in temporary names (a long name plus the random part
/// must stay below the file systems' 255-byte limit).
const NAME_KEPT: usize = 64;

/// Writes the file `path` atomically through `write`, which fills a buffered writer on a
/// temporary file in the same folder. When `path` is a symbolic link, the file it points to
/// is written (atomically, in its own folder) and the link is kept. The writer is flushed and the file synced to disk, then
/// renamed over `path`. If `write` or any step fails, the temporary file is removed and `path`
/// keeps its old content (or stays absent). New files get the permissions `File::create`
/// gives (`0o666` less the umask), not the private ones of temporary files.
///
/// `io_err` turns an I/O failure of this function into the caller's error; it is given `path`
/// (the temporary file is gone by the time an error is reported). Errors of `write` are
/// returned as they are.
///
/// # Errors
/// `io_err(path, _)` when `path` exists and is a folder or not a regular file (a device such as
/// `/dev/null`, a pipe, a socket; `path` is left alone and `write` is not called), when `path`
/// has no file name, or when the temporary file cannot be created, flushed, synced or renamed;
/// the error of `write` when it fails.
pub fn write_atomic<E>(
    path: &Path,
    io_err: impl Fn(&Path, io::Error) -> E,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<(), E>,
) -> Result<(), E> {
    let resolved = through_links(path);
    let path = resolved.as_path();
    let (file, tmp) = temp_file_beside(path)
        .map_err(|e| io_err(path, e))?
        .into_parts();
    let mut w = BufWriter::with_capacity(BUFFER_CAPACITY, file);
    write(&mut w)?;
    let file = w.into_inner().map_err(|e| io_err(path, e.into_error()))?;
    file.sync_all().map_err(|e| io_err(path, e))?;
    drop(file);
    persist(tmp, path).map_err(|e| io_err(path, e))
}

/// Like [`write_atomic`], for writers that take a file name rather than a file handle (libtorch's
/// savers, `std::fs::write`): `write` gets the path of an empty temporary file in the folder of
/// `path` and writes it (replacing or truncating it). The file is then synced and renamed over
/// `path`; on any failure it is removed and `path` keeps its old content.
///
/// # Errors
/// As [`write_atomic`].
pub fn write_atomic_path<E>(
    path: &Path,
    io_err: impl Fn(&Path, io::Error) -> E,
    write: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let resolved = through_links(path);
    let path = resolved.as_path();
    let tmp = temp_file_beside(path)
        .map_err(|e| io_err(path, e))?
        .into_temp_path();
    let tmp_path: &Path = &tmp;
    write(tmp_path)?;
    OpenOptions::new()
        .write(true)
        .open(tmp_path)
        .and_then(|f| f.sync_all())
        .map_err(|e| io_err(path, e))?;
    persist(tmp, path).map_err(|e| io_err(path, e))
}

/// Writes the folder `dest` as a whole: `build` fills a new, empty temporary folder created
/// beside `dest` (same parent, hidden name), and only when it succeeds does that folder take
/// the place of `dest`. An existing `dest` is first renamed aside, the new folder renamed to
/// `dest`, then the old one deleted, so `dest` never holds a mix of old and new files. When
/// `build` fails, the temporary folder is removed and `dest` is left exactly as it was.
/// Missing parent folders of `dest` are created. When `dest` is a symbolic link to a folder,
/// the folder it points to is replaced and the link kept.
///
/// The files of the new folder should be complete and synced when `build` returns (write them
/// with [`write_atomic`], for instance). A crash between the two renames leaves the previous
/// folder under a hidden name beside `dest` (`.<name>.old-…`).
///
/// # Errors
/// `io_err(dest, _)` when `dest` exists and is not a folder (nothing is built), when the
/// temporary folder cannot be created or either rename fails (the previous folder is moved
/// back; if even that fails, the error says where it is); `io_err(parent, _)` when a missing
/// parent folder cannot be created; the error of `build` when it fails.
pub fn replace_dir_atomic<E>(
    dest: &Path,
    io_err: impl Fn(&Path, io::Error) -> E,
    build: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let target = dir_target(dest).map_err(|e| io_err(dest, e))?;
    let parent = parent_dir(&target);
    fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
    let prefix = temp_prefix(&target).map_err(|e| io_err(dest, e))?;
    let tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .tempdir_in(parent)
        .map_err(|e| io_err(dest, e))?;
    build(tmp.path())?;
    swap_in(tmp, &target, &prefix).map_err(|e| io_err(dest, e))
}

/// The folder of `path`, `.` for a bare file name.
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// `.<name>.`, the start of the temporary names made for `path`.
fn temp_prefix(path: &Path) -> io::Result<String> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not a file or folder name"))?;
    let short: String = name.to_string_lossy().chars().take(NAME_KEPT).collect();
    Ok(format!(".{short}."))
}

/// The file a write to `path` goes to: `path` itself, or, when `path` is a symbolic link
/// (possibly to another link), the file it finally names, so that writing to a link updates
/// the file it points to (as `>` in a shell does) and the link stays. At most 40 links are
/// followed (as Linux does); a dangling link names the file it would point to.
fn through_links(path: &Path) -> PathBuf {
    let mut p = path.to_path_buf();
    for _ in 0..40 {
        let is_link = fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink());
        if !is_link {
            break;
        }
        let Ok(target) = fs::read_link(&p) else {
            break;
        };
        p = if target.is_absolute() {
            target
        } else {
            parent_dir(&p).join(target)
        };
    }
    p
}

/// Refuses to replace anything but a regular file (or a link to one).
fn refuse_non_file(path: &Path) -> io::Result<()> {
    match fs::metadata(path) {
        Ok(m) if m.is_dir() => Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            "is a folder, not a file: refusing to replace it",
        )),
        Ok(m) if !m.is_file() => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "is not a regular file (a device, pipe or socket): refusing to replace it",
        )),
        // Absent (or not inspectable): creating the temporary file reports real problems.
        _ => Ok(()),
    }
}

/// A new temporary file in the folder of `path`, readable like one `File::create` makes.
fn temp_file_beside(path: &Path) -> io::Result<NamedTempFile> {
    refuse_non_file(path)?;
    let prefix = temp_prefix(path)?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        // Like `File::create`: 0o666 less the umask, not tempfile's private 0o600.
        builder.permissions(fs::Permissions::from_mode(0o666));
    }
    builder.tempfile_in(parent_dir(path))
}

/// Renames the complete temporary file `tmp` over `path` (removing it if that fails) and
/// syncs the folder so that the rename itself survives a crash.
fn persist(tmp: TempPath, path: &Path) -> io::Result<()> {
    tmp.persist(path).map_err(|e| e.error)?;
    sync_dir(parent_dir(path));
    Ok(())
}

/// Syncs a folder's entries to disk (best effort: not every platform can open a folder).
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// The folder [`replace_dir_atomic`] replaces for `dest`: `dest` itself, or the folder a link
/// points to. Errors when `dest` exists and is not a folder.
fn dir_target(dest: &Path) -> io::Result<PathBuf> {
    let meta = match fs::symlink_metadata(dest) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(dest.to_path_buf()),
        Err(e) => return Err(e),
    };
    let not_a_folder = || {
        io::Error::new(
            io::ErrorKind::NotADirectory,
            "exists and is not a folder: refusing to replace it",
        )
    };
    if meta.file_type().is_symlink() {
        // Replace the folder the link points to, keeping the link (and the folder's disk).
        let real = fs::canonicalize(dest)?;
        return if real.is_dir() {
            Ok(real)
        } else {
            Err(not_a_folder())
        };
    }
    if meta.is_dir() {
        Ok(dest.to_path_buf())
    } else {
        Err(not_a_folder())
    }
}

/// A name beside the target, `<prefix>old-<pid>-<n>`, that nothing uses yet.
fn unused_sibling(parent: &Path, prefix: &str) -> io::Result<PathBuf> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    for _ in 0..1000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let candidate = parent.join(format!("{prefix}old-{}-{n}", std::process::id()));
        match fs::symlink_metadata(&candidate) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(candidate),
            Err(e) => return Err(e),
            Ok(_) => {}
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        "no free name beside it for the previous folder",
    ))
}

/// Puts the complete folder `new` in the place of `target` (see [`replace_dir_atomic`]).
fn swap_in(new: TempDir, target: &Path, prefix: &str) -> io::Result<()> {
    let parent = parent_dir(target);
    sync_dir(new.path());
    let old = match fs::symlink_metadata(target) {
        Ok(_) => {
            let aside = unused_sibling(parent, prefix)?;
            fs::rename(target, &aside)?;
            Some(aside)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    if let Err(e) = fs::rename(new.path(), target) {
        // `new` is removed when dropped; the previous folder goes back to its name.
        let Some(aside) = old else {
            return Err(e);
        };
        return match fs::rename(&aside, target) {
            Ok(()) => Err(e),
            Err(back) => Err(io::Error::new(
                e.kind(),
                format!(
                    "{e}; moving the previous folder back from {} failed too: {back}",
                    aside.display()
                ),
            )),
        };
    }
    // The new folder lives at `target` now: nothing to clean up under its temporary name.
    let _ = new.keep();
    sync_dir(parent);
    if let Some(aside) = old {
        // Best effort: the new folder is in place whatever happens here.
        let _ = fs::remove_dir_all(&aside);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::io::Write as _;

    fn to_text(path: &Path, e: io::Error) -> String {
        format!("{}: {e}", path.display())
    }

    /// Names in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// Every entry under `dir` (relative path -> bytes; `None` for folders).
    fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
        fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Option<Vec<u8>>>) {
            for entry in fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                let rel = path.strip_prefix(root).unwrap().to_path_buf();
                if path.is_dir() {
                    out.insert(rel, None);
                    walk(root, &path, out);
                } else {
                    out.insert(rel, Some(fs::read(&path).unwrap()));
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(dir, dir, &mut out);
        out
    }

    /// `dir` with `a.txt`, `stale.txt` and `sub/b.bin`.
    fn old_folder(dir: &Path) {
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(dir.join("a.txt"), b"old a").unwrap();
        fs::write(dir.join("stale.txt"), b"stale").unwrap();
        fs::write(dir.join("sub/b.bin"), [0u8, 1, 2, 255]).unwrap();
    }

    #[test]
    fn writes_and_replaces_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.bin");
        write_atomic(&path, to_text, |w| {
            w.write_all(b"first").map_err(|e| to_text(&path, e))
        })
        .unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"first");
        write_atomic(&path, to_text, |w| {
            w.write_all(b"second").map_err(|e| to_text(&path, e))
        })
        .unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        // No temporary files left behind.
        assert_eq!(names(dir.path()), ["x.bin"]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_ne!(
                mode & 0o044,
                0,
                "files should be readable like File::create's"
            );
        }
    }

    #[test]
    fn failed_write_leaves_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.bin");
        fs::write(&path, b"old").unwrap();
        let err = write_atomic(&path, to_text, |w| {
            w.write_all(&vec![7u8; 3 << 20]).unwrap();
            Err("stop".to_string())
        })
        .unwrap_err();
        assert_eq!(err, "stop");
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(names(dir.path()), ["x.bin"]);
        // Nothing is created either when the target was absent.
        let fresh = dir.path().join("fresh.bin");
        let err = write_atomic(&fresh, to_text, |_| Err("stop".to_string())).unwrap_err();
        assert_eq!(err, "stop");
        assert_eq!(names(dir.path()), ["x.bin"]);
    }

    #[derive(Debug)]
    enum E {
        Io,
        Stop,
    }

    #[test]
    fn path_writer_leaves_no_temp_on_failure() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.bin");
        fs::write(&path, b"old").unwrap();
        let err = write_atomic_path(
            &path,
            |_, _| E::Io,
            |tmp| {
                fs::write(tmp, b"partial").unwrap();
                Err(E::Stop)
            },
        )
        .unwrap_err();
        assert!(matches!(err, E::Stop));
        assert_eq!(fs::read(&path).unwrap(), b"old");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        write_atomic_path(
            &path,
            |_, _| E::Io,
            |tmp| fs::write(tmp, b"ok").map_err(|_| E::Io),
        )
        .unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"ok");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn the_temporary_file_is_beside_the_target() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.bin");
        write_atomic_path(&path, to_text, |tmp| {
            assert_eq!(tmp.parent(), Some(dir.path()));
            let name = tmp.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                name.starts_with(".x.bin.") && name.ends_with(".tmp"),
                "{name}"
            );
            fs::write(tmp, b"ok").map_err(|e| to_text(tmp, e))
        })
        .unwrap();
        assert_eq!(names(dir.path()), ["x.bin"]);
    }

    #[test]
    fn refuses_to_replace_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.bin");
        old_folder(&path);
        let before = snapshot(dir.path());
        let mut called = false;
        let err = write_atomic(&path, to_text, |_| {
            called = true;
            Ok(())
        })
        .unwrap_err();
        assert!(!called);
        assert!(
            err.contains("x.bin") && err.contains("is a folder"),
            "{err}"
        );
        let err = write_atomic_path(&path, to_text, |_| Ok(())).unwrap_err();
        assert!(err.contains("is a folder"), "{err}");
        assert_eq!(snapshot(dir.path()), before);
    }

    #[cfg(unix)]
    #[test]
    fn refuses_to_replace_a_device() {
        use std::os::unix::fs::FileTypeExt as _;
        let null = Path::new("/dev/null");
        if !fs::metadata(null).is_ok_and(|m| m.file_type().is_char_device()) {
            return;
        }
        let mut called = false;
        let err = write_atomic(null, to_text, |_| {
            called = true;
            Ok(())
        })
        .unwrap_err();
        assert!(!called);
        assert!(
            err.contains("/dev/null") && err.contains("not a regular file"),
            "{err}"
        );
        assert!(fs::metadata(null).unwrap().file_type().is_char_device());
    }

    #[test]
    fn no_file_name_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_atomic(&dir.path().join("missing/.."), to_text, |_| Ok(())).unwrap_err();
        assert!(err.contains("not a file or folder name"), "{err}");
    }

    #[test]
    fn builds_a_new_folder() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("nested/out");
        replace_dir_atomic(&dest, to_text, |tmp| {
            assert_eq!(tmp.parent(), dest.parent());
            let name = tmp.file_name().unwrap().to_string_lossy().into_owned();
            assert!(
                name.starts_with(".out.") && name.ends_with(".tmp"),
                "{name}"
            );
            assert_eq!(fs::read_dir(tmp).unwrap().count(), 0);
            fs::write(tmp.join("a.txt"), b"new a").map_err(|e| to_text(tmp, e))
        })
        .unwrap();
        assert_eq!(names(&dest), ["a.txt"]);
        assert_eq!(fs::read(dest.join("a.txt")).unwrap(), b"new a");
        assert_eq!(names(&dir.path().join("nested")), ["out"]);
    }

    #[test]
    fn replaces_an_old_folder_whole() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        old_folder(&dest);
        replace_dir_atomic(&dest, to_text, |tmp| {
            fs::write(tmp.join("a.txt"), b"new a").map_err(|e| to_text(tmp, e))?;
            write_atomic(&tmp.join("c.txt"), to_text, |w| {
                w.write_all(b"c").map_err(|e| to_text(tmp, e))
            })
        })
        .unwrap();
        let expected: BTreeMap<PathBuf, Option<Vec<u8>>> = [
            (PathBuf::from("a.txt"), Some(b"new a".to_vec())),
            (PathBuf::from("c.txt"), Some(b"c".to_vec())),
        ]
        .into_iter()
        .collect();
        assert_eq!(snapshot(&dest), expected);
        // Neither the temporary folder nor the previous one is left beside it.
        assert_eq!(names(dir.path()), ["out"]);
    }

    #[test]
    fn failed_build_leaves_the_old_folder() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        old_folder(&dest);
        let before = snapshot(dir.path());
        let err = replace_dir_atomic(&dest, to_text, |tmp| {
            fs::write(tmp.join("a.txt"), b"half-written").unwrap();
            fs::create_dir(tmp.join("sub")).unwrap();
            Err("stop".to_string())
        })
        .unwrap_err();
        assert_eq!(err, "stop");
        assert_eq!(snapshot(dir.path()), before);
        // An absent destination stays absent.
        let fresh = dir.path().join("fresh");
        let err = replace_dir_atomic(&fresh, to_text, |tmp| {
            fs::write(tmp.join("a.txt"), b"x").unwrap();
            Err("stop".to_string())
        })
        .unwrap_err();
        assert_eq!(err, "stop");
        assert!(!fresh.exists());
        assert_eq!(snapshot(dir.path()), before);
    }

    #[test]
    fn refuses_to_replace_a_file_by_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out");
        fs::write(&dest, b"a file").unwrap();
        let mut called = false;
        let err = replace_dir_atomic(&dest, to_text, |_| {
            called = true;
            Ok(())
        })
        .unwrap_err();
        assert!(!called);
        assert!(err.contains("out") && err.contains("not a folder"), "{err}");
        assert_eq!(fs::read(&dest).unwrap(), b"a file");
        assert_eq!(names(dir.path()), ["out"]);
    }

    #[cfg(unix)]
    #[test]
    fn a_linked_folder_is_replaced_through_the_link() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        old_folder(&real);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        replace_dir_atomic(&link, to_text, |tmp| {
            fs::write(tmp.join("n.txt"), b"n").map_err(|e| to_text(tmp, e))
        })
        .unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(names(&real), ["n.txt"]);
        assert_eq!(names(&link), ["n.txt"]);
        assert_eq!(names(dir.path()), ["link", "real"]);
    }

    #[cfg(unix)]
    #[test]
    fn writes_go_through_symbolic_links() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("sub").join("real.txt");
        fs::create_dir_all(real.parent().unwrap()).unwrap();
        fs::write(&real, b"old").unwrap();
        let link = dir.path().join("link.txt");
        std::os::unix::fs::symlink("sub/real.txt", &link).unwrap();
        let io = |p: &Path, e: io::Error| format!("{}: {e}", p.display());
        write_atomic(&link, io, |w| {
            use std::io::Write as _;
            w.write_all(b"new").map_err(|e| e.to_string())
        })
        .unwrap();
        assert!(
            fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(fs::read(&real).unwrap(), b"new");
        write_atomic_path(&link, io, |t| {
            fs::write(t, b"newer").map_err(|e| e.to_string())
        })
        .unwrap();
        assert_eq!(fs::read(&real).unwrap(), b"newer");
        // a link to a device is refused, and the device left alone
        let dev = dir.path().join("null-link");
        std::os::unix::fs::symlink("/dev/null", &dev).unwrap();
        let e = write_atomic(&dev, io, |_| Ok(())).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
        assert!(std::os::unix::fs::FileTypeExt::is_char_device(
            &fs::metadata("/dev/null").unwrap().file_type()
        ));
    }
}
