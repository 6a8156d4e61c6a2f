//! "Did you mean …?": the closest known name to a misspelt one, by edit
//! distance, so diagnostics can offer the likely fix.

/// Edit distance between two strings, counted in chars: insertions,
/// deletions, substitutions and swaps of two neighbours (the optimal string
/// alignment distance), so the common typo `smi` for `sim` is one edit.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows: two back (for swaps), previous, current.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 0..a.len() {
        cur[0] = i + 1;
        for j in 0..b.len() {
            let substitution = prev[j] + usize::from(a[i] != b[j]);
            let mut d = substitution.min(prev[j + 1] + 1).min(cur[j] + 1);
            if i > 0 && j > 0 && a[i] == b[j - 1] && a[i - 1] == b[j] {
                d = d.min(before[j - 1] + 1);
            }
            cur[j + 1] = d;
        }
        std::mem::swap(&mut before, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The candidate closest to `word`, if it is close enough to be a likely
/// typo: at most a third of the word's length (at least one edit) away.
/// Ties go to the first candidate.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let max = (word.chars().count() / 3).max(1);
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        if candidate == word {
            continue;
        }
        // Cheap bound first: the length difference is a lower bound.
        let len_diff = word.chars().count().abs_diff(candidate.chars().count());
        if len_diff > max {
            continue;
        }
        let d = edit_distance(word, candidate);
        if d <= max && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, candidate));
        }
    }
    best.map(|(_, c)| c)
}

/// `did you mean `x`?` as a help line, if there is a close candidate.
pub fn help_did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    did_you_mean(word, candidates).map(|c| format!("did you mean `{c}`?"))
}

/// `a, b, c` with each name in backticks, for "known names are …" lines.
pub fn list(names: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    let items: Vec<String> = names
        .into_iter()
        .map(|n| format!("`{}`", n.as_ref()))
        .collect();
    if items.is_empty() {
        "(none)".to_string()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("", ""), 0);
        assert_eq!(edit_distance("abc", ""), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("path", "paht"), 1);
        assert_eq!(edit_distance("smi", "sim"), 1);
        assert_eq!(edit_distance("ca", "abc"), 3);
        assert_eq!(edit_distance("héllo", "hello"), 1);
    }

    #[test]
    fn suggestions() {
        let known = ["path", "content", "mode"];
        assert_eq!(did_you_mean("pth", known), Some("path"));
        assert_eq!(did_you_mean("contnet", known), Some("content"));
        assert_eq!(did_you_mean("zzzzzz", known), None);
        assert_eq!(did_you_mean("path", known), None);
        assert_eq!(list(["a", "b"]), "`a`, `b`");
        assert_eq!(list(Vec::<String>::new()), "(none)");
    }
}
