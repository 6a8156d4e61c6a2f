//! The parse of a large stack file in groups of tables.
//!
//! The TOML parser lexes a whole document into a vector of tokens, turns
//! those into a vector of events, then builds tables that borrow the text;
//! only then does [`super::raw`] convert them. At 100,000 resources those
//! three are most of a plan's memory while it parses (and memory touched
//! for the first time is what a plan pays most for). So a large file is
//! cut, at lines that open a top-level table (`[a.b.c]` at the start of a
//! line), into groups of about [`GROUP_BYTES`]; each group is parsed on
//! its own and converted at once, and the converted trees are merged.
//!
//! A group starts at a table header, so it means on its own what it means
//! in the file: a cut inside a multi-line string, array or inline table
//! leaves the group before it with that construct unclosed, which does not
//! parse. Merging gives the file's tree only where groups share nothing
//! but tables that headers imply (`resource` and `resource.TYPE` above
//! `[resource.TYPE.NAME]`). So the header lines are read first, and
//! [`parse`] gives up (returns `None`) unless:
//! - every line starting with `[` is a plain header: bare keys joined by
//!   dots, no spaces, then only a comment (no arrays of tables);
//! - each of those lines is a header for the parser too: a table of its
//!   group's tree starts there (a header-looking line inside a multi-line
//!   string is not);
//! - no header of one group is a header of another, or the prefix of one
//!   (`[a]` and `[a.b]` in different groups);
//! - two groups have a key in common only where it is a prefix of a
//!   header in both (a table the headers imply, or one a body extends
//!   with a header in the same group, which the parser has checked);
//! - every group parses, and no value is out of range.
//!
//! Then the caller parses the whole text as before, which also gives the
//! same messages for a file that is not valid TOML. The spans of every
//! value are the whole file's: each group's are moved by where it starts,
//! and a key that several groups share keeps its first one, as the parser
//! gives it. The tests below check that the two parses give the same tree
//! wherever this one gives one, on the shipped stacks, on generated ones
//! and on random documents built to trip it.

use std::collections::{HashMap, HashSet};

use toml::de::DeTable;

use super::raw::{self, RawKind, RawTable};

/// About how many bytes of the file each group holds (it ends at the first
/// header past them).
pub const GROUP_BYTES: usize = 64 * 1024;

/// A table header line.
struct Header<'t> {
    /// Where the line starts.
    line: usize,
    /// Where its `[` is.
    at: usize,
    /// The dotted key, as written (no spaces).
    path: &'t str,
}

/// The root table of `text`, parsed in groups of about `group_bytes`;
/// `None` where the groups could mean something else than the whole file,
/// or where anything does not parse (see the module docs).
pub fn parse(text: &str, group_bytes: usize) -> Option<RawTable> {
    let headers = headers(text)?;
    // Group starts, and each header's group.
    let mut starts = vec![0usize];
    let mut group_of = Vec::with_capacity(headers.len());
    for h in &headers {
        let start = *starts.last().unwrap_or(&0);
        if h.at == h.line && h.line > start && h.line - start >= group_bytes {
            starts.push(h.line);
        }
        group_of.push(starts.len() as u32 - 1);
    }
    let implied = implied_tables(&headers, &group_of)?;

    let mut root = RawTable::default();
    let mut indexes: HashMap<String, HashMap<String, usize>> = HashMap::new();
    let mut headers = headers.iter().peekable();
    let mut tables = HashSet::new();
    for (g, &start) in starts.iter().enumerate() {
        let end = starts.get(g + 1).copied().unwrap_or(text.len());
        let doc = DeTable::parse(&text[start..end]).ok()?;
        let mut problems = Vec::new();
        let table = raw::table_from(doc.get_ref(), 0..0, start, &mut problems);
        drop(doc);
        if !problems.is_empty() {
            return None;
        }
        // Each header line of the group is where one of its tables starts.
        tables.clear();
        table_starts(&table, &mut tables);
        while let Some(h) = headers.next_if(|h| h.at < end) {
            if !tables.contains(&h.at) {
                return None;
            }
        }
        merge(&mut root, "", table, g as u32, &implied, &mut indexes)?;
    }
    Some(root)
}

/// Where the tables of `table` start (their span: a header table's is its
/// `[header]`, other tables' start at a key or a `{`).
fn table_starts(table: &RawTable, out: &mut HashSet<usize>) {
    for entry in &table.entries {
        if let RawKind::Table(t) = &entry.value.kind {
            out.insert(t.span.start);
            table_starts(t, out);
        }
    }
}

/// Every table header of `text`, in order; `None` if a line starts with
/// `[` but is not a plain header.
fn headers(text: &str) -> Option<Vec<Header<'_>>> {
    let mut out = Vec::new();
    let mut line = 0;
    for l in text.split_inclusive('\n') {
        let body = l.trim_start_matches([' ', '\t']);
        if body.starts_with('[') {
            out.push(Header {
                line,
                at: line + (l.len() - body.len()),
                path: header_path(body)?,
            });
        }
        line += l.len();
    }
    Some(out)
}

/// The dotted key of a header line (from its `[`); `None` unless it is a
/// plain table header.
fn header_path(line: &str) -> Option<&str> {
    let rest = line.strip_prefix('[')?;
    let len = rest.find(']')?;
    let path = &rest[..len];
    let bare = |seg: &str| {
        !seg.is_empty()
            && seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    if !path.split('.').all(bare) {
        return None;
    }
    let after = rest[len + 1..].trim_start_matches([' ', '\t']);
    let after = after.strip_suffix('\n').unwrap_or(after);
    let after = after.strip_suffix('\r').unwrap_or(after);
    (after.is_empty() || after.starts_with('#')).then_some(path)
}

/// The tables headers imply: (prefix, group) for every strict prefix of a
/// header, and the first group of each. `None` if a header of one group is
/// a header, or the prefix of a header, of another.
struct Implied<'t> {
    in_group: HashSet<(&'t str, u32)>,
    first: HashMap<&'t str, u32>,
}

fn implied_tables<'t>(headers: &[Header<'t>], group_of: &[u32]) -> Option<Implied<'t>> {
    let mut by_path: HashMap<&str, u32> = HashMap::with_capacity(headers.len());
    for (h, &g) in headers.iter().zip(group_of) {
        // The same header twice in one group is the parser's to judge.
        if by_path.insert(h.path, g).is_some_and(|other| other != g) {
            return None;
        }
    }
    let mut implied = Implied {
        in_group: HashSet::new(),
        first: HashMap::new(),
    };
    for (h, &g) in headers.iter().zip(group_of) {
        for (i, _) in h.path.match_indices('.') {
            let prefix = &h.path[..i];
            if by_path.get(prefix).is_some_and(|&other| other != g) {
                return None;
            }
            implied.in_group.insert((prefix, g));
            implied.first.entry(prefix).or_insert(g);
        }
    }
    Some(implied)
}

/// Merges group `g`'s table into the table at `path` (dotted; "" for the
/// root) of the groups before it. `None` where they share a key that is
/// not a table implied by headers of both.
fn merge(
    into: &mut RawTable,
    path: &str,
    from: RawTable,
    g: u32,
    implied: &Implied<'_>,
    indexes: &mut HashMap<String, HashMap<String, usize>>,
) -> Option<()> {
    let mut index = indexes.remove(path).unwrap_or_else(|| {
        into.entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.key.clone(), i))
            .collect()
    });
    for entry in from.entries {
        let Some(&at) = index.get(&entry.key) else {
            index.insert(entry.key.clone(), into.entries.len());
            into.entries.push(entry);
            continue;
        };
        let child = if path.is_empty() {
            entry.key.clone()
        } else {
            format!("{path}.{}", entry.key)
        };
        let shared = implied.in_group.contains(&(child.as_str(), g))
            && implied.first.get(child.as_str()).is_some_and(|&f| f < g);
        let (true, RawKind::Table(from_child), RawKind::Table(into_child)) =
            (shared, entry.value.kind, &mut into.entries[at].value.kind)
        else {
            return None;
        };
        merge(into_child, &child, from_child, g, implied, indexes)?;
    }
    indexes.insert(path.to_string(), index);
    Some(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The whole text parsed at once, as `Debug` (spans included).
    fn whole(text: &str) -> Option<String> {
        let doc = DeTable::parse(text).ok()?;
        let mut problems = Vec::new();
        let table = raw::table_from(doc.get_ref(), 0..0, 0, &mut problems);
        problems.is_empty().then(|| format!("{table:?}"))
    }

    /// Parses `text` in groups of each size; each parse that gives a tree
    /// must give the whole parse's. Returns how many gave one.
    fn agrees(text: &str) -> usize {
        let expected = whole(text);
        let mut parsed = 0;
        for size in [0, 1, 40, 300, 4096, usize::MAX] {
            if let Some(table) = parse(text, size) {
                let Some(expected) = &expected else {
                    panic!("groups of {size} parse what the whole does not:\n{text}");
                };
                assert_eq!(&format!("{table:?}"), expected, "groups of {size}:\n{text}");
                parsed += 1;
            }
        }
        parsed
    }

    #[test]
    fn reads_plain_headers_and_refuses_the_rest() {
        assert_eq!(header_path("[a.b-c.d_e]\n"), Some("a.b-c.d_e"));
        assert_eq!(header_path("[a.b] # x\r\n"), Some("a.b"));
        assert_eq!(header_path("[a]"), Some("a"));
        for line in [
            "[a . b]",
            "[\"a\".b]",
            "[a]x",
            "[a]]",
            "[[a]]",
            "[]",
            "[a.]",
            "[1, 2]",
        ] {
            assert_eq!(header_path(line), None, "{line}");
        }
    }

    #[test]
    fn the_shipped_stacks_parse_the_same_in_groups() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        for dir in ["stacks", "tests/fixtures/valid"] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|e| e == "toml") {
                    agrees(&std::fs::read_to_string(&path).unwrap());
                }
            }
        }
    }

    #[test]
    fn a_generated_stack_parses_the_same_in_groups_of_every_size() {
        let mut text =
            String::from("[stack]\nname = \"bench\"\n\n[provider.sim]\nlatency_ms = 0\n");
        for i in 0..200 {
            text.push_str(&format!("\n[resource.sim_node.n{i}]\nname = \"n{i}\"\n"));
            if i > 0 {
                text.push_str(&format!("depends_on = [\"sim_node.n{}\"]\n", i / 2));
            }
            if i % 7 == 0 {
                text.push_str("tags.team = \"core\"\ntags.tier = 3 # a comment\n");
            }
        }
        text.push_str("\n[output]\nfirst = \"${sim_node.n0.id}\"\n");
        // Every size gives a tree, the largest one group.
        assert_eq!(agrees(&text), 6);
    }

    #[test]
    fn documents_the_groups_could_misread_are_left_to_the_whole_parse() {
        for text in [
            // A table defined in one group and extended by a header in another.
            "[a]\nx = 1\n[b.c]\ny = 2\n[a.d]\nz = 3\n",
            // Dotted keys in one group, a header below them in another.
            "[a]\nb.c = 1\n[q]\n[a.b.d]\nz = 3\n",
            // An inline table, then a header that would extend it.
            "[a]\nb = { c = 1 }\n[q]\n[a.b.d]\nz = 3\n",
            // Root keys that a later header extends.
            "a.b = 1\n[q]\n[a.c]\nz = 3\n",
            // The same header in two groups.
            "[a.b]\nx = 1\n[q]\n[a.b]\ny = 2\n",
            // Arrays of tables across groups.
            "[[a.b]]\nx = 1\n[q]\n[[a.b]]\ny = 2\n",
            // A header-looking line inside a multi-line string and array.
            "[a]\ns = \"\"\"\n[b.c]\nx = 1\n\"\"\"\n[d]\n",
            "[a]\nm = [\n[1]\n]\n[d]\n",
            // A quoted key.
            "[a]\n[\"b.c\".d]\n",
            // A header-looking line in a string, naming a table a later
            // header extends: the line is no header, the table is inline.
            "s = \"\"\"\n[resource.a]\n\"\"\"\nresource = { a = 1 }\n[a]\n  [resource.b]\n",
        ] {
            // Whatever the whole parse says, the groups never say otherwise.
            agrees(text);
        }
        // Some of them the groups leave alone entirely.
        assert!(parse("[a]\nx = 1\n[b.c]\ny = 2\n[a.d]\nz = 3\n", 0).is_none());
        assert!(parse("[a]\nb = { c = 1 }\n[q]\n[a.b.d]\nz = 3\n", 0).is_none());
    }

    /// Lines a random document is made of: headers over a few names (so
    /// they collide), bodies that define tables in every way TOML has, and
    /// multi-line values holding header-looking lines.
    fn line() -> impl Strategy<Value = String> {
        let name = prop::sample::select(vec!["a", "b", "c", "resource", "x-1"]);
        let path = prop::collection::vec(name.clone(), 1..4).prop_map(|p| p.join("."));
        prop_oneof![
            3 => path.clone().prop_map(|p| format!("[{p}]")),
            1 => path.clone().prop_map(|p| format!("[[{p}]]")),
            1 => path.clone().prop_map(|p| format!("  [{p}]")),
            2 => (path.clone(), 0..3i64).prop_map(|(p, v)| format!("{p} = {v}")),
            1 => (name.clone(), path.clone()).prop_map(|(k, p)| format!("{k} = {{ {p} = 1 }}")),
            1 => path.clone().prop_map(|p| format!("s = \"\"\"\n[{p}]\n\"\"\"")),
            1 => path.prop_map(|p| format!("m = [\n[1]\n]\n# [{p}]")),
            1 => Just("t = 99999999999999999999".to_string()),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn groups_never_read_a_document_differently(lines in prop::collection::vec(line(), 0..14)) {
            let text = lines.join("\n") + "\n";
            agrees(&text);
        }
    }
}
