//! The journal's on-disk format: a header line naming the committed state
//! it continues, then one [`JournalEntry`] per line, as compact JSON.
//!
//! ```text
//! {"cairn_journal":1,"lineage":"3f0c…","base_serial":7}
//! {"kind":"intent","address":"sim_role.exec","operation":"create","identity":"exec"}
//! {"kind":"put","address":"sim_role.exec","resource":{"id":"r-1",…}}
//! ```
//!
//! The header makes replay idempotent: after a commit the journal is
//! truncated, but a crash between the state file rename and the truncation
//! leaves a journal whose `base_serial` is older than the state's serial;
//! such a journal is stale and ignored ([`Fit::Stale`]). A journal whose
//! lineage differs, or which continues a newer serial than the state file,
//! belongs to another history and is reported rather than guessed at.
//!
//! A crash while appending can leave a partial last line: it was never
//! acknowledged as durable, so [`parse`] drops it. A bad line followed by
//! good ones is corruption and is reported with its line number.
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{JournalEntry, PendingIntent, StateError};

/// Version of the journal format, in the header line.
pub(crate) const JOURNAL_FORMAT_VERSION: u32 = 1;

/// The committed state a journal continues: its lineage and serial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Base {
    pub lineage: String,
    pub serial: u64,
}

/// The first line of a journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Header {
    pub cairn_journal: u32,
    pub lineage: String,
    pub base_serial: u64,
}

impl Header {
    pub(crate) fn new(base: &Base) -> Header {
        Header {
            cairn_journal: JOURNAL_FORMAT_VERSION,
            lineage: base.lineage.clone(),
            base_serial: base.serial,
        }
    }
}

/// A journal file, read.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    /// `None` for an empty journal (or one whose only line is torn).
    pub header: Option<Header>,
    pub entries: Vec<JournalEntry>,
    /// Length of the valid prefix in bytes: everything after it is a torn
    /// tail, to be cut off before appending.
    pub valid_len: u64,
}

/// Parses a journal's bytes; `path` is only used in error locations.
pub(crate) fn parse(bytes: &[u8], path: &Path) -> Result<Parsed, StateError> {
    // (line number, text, end offset including the newline, terminated)
    let mut lines = Vec::new();
    let mut start = 0;
    for (n, piece) in bytes.split_inclusive(|b| *b == b'\n').enumerate() {
        let end = start + piece.len();
        let terminated = piece.last() == Some(&b'\n');
        let text = piece.strip_suffix(b"\n").unwrap_or(piece);
        if !is_blank(text) {
            lines.push((n + 1, text, end, terminated));
        }
        start = end;
    }
    let mut parsed = Parsed::default();
    let last = lines.len();
    for (i, (line_no, text, end, terminated)) in lines.into_iter().enumerate() {
        let is_last = i + 1 == last;
        if !terminated {
            // An unterminated tail was never acknowledged: torn.
            break;
        }
        let outcome = if parsed.header.is_none() {
            parse_header(text).map(|h| parsed.header = Some(h))
        } else {
            serde_json::from_slice::<JournalEntry>(text)
                .map(|e| parsed.entries.push(e))
                .map_err(|e| e.to_string())
        };
        match outcome {
            Ok(()) => parsed.valid_len = end as u64,
            Err(_) if is_last => break,
            Err(message) => {
                return Err(StateError::Corrupt {
                    location: format!("{}:{line_no}", path.display()),
                    message: format!("bad journal line: {message}"),
                });
            }
        }
    }
    Ok(parsed)
}

fn parse_header(text: &[u8]) -> Result<Header, String> {
    let header: Header = serde_json::from_slice(text)
        .map_err(|e| format!("the first line is not a journal header ({e})"))?;
    if header.cairn_journal > JOURNAL_FORMAT_VERSION {
        return Err(format!(
            "journal format {} is newer than this cairn supports ({JOURNAL_FORMAT_VERSION})",
            header.cairn_journal
        ));
    }
    Ok(header)
}

/// Whitespace or NUL bytes only (a crash can leave zero-filled blocks).
fn is_blank(text: &[u8]) -> bool {
    text.iter().all(|b| b.is_ascii_whitespace() || *b == 0)
}

/// How a journal relates to the committed state.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Fit {
    /// No header: nothing to replay.
    Empty,
    /// Continues the committed state: replay it.
    Current,
    /// Continues an older serial of the same lineage: already folded into
    /// the committed state by a commit that crashed before truncating.
    Stale,
    /// Belongs to another history; the reason.
    Foreign(String),
}

/// How a journal with `header` fits the committed state at `committed`
/// (`None`: there is no state file).
pub(crate) fn fit(header: Option<&Header>, committed: Option<&Base>) -> Fit {
    let Some(h) = header else {
        return Fit::Empty;
    };
    match committed {
        None if h.base_serial == 0 => Fit::Current,
        None => Fit::Foreign(format!(
            "the journal continues serial {} of lineage {}, but there is no state file",
            h.base_serial, h.lineage
        )),
        Some(b) if b.lineage != h.lineage => Fit::Foreign(format!(
            "the journal belongs to lineage {}, the state file to lineage {}",
            h.lineage, b.lineage
        )),
        Some(b) if h.base_serial == b.serial => Fit::Current,
        Some(b) if h.base_serial < b.serial => Fit::Stale,
        Some(b) => Fit::Foreign(format!(
            "the journal continues serial {}, but the state file is at the older serial {}",
            h.base_serial, b.serial
        )),
    }
}

/// Appends the header line for `base` to `buf`.
pub(crate) fn encode_header(base: &Base, buf: &mut Vec<u8>) {
    // Serializing a struct of strings and integers cannot fail.
    if serde_json::to_writer(&mut *buf, &Header::new(base)).is_ok() {
        buf.push(b'\n');
    }
}

/// Appends one line per entry to `buf`.
pub(crate) fn encode_entries(
    entries: &[JournalEntry],
    buf: &mut Vec<u8>,
    path: &Path,
) -> Result<(), StateError> {
    for entry in entries {
        serde_json::to_writer(&mut *buf, entry).map_err(|e| StateError::Io {
            operation: "encode journal entry",
            location: path.display().to_string(),
            message: e.to_string(),
        })?;
        buf.push(b'\n');
    }
    Ok(())
}

/// Intents with no later `Put`, `Remove` or `Done` for their address, in
/// journal order.
pub(crate) fn pending(entries: &[JournalEntry]) -> Vec<PendingIntent> {
    let mut open: Vec<PendingIntent> = Vec::new();
    for entry in entries {
        match entry {
            JournalEntry::Intent {
                address,
                operation,
                identity,
                id,
            } => open.push(PendingIntent {
                address: address.clone(),
                operation: *operation,
                identity: identity.clone(),
                id: id.clone(),
            }),
            JournalEntry::Done { address }
            | JournalEntry::Put { address, .. }
            | JournalEntry::Remove { address } => open.retain(|p| &p.address != address),
            JournalEntry::Outputs { .. } => {}
        }
    }
    open
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Address;
    use crate::provider::Operation;

    fn base(serial: u64) -> Base {
        Base {
            lineage: "L".into(),
            serial,
        }
    }

    fn journal(entries: &[JournalEntry]) -> Vec<u8> {
        let mut buf = Vec::new();
        encode_header(&base(3), &mut buf);
        encode_entries(entries, &mut buf, Path::new("j")).unwrap();
        buf
    }

    fn done(name: &str) -> JournalEntry {
        JournalEntry::Done {
            address: Address::new("sim_role", name),
        }
    }

    fn intent(name: &str) -> JournalEntry {
        JournalEntry::Intent {
            address: Address::new("sim_role", name),
            operation: Operation::Create,
            identity: Some(name.into()),
            id: None,
        }
    }

    #[test]
    fn round_trip_and_valid_len() {
        let bytes = journal(&[intent("a"), done("a")]);
        let p = parse(&bytes, Path::new("j")).unwrap();
        assert_eq!(p.header, Some(Header::new(&base(3))));
        assert_eq!(p.entries, vec![intent("a"), done("a")]);
        assert_eq!(p.valid_len, bytes.len() as u64);
    }

    #[test]
    fn torn_tail_is_dropped_with_or_without_newline() {
        let good = journal(&[intent("a")]);
        for tail in [&b"{\"kind\":\"do"[..], b"{\"kind\":\"do\n", b"\0\0\0\0"] {
            let mut bytes = good.clone();
            bytes.extend_from_slice(tail);
            let p = parse(&bytes, Path::new("j")).unwrap();
            assert_eq!(p.entries, vec![intent("a")]);
            assert_eq!(p.valid_len, good.len() as u64);
        }
        // Only a torn header: an empty journal.
        let p = parse(b"{\"cairn_jou", Path::new("j")).unwrap();
        assert!(p.header.is_none() && p.valid_len == 0);
    }

    #[test]
    fn bad_middle_line_is_corrupt_with_its_line_number() {
        let mut bytes = journal(&[intent("a")]);
        bytes.extend_from_slice(b"not json\n");
        bytes.extend_from_slice(&journal(&[done("a")])[..]);
        match parse(&bytes, Path::new("x.journal")) {
            Err(StateError::Corrupt { location, .. }) => assert_eq!(location, "x.journal:3"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn entries_without_header_are_corrupt() {
        let mut bytes = Vec::new();
        encode_entries(&[intent("a"), done("a")], &mut bytes, Path::new("j")).unwrap();
        assert!(matches!(
            parse(&bytes, Path::new("j")),
            Err(StateError::Corrupt { .. })
        ));
    }

    #[test]
    fn fit_cases() {
        let h = Header::new(&base(3));
        assert_eq!(fit(None, Some(&base(3))), Fit::Empty);
        assert_eq!(fit(Some(&h), Some(&base(3))), Fit::Current);
        assert_eq!(fit(Some(&h), Some(&base(4))), Fit::Stale);
        assert!(matches!(fit(Some(&h), Some(&base(2))), Fit::Foreign(_)));
        let other = Base {
            lineage: "M".into(),
            serial: 3,
        };
        assert!(matches!(fit(Some(&h), Some(&other)), Fit::Foreign(_)));
        assert!(matches!(fit(Some(&h), None), Fit::Foreign(_)));
        assert_eq!(fit(Some(&Header::new(&base(0))), None), Fit::Current);
    }

    #[test]
    fn pending_intents() {
        let entries = [
            intent("a"),
            intent("b"),
            done("a"),
            intent("c"),
            intent("a"),
        ];
        let names: Vec<_> = pending(&entries)
            .into_iter()
            .map(|p| p.address.name)
            .collect();
        assert_eq!(names, ["b", "c", "a"]);
    }
}
