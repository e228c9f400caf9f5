//! User folders of group option files (`--config-dir DIR`, as Hydra's `--config-dir`).
//!
//! A folder holds `<group>/<option>.yaml` files laid out as the built-in `configs/`: a file
//! whose option exists replaces the built-in one, a new option extends the group. The
//! folder's files are read and parsed once, when it is loaded, so that a bad file is reported
//! with its path before anything runs.

use crate::error::ConfigError;
use crate::registry;
use crate::suggest;
use crate::value::Value;
use std::path::{Path, PathBuf};

/// The largest group file read from a user folder.
const MAX_FILE_BYTES: u64 = 1 << 20;
/// The most group files read from one user folder.
const MAX_FILES: usize = 10_000;

/// One group option file of a user folder.
#[derive(Debug, Clone, PartialEq)]
struct UserFile {
    group: String,
    option: String,
    path: PathBuf,
    value: Value,
}

/// Group option files from user folders, consulted before the built-in ones by
/// [`Config::compose_with`](crate::Config::compose_with).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UserConfigs {
    files: Vec<UserFile>,
}

impl UserConfigs {
    /// No user files: the built-in configuration only.
    pub fn none() -> Self {
        UserConfigs::default()
    }

    /// Reads the group folders of `dir` (`dir/<group>/<option>.yaml`). Files of a folder
    /// loaded later replace those of an earlier one.
    ///
    /// # Errors
    /// [`ConfigError::UserFile`] naming the path: a missing or unreadable folder, a subfolder
    /// that is not a config group (with the closest group), a YAML file at the top of `dir`
    /// (only group folders are read), a file that is not YAML, larger than 1 MiB, or whose
    /// content is not a mapping, an option name with characters other than letters, digits,
    /// `_`, `-` and `.`.
    pub fn load(&mut self, dir: &Path) -> Result<(), ConfigError> {
        let err = |path: &Path, message: String| ConfigError::UserFile {
            path: path.display().to_string(),
            message,
        };
        let entries = std::fs::read_dir(dir).map_err(|e| err(dir, format!("--config-dir: {e}")))?;
        let mut found = Vec::new();
        let mut names: Vec<(String, PathBuf, bool)> = Vec::new();
        for e in entries {
            let e = e.map_err(|e| err(dir, e.to_string()))?;
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            let is_dir = path.is_dir();
            names.push((name, path, is_dir));
        }
        names.sort();
        let groups: Vec<String> = registry::GROUPS
            .iter()
            .map(|(g, _)| g.to_string())
            .collect();
        for (name, path, is_dir) in names {
            if name.starts_with('.') {
                continue;
            }
            if !is_dir {
                if name.ends_with(".yaml") || name.ends_with(".yml") {
                    return Err(err(
                        &path,
                        format!(
                            "only group folders are read from a config folder ({}/<option>.yaml)",
                            groups.join("/, ")
                        ),
                    ));
                }
                continue;
            }
            if registry::options(&name).is_none() {
                let hint = suggest::closest(&name, &groups)
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                return Err(err(
                    &path,
                    format!(
                        "not a config group{hint}; the groups are {}",
                        groups.join(", ")
                    ),
                ));
            }
            let mut files: Vec<PathBuf> = std::fs::read_dir(&path)
                .map_err(|e| err(&path, e.to_string()))?
                .filter_map(|f| f.ok().map(|f| f.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
                .collect();
            files.sort();
            for file in files {
                if found.len() >= MAX_FILES {
                    return Err(err(dir, format!("more than {MAX_FILES} group files")));
                }
                let option = file
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if option.is_empty()
                    || !option
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
                {
                    return Err(err(
                        &file,
                        "an option name is made of letters, digits, `_`, `-` and `.`".into(),
                    ));
                }
                let len = std::fs::metadata(&file)
                    .map_err(|e| err(&file, e.to_string()))?
                    .len();
                if len > MAX_FILE_BYTES {
                    return Err(err(
                        &file,
                        format!("{len} bytes; a group file is at most 1 MiB"),
                    ));
                }
                let text = std::fs::read_to_string(&file).map_err(|e| err(&file, e.to_string()))?;
                let value = match Value::parse_document(&text) {
                    Ok(v @ Value::Map(_)) => v,
                    Ok(Value::Null) => Value::Map(Vec::new()),
                    Ok(other) => {
                        return Err(err(
                            &file,
                            format!("expected a mapping of keys, found {}", other.type_name()),
                        ));
                    }
                    Err(reason) => return Err(err(&file, reason)),
                };
                found.push(UserFile {
                    group: name.clone(),
                    option,
                    path: file,
                    value,
                });
            }
        }
        for f in found {
            self.files
                .retain(|g| !(g.group == f.group && g.option == f.option));
            self.files.push(f);
        }
        Ok(())
    }

    /// The options of `group`: the built-in ones, then the user folders' new ones.
    pub fn options(&self, group: &str) -> Vec<String> {
        let mut out: Vec<String> = registry::options(group)
            .unwrap_or_default()
            .iter()
            .map(|s| s.to_string())
            .collect();
        for f in self.files.iter().filter(|f| f.group == group) {
            if !out.contains(&f.option) {
                out.push(f.option.clone());
            }
        }
        out
    }

    /// The user file for `group=option`, when a user folder has one.
    pub(crate) fn get(&self, group: &str, option: &str) -> Option<&Value> {
        self.files
            .iter()
            .find(|f| f.group == group && f.option == option)
            .map(|f| &f.value)
    }

    /// Where `group=option` comes from, when a user folder provides it.
    pub fn source(&self, group: &str, option: &str) -> Option<&Path> {
        self.files
            .iter()
            .find(|f| f.group == group && f.option == option)
            .map(|f| f.path.as_path())
    }

    /// True when no user file is loaded.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    fn write(dir: &Path, rel: &str, text: &str) {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }

    #[test]
    fn user_files_replace_and_extend_the_built_in_options() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        // a new loss option, and the built-in `sgd` replaced
        write(
            d,
            "loss/mbls_m5.yaml",
            "name: logit_margin\nmargin: 5.0\nalpha: 0.2\n",
        );
        write(d, "optim/sgd.yaml", "name: sgd\nlr: 0.3\nmomentum: 0.5\n");
        write(d, "notes.txt", "not read");
        let mut user = UserConfigs::none();
        user.load(d).unwrap();
        assert!(user.options("loss").contains(&"mbls_m5".to_string()));
        assert!(user.options("loss").contains(&"ce".to_string()));
        assert!(user.source("optim", "sgd").is_some());
        let c = Config::compose_with(&["loss=mbls_m5", "loss.alpha=0.3"], &user).unwrap();
        assert_eq!(c.group("loss"), "mbls_m5");
        assert_eq!(c.get_str("loss.name").unwrap(), "logit_margin");
        assert_eq!(c.get_f64("loss.margin").unwrap(), 5.0);
        assert_eq!(c.get_f64("loss.alpha").unwrap(), 0.3);
        assert_eq!(c.get_f64("optim.lr").unwrap(), 0.3);
        // the replaced file is the whole option: its missing keys are missing
        assert!(c.get("optim.weight_decay").is_none());
        // without the folder, the option does not exist
        let e = Config::compose(&["loss=mbls_m5"]).unwrap_err().to_string();
        assert!(e.contains("mbls_m5") && e.contains("logit_margin"), "{e}");
        // a later folder wins
        let d2 = tempfile::tempdir().unwrap();
        write(
            d2.path(),
            "loss/mbls_m5.yaml",
            "name: logit_margin\nmargin: 7.0\n",
        );
        user.load(d2.path()).unwrap();
        let c = Config::compose_with(&["loss=mbls_m5"], &user).unwrap();
        assert_eq!(c.get_f64("loss.margin").unwrap(), 7.0);
    }

    #[test]
    fn bad_folders_and_files_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        let load = |dir: &Path| {
            let mut u = UserConfigs::none();
            u.load(dir).map(|_| u).unwrap_err().to_string()
        };
        let e = load(&d.join("missing"));
        assert!(e.contains("missing") && e.contains("--config-dir"), "{e}");

        write(d, "los/x.yaml", "a: 1\n");
        let e = load(d);
        assert!(
            e.contains("los") && e.contains("did you mean `loss`"),
            "{e}"
        );
        std::fs::remove_dir_all(d.join("los")).unwrap();

        write(d, "defaults.yaml", "seed: 3\n");
        let e = load(d);
        assert!(
            e.contains("defaults.yaml") && e.contains("only group folders"),
            "{e}"
        );
        std::fs::remove_file(d.join("defaults.yaml")).unwrap();

        write(d, "loss/bad.yaml", "margin: [1, 2\n");
        let e = load(d);
        assert!(e.contains("bad.yaml"), "{e}");
        write(d, "loss/bad.yaml", "- 1\n- 2\n");
        let e = load(d);
        assert!(e.contains("bad.yaml") && e.contains("mapping"), "{e}");
        std::fs::remove_file(d.join("loss/bad.yaml")).unwrap();

        write(d, "loss/a b.yaml", "name: ce\n");
        let e = load(d);
        assert!(e.contains("a b.yaml") && e.contains("option name"), "{e}");
        std::fs::remove_file(d.join("loss/a b.yaml")).unwrap();

        std::fs::write(
            d.join("loss/big.yaml"),
            vec![b'#'; (MAX_FILE_BYTES + 1) as usize],
        )
        .unwrap();
        let e = load(d);
        assert!(e.contains("big.yaml") && e.contains("1 MiB"), "{e}");
    }
}
