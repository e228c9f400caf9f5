//! The YAML files of `configs/`, embedded in the binary at compile time.
//!
//! Every group option is listed once below; the macro builds both the group table of
//! [`Config::groups`](crate::Config::groups) and the file table from that one list. The test
//! `every_file_is_registered` fails when a file under `configs/` is missing from the list (or
//! the other way round, which is already a compile error of `include_str!`).

/// The primary config file, `configs/defaults.yaml`.
pub(crate) const DEFAULTS: &str = include_str!("../configs/defaults.yaml");

macro_rules! registry {
    ($($group:literal => [$($option:literal),+ $(,)?]),+ $(,)?) => {
        /// Group names and their options, in the order of the table.
        pub(crate) static GROUPS: &[(&str, &[&str])] = &[$(($group, &[$($option),+])),+];

        /// `(group, option, YAML text)` of every group file.
        pub(crate) static FILES: &[(&str, &str, &str)] = &[$($((
            $group,
            $option,
            include_str!(concat!("../configs/", $group, "/", $option, ".yaml")),
        )),+),+];
    };
}

registry! {
    "data" => [
        "cifar10", "tiny_imagenet", "cub", "voc", "newgroups", "cifar100", "folder",
        "mnist", "fashion_mnist",
    ],
    "model" => [
        "resnet34", "resnet50", "resnet101", "resnet110",
        "resnet18_cifar", "resnet34_cifar", "resnet50_cifar", "resnet101_cifar",
        "resnet110_cifar", "resnet152_cifar",
        "resnet18_tiny", "resnet34_tiny", "resnet50_tiny", "resnet101_tiny", "resnet110_tiny",
        "deeplabv3", "global_pooling",
    ],
    "loss" => [
        "ce", "ls", "focal", "focal_adaptive", "logit_margin", "mmce", "penalty_ent",
        "brier", "penalty_l1", "mmce_weighted",
    ],
    "optim" => ["sgd", "adam", "adamw"],
    "scheduler" => ["multi_step", "step", "plateau", "cosine"],
    "wandb" => ["my"],
}

/// Other names accepted for a group option, as `(group, alias, option)`: the 20 Newsgroups
/// set is the reference's `data=newgroups` (its file name), and `ng` is its `data.name`;
/// both select it, and `newgroups` is what is printed.
const ALIASES: &[(&str, &str, &str)] = &[
    ("data", "ng", "newgroups"),
    ("data", "newsgroups", "newgroups"),
];

/// The option an alias stands for (the option itself when it is not an alias).
pub(crate) fn canonical_option<'a>(group: &str, option: &'a str) -> &'a str {
    ALIASES
        .iter()
        .find(|(g, a, _)| *g == group && *a == option)
        .map_or(option, |(_, _, o)| o)
}

/// The method sets of `mbls compare`: `(name, YAML text)` of every `compare/<name>.yaml`.
pub(crate) static COMPARE_SETS: &[(&str, &str)] =
    &[("paper", include_str!("../compare/paper.yaml"))];

/// The YAML text of `configs/<group>/<option>.yaml`.
pub(crate) fn file(group: &str, option: &str) -> Option<&'static str> {
    FILES
        .iter()
        .find(|(g, o, _)| *g == group && *o == option)
        .map(|(_, _, text)| *text)
}

/// The options of a group, or `None` when `group` is not a group.
pub(crate) fn options(group: &str) -> Option<&'static [&'static str]> {
    GROUPS.iter().find(|(g, _)| *g == group).map(|(_, o)| *o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn every_file_is_registered() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        let mut on_disk = Vec::new();
        for entry in std::fs::read_dir(&root).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().into_string().unwrap();
            if entry.file_type().unwrap().is_dir() {
                assert!(
                    options(&name).is_some(),
                    "configs/{name}/ is not a registered group: add it to registry! in src/registry.rs"
                );
                for file in std::fs::read_dir(entry.path()).unwrap() {
                    let file = file.unwrap().file_name().into_string().unwrap();
                    let option = file.strip_suffix(".yaml").unwrap_or_else(|| {
                        panic!("configs/{name}/{file}: config files must end in .yaml")
                    });
                    on_disk.push((name.clone(), option.to_string()));
                }
            } else {
                assert_eq!(name, "defaults.yaml", "unexpected file configs/{name}");
            }
        }
        for (group, option) in &on_disk {
            assert!(
                file(group, option).is_some(),
                "configs/{group}/{option}.yaml is not registered: add \"{option}\" to the \
                 \"{group}\" list of registry! in src/registry.rs"
            );
        }
        assert_eq!(
            on_disk.len(),
            FILES.len(),
            "registered files missing on disk"
        );
    }

    #[test]
    fn every_compare_set_is_registered() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("compare");
        let mut names: Vec<String> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| {
                let n = e.unwrap().file_name().into_string().unwrap();
                n.strip_suffix(".yaml")
                    .unwrap_or_else(|| panic!("compare/{n}: method sets must end in .yaml"))
                    .to_string()
            })
            .collect();
        names.sort();
        let mut registered: Vec<String> = COMPARE_SETS.iter().map(|(n, _)| n.to_string()).collect();
        registered.sort();
        assert_eq!(names, registered, "compare/ and COMPARE_SETS differ");
    }

    #[test]
    fn no_option_is_listed_twice() {
        for (group, options) in GROUPS {
            for (i, o) in options.iter().enumerate() {
                assert!(!options[..i].contains(o), "{group}/{o} listed twice");
            }
        }
    }
}
