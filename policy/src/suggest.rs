//! "Did you mean": the one typo suggestion for unknown keys, used by `policy.toml` here and by
//! the launcher's `config.toml`.

/// The candidate closest to `unknown`, if it is close enough to be a likely typo: at most two
/// edits, or a third of the candidate's length for long keys (`allowed_network` →
/// `allowed_networks`, `pahts` → `paths`; `zzzzzz` → nothing). Ties go to the earlier candidate.
pub fn did_you_mean<'a>(unknown: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (edit_distance(unknown, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.chars().count() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance, in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_keys_are_suggested_far_ones_are_not() {
        let keys = [
            "egress",
            "allowed_hosts",
            "allowed_networks",
            "paths",
            "uid",
        ];
        assert_eq!(did_you_mean("egres", &keys), Some("egress"));
        assert_eq!(did_you_mean("allowed_host", &keys), Some("allowed_hosts"));
        assert_eq!(
            did_you_mean("alowed_netwrks", &keys),
            Some("allowed_networks")
        );
        assert_eq!(did_you_mean("pahts", &keys), Some("paths"));
        assert_eq!(did_you_mean("zzzzzz", &keys), None);
        assert_eq!(did_you_mean("shell", &["uid", "gid", "home"]), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
