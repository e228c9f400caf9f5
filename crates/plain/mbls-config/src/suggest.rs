//! "Did you mean ...?" for unknown keys.

/// Length in characters of the longest common prefix.
fn common_prefix(a: &str, b: &str) -> usize {
    a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count()
}

fn last_segment(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

/// The candidate closest to `key`: by edit distance (`strsim`'s Levenshtein distance, counted in
/// characters) on the whole dotted path when it is small (at most 2, or a third of the key's
/// length), otherwise a candidate whose last segment is within one edit of the key's last segment
/// (`lr` -> `optim.lr`). Ties go to the first candidate.
pub(crate) fn closest(key: &str, candidates: &[String]) -> Option<String> {
    let limit = (key.chars().count() / 3).max(2);
    let best = candidates
        .iter()
        .map(|c| (strsim::levenshtein(key, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, std::cmp::Reverse(common_prefix(key, c))));
    if let Some((_, c)) = best {
        return Some(c.clone());
    }
    let tail = last_segment(key);
    candidates
        .iter()
        .map(|c| (strsim::levenshtein(tail, last_segment(c)), c))
        .filter(|(d, _)| *d <= usize::from(tail.chars().count() > 3))
        .min_by_key(|(d, c)| (*d, c.len()))
        .map(|(_, c)| c.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    /// The distance the suggestions use: insertions, deletions and substitutions, by characters.
    #[test]
    fn distance() {
        use strsim::levenshtein;
        assert_eq!(levenshtein("", "abc"), 3);
        assert_eq!(levenshtein("kitten", "sitting"), 3);
        assert_eq!(levenshtein("margin", "margin"), 0);
        assert_eq!(levenshtein("margn", "margin"), 1);
        assert_eq!(levenshtein("marg\u{e9}n", "margin"), 1);
    }

    #[test]
    fn suggestions() {
        let c = cands(&[
            "loss",
            "loss.margin",
            "loss.alpha",
            "optim",
            "optim.lr",
            "seed",
        ]);
        assert_eq!(closest("loss.margn", &c).as_deref(), Some("loss.margin"));
        assert_eq!(closest("los.alpha", &c).as_deref(), Some("loss.alpha"));
        assert_eq!(closest("lr", &c).as_deref(), Some("optim.lr"));
        assert_eq!(closest("alpah", &c).as_deref(), None);
        assert_eq!(closest("margin", &c).as_deref(), Some("loss.margin"));
        assert_eq!(closest("completely.different", &c), None);
        // Equal distances: the longer common prefix wins.
        let c = cands(&["optim.name", "optim.lr"]);
        assert_eq!(closest("optim.lrate", &c).as_deref(), Some("optim.lr"));
    }
}
