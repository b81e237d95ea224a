//! "Did you mean" suggestions by edit distance.

/// Levenshtein distance between two strings, case-insensitive, counted in characters.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The candidate closest to `input`, if it is close enough to be a likely typo.
pub(crate) fn closest<'a>(
    input: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (input.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (distance(input, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, c)| (*d, *c))
        .map(|(_, c)| c)
}

/// A help text: "did you mean `x`?" when a close candidate exists, else the list of valid values.
pub(crate) fn help_for(input: &str, candidates: &[&str], what: &str) -> String {
    match closest(input, candidates.iter().copied()) {
        Some(c) => format!("did you mean `{c}`?"),
        None if candidates.is_empty() => format!("no {what} is declared"),
        None => {
            let list: Vec<String> = candidates.iter().map(|c| format!("`{c}`")).collect();
            format!("valid {what}: {}", list.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typo_suggests_the_nearest_field() {
        assert_eq!(closest("memroy", ["cores", "memory"]), Some("memory"));
        assert_eq!(
            closest("goldimage", ["goldImage", "placement"]),
            Some("goldImage")
        );
    }

    #[test]
    fn unrelated_word_suggests_nothing() {
        assert_eq!(closest("banana", ["cores", "memory"]), None);
    }
}
