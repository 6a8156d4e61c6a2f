//! The journal's on-disk format: a header line naming the committed state
//! file it continues, then one record per line, as compact JSON.
//!
//! ```text
//! {"cairn_journal":2,"lineage":"3f0c…","base_serial":7}
//! {"create":"sim_role.exec","identity":"exec"}
//! {"put":{"sim_role.exec":{"id":"r-1",…}}}
//! {"update":"sim_role.web"}
//! {"put":{"sim_role.web":{"id":"r-2",…}}}
//! {"commit":8}
//! {"delete":"sim_role.old","id":"r-0"}
//! ```
//!
//! Records ([`JournalEntry`]) are kept short because they are most of the
//! bytes an apply writes: an intent is keyed by its operation (`create`,
//! `update`, `delete`) and names the address, plus the identity a create
//! will have and the physical id when it is not the one state holds; an
//! outcome is `{"put":{ADDRESS:RECORD}}`, `{"remove":ADDRESS}`,
//! `{"done":ADDRESS}` or `{"outputs":{…}}`. A put line is the resource record
//! as the state file holds it plus 9 bytes.
//!
//! A `{"commit":N}` line is a **commit marker**: everything before it is
//! the committed state of serial `N` (the state file, then every record up
//! to the marker). So a journal is a run of committed segments, each closed
//! by a marker with the next serial, and possibly an uncommitted tail: the
//! records of a run that has not committed (or died). Loading replays the
//! whole journal; the tail is what [`super::Loaded::replayed`] counts and
//! where pending intents are looked for.
//!
//! The header makes replay idempotent: compaction writes the replayed state
//! as a new state file and truncates the journal, but a crash between the
//! state file rename and the truncation leaves a journal whose
//! `base_serial` is older than the state's serial; such a journal is stale
//! and ignored ([`Fit::Stale`]). A journal whose lineage differs, or which
//! continues a newer serial than the state file, belongs to another history
//! and is reported rather than guessed at.
//!
//! A crash while appending can leave a partial last line: it was never
//! acknowledged as durable, so [`parse`] drops it (a commit marker torn off
//! that way leaves its segment uncommitted: the run did not commit). A bad
//! line followed by good ones is corruption and is reported with its line
//! number.
//!
//! Format 1 (every record a `{"kind":…}` object, no commit markers) is still
//! read, so a journal left by an older cairn is replayed.
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{JournalEntry, PendingIntent, ResourceState, STATE_FORMAT_VERSION, State, StateError};
use crate::model::{Address, Value};
use crate::provider::Operation;

/// Version of the journal format, in the header line.
pub(crate) const JOURNAL_FORMAT_VERSION: u32 = 2;

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

/// One line of a journal after the header.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Line {
    Entry(JournalEntry),
    /// Everything before this line is the committed state of this serial.
    Commit(u64),
}

/// A journal file, read whole: the tests' way (the backends replay with
/// [`scan`] and [`replay_chained`]).
#[derive(Debug, Default)]
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) struct Parsed {
    /// `None` for an empty journal (or one whose only line is torn).
    pub header: Option<Header>,
    /// Every record, in order. Commit markers are checked but not listed.
    pub entries: Vec<JournalEntry>,
    /// Length of the valid prefix in bytes: everything after it is a torn
    /// tail.
    pub valid_len: u64,
}

/// What [`scan`] found besides the lines it handed over.
#[derive(Debug, Default)]
pub(crate) struct Scanned {
    pub header: Option<Header>,
    /// The serial of the last commit marker, if there is one.
    pub committed: Option<u64>,
    pub valid_len: u64,
}

/// Parses a journal's bytes; `path` is only used in error locations.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn parse(bytes: &[u8], path: &Path) -> Result<Parsed, StateError> {
    let mut entries = Vec::new();
    let scanned = scan(bytes, path, |_, line| {
        if let Line::Entry(entry) = line {
            entries.push(entry);
        }
        Ok(())
    })?;
    Ok(Parsed {
        header: scanned.header,
        entries,
        valid_len: scanned.valid_len,
    })
}

/// Reads a journal's bytes line by line, handing each record and commit
/// marker (with the header) to `on_line` in order, without keeping them;
/// `path` is only used in error locations. Commit markers must count up by
/// one from the header's base serial.
pub(crate) fn scan(
    bytes: &[u8],
    path: &Path,
    mut on_line: impl FnMut(&Header, Line) -> Result<(), String>,
) -> Result<Scanned, StateError> {
    // (line number, text, end offset including the newline, terminated),
    // blank lines left out; read one ahead to know the last.
    let mut start = 0;
    let mut lines = bytes
        .split_inclusive(|b| *b == b'\n')
        .enumerate()
        .filter_map(|(n, piece)| {
            let end = start + piece.len();
            start = end;
            let terminated = piece.last() == Some(&b'\n');
            let text = piece.strip_suffix(b"\n").unwrap_or(piece);
            (!is_blank(text)).then_some((n + 1, text, end, terminated))
        })
        .peekable();
    let mut scanned = Scanned::default();
    let corrupt = |line_no: usize, message: String| StateError::Corrupt {
        location: format!("{}:{line_no}", path.display()),
        message: format!("bad journal line: {message}"),
    };
    while let Some((line_no, text, end, terminated)) = lines.next() {
        let is_last = lines.peek().is_none();
        if !terminated {
            // An unterminated tail was never acknowledged: torn.
            break;
        }
        let Some(header) = &scanned.header else {
            match parse_header(text) {
                Ok(h) => scanned.header = Some(h),
                Err(_) if is_last => break,
                Err(message) => return Err(corrupt(line_no, message)),
            }
            scanned.valid_len = end as u64;
            continue;
        };
        let line = match decode_line(text) {
            Ok(line) => line,
            Err(_) if is_last => break,
            Err(message) => return Err(corrupt(line_no, message)),
        };
        if let Line::Commit(serial) = line {
            let previous = scanned.committed.unwrap_or(header.base_serial);
            if serial != previous + 1 {
                return Err(corrupt(
                    line_no,
                    format!("commit marker for serial {serial} follows serial {previous}"),
                ));
            }
            scanned.committed = Some(serial);
        }
        on_line(header, line).map_err(|message| corrupt(line_no, message))?;
        scanned.valid_len = end as u64;
    }
    Ok(scanned)
}

/// The header of a journal, from its first line: `None` when that line is
/// torn or not a header (the journal is then treated as empty; [`scan`]
/// reports a bad header that has lines after it).
pub(crate) fn first_header(bytes: &[u8]) -> Option<Header> {
    let line = bytes
        .split_inclusive(|b| *b == b'\n')
        .find(|piece| !is_blank(piece))?;
    parse_header(line.strip_suffix(b"\n")?).ok()
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

/// One line: the current format, else format 1 (`{"kind":…}`).
fn decode_line(text: &[u8]) -> Result<Line, String> {
    match serde_json::from_slice::<LineV2>(text) {
        Ok(LineV2(line)) => Ok(line),
        Err(e) => serde_json::from_slice::<JournalEntry>(text)
            .map(Line::Entry)
            .map_err(|_| e.to_string()),
    }
}

/// How a journal relates to the committed state.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Fit {
    /// No header: nothing to replay.
    Empty,
    /// Continues the committed state: replay it.
    Current,
    /// Continues an older serial of the same lineage: already folded into
    /// the committed state by a compaction that crashed before truncating.
    Stale,
    /// Belongs to another history; the reason.
    Foreign(String),
}

/// How a journal with `header` fits the state file at `committed`
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
        serde_json::to_writer(&mut *buf, &EntryV2(entry)).map_err(|e| StateError::Io {
            operation: "encode journal entry",
            location: path.display().to_string(),
            message: e.to_string(),
        })?;
        buf.push(b'\n');
    }
    Ok(())
}

/// Appends the commit marker of `serial` to `buf`.
pub(crate) fn encode_commit(serial: u64, buf: &mut Vec<u8>) {
    buf.extend_from_slice(format!("{{\"commit\":{serial}}}\n").as_bytes());
}

/// A record in the current line format.
struct EntryV2<'a>(&'a JournalEntry);

impl Serialize for EntryV2<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        match self.0 {
            JournalEntry::Intent {
                address,
                operation,
                identity,
                id,
            } => {
                map.serialize_entry(&operation.to_string(), address)?;
                if let Some(identity) = identity {
                    map.serialize_entry("identity", identity)?;
                }
                if let Some(id) = id {
                    map.serialize_entry("id", id)?;
                }
            }
            JournalEntry::Done { address } => map.serialize_entry("done", address)?,
            JournalEntry::Put { address, resource } => {
                map.serialize_entry("put", &OneRecord(address, resource))?;
            }
            JournalEntry::Remove { address } => map.serialize_entry("remove", address)?,
            JournalEntry::Outputs { outputs } => map.serialize_entry("outputs", outputs)?,
        }
        map.end()
    }
}

/// `{ADDRESS: RECORD}`, the body of a put line.
struct OneRecord<'a>(&'a Address, &'a ResourceState);

impl Serialize for OneRecord<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry(self.0, self.1)?;
        map.end()
    }
}

/// A line in the current format, decoded.
struct LineV2(Line);

/// The keys a line may have.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum Field {
    Create,
    Update,
    Delete,
    Read,
    Find,
    List,
    Identity,
    Id,
    Put,
    Done,
    Remove,
    Outputs,
    Commit,
}

/// What a line is, before the optional intent fields are attached.
enum Kind {
    Intent(Operation, Address),
    Put(Address, ResourceState),
    Done(Address),
    Remove(Address),
    Outputs(BTreeMap<String, Value>),
    Commit(u64),
}

impl<'de> Deserialize<'de> for LineV2 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<LineV2, D::Error> {
        d.deserialize_map(LineVisitor)
    }
}

struct LineVisitor;

impl<'de> Visitor<'de> for LineVisitor {
    type Value = LineV2;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a journal record")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LineV2, A::Error> {
        let mut kind: Option<Kind> = None;
        let mut identity: Option<String> = None;
        let mut id: Option<String> = None;
        while let Some(field) = map.next_key::<Field>()? {
            let next = match field {
                Field::Identity | Field::Id => {
                    let slot = match field {
                        Field::Identity => &mut identity,
                        _ => &mut id,
                    };
                    if slot.replace(map.next_value()?).is_some() {
                        return Err(de::Error::custom("a field appears twice"));
                    }
                    continue;
                }
                Field::Create => Kind::Intent(Operation::Create, map.next_value()?),
                Field::Update => Kind::Intent(Operation::Update, map.next_value()?),
                Field::Delete => Kind::Intent(Operation::Delete, map.next_value()?),
                Field::Read => Kind::Intent(Operation::Read, map.next_value()?),
                Field::Find => Kind::Intent(Operation::Find, map.next_value()?),
                Field::List => Kind::Intent(Operation::List, map.next_value()?),
                Field::Put => {
                    let PutBody(address, resource) = map.next_value()?;
                    Kind::Put(address, resource)
                }
                Field::Done => Kind::Done(map.next_value()?),
                Field::Remove => Kind::Remove(map.next_value()?),
                Field::Outputs => Kind::Outputs(map.next_value()?),
                Field::Commit => Kind::Commit(map.next_value()?),
            };
            if kind.replace(next).is_some() {
                return Err(de::Error::custom("a journal record has exactly one kind"));
            }
        }
        let kind = kind.ok_or_else(|| de::Error::custom("a journal record names its kind"))?;
        if !matches!(kind, Kind::Intent(..)) && (identity.is_some() || id.is_some()) {
            return Err(de::Error::custom(
                "`identity` and `id` belong to intents only",
            ));
        }
        let entry = match kind {
            Kind::Intent(operation, address) => JournalEntry::Intent {
                address,
                operation,
                identity,
                id,
            },
            Kind::Put(address, resource) => JournalEntry::Put { address, resource },
            Kind::Done(address) => JournalEntry::Done { address },
            Kind::Remove(address) => JournalEntry::Remove { address },
            Kind::Outputs(outputs) => JournalEntry::Outputs { outputs },
            Kind::Commit(serial) => return Ok(LineV2(Line::Commit(serial))),
        };
        Ok(LineV2(Line::Entry(entry)))
    }
}

/// The body of a put line: exactly one address and its record.
struct PutBody(Address, ResourceState);

impl<'de> Deserialize<'de> for PutBody {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PutBody, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = PutBody;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("one address and its record")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PutBody, A::Error> {
                let Some((address, resource)) = map.next_entry()? else {
                    return Err(de::Error::custom("a put names one address"));
                };
                if map.next_key::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom("a put names one address"));
                }
                Ok(PutBody(address, resource))
            }
        }
        d.deserialize_map(V)
    }
}

/// Decodes a committed state file read from `location` and checks that it
/// belongs to `stack`/`env` and that this cairn can read its format; shared
/// by every backend.
pub(crate) fn decode_state(
    bytes: &[u8],
    location: &str,
    stack: &str,
    env: &str,
) -> Result<State, StateError> {
    let corrupt = StateError::corrupt_at(location);
    let state: State = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    super::check_stack(location, &state.stack, &state.env, stack, env)?;
    if state.format_version > STATE_FORMAT_VERSION {
        return Err(corrupt(format!(
            "format version {} is newer than this cairn supports ({STATE_FORMAT_VERSION})",
            state.format_version
        )));
    }
    Ok(state)
}

/// Replays one journal of a chain onto `state`: the S3 backend keeps its
/// journal as a sequence of objects, each with its own header naming the
/// committed serial it continues (the last commit marker before it).
/// `continues` is the lineage and serial the journal must continue (`None`:
/// no committed state at all, so the journal must continue serial 0 and
/// gives `state` its lineage). Only a [`Fit::Current`] journal is replayed,
/// with the local journal's rules: every record is applied and seen by
/// `tail`; a commit marker sets `state.serial` and starts a new tail (the
/// records before it are committed). The caller decides what another fit
/// means; the [`Scanned`] tells it the header and the valid length.
#[cfg_attr(not(feature = "aws"), allow(dead_code))]
pub(crate) fn replay_chained(
    bytes: &[u8],
    path: &Path,
    continues: Option<&Base>,
    state: &mut State,
    tail: &mut Tail,
) -> Result<(Fit, Scanned), StateError> {
    let mut fits: Option<Fit> = None;
    let scanned = scan(bytes, path, |header, line| {
        let fit = fits.get_or_insert_with(|| fit(Some(header), continues));
        if *fit != Fit::Current {
            return Ok(());
        }
        match line {
            Line::Entry(entry) => {
                tail.see(&entry);
                state.apply_owned(entry);
            }
            Line::Commit(serial) => {
                *tail = Tail::default();
                state.serial = serial;
            }
        }
        Ok(())
    })?;
    let fits = fit(scanned.header.as_ref(), continues);
    if let (Fit::Current, None, Some(header)) = (&fits, continues, &scanned.header) {
        state.lineage = header.lineage.clone();
    }
    Ok((fits, scanned))
}

/// Intents with no later `Put`, `Remove` or `Done` for their address, in
/// journal order.
#[cfg_attr(not(test), allow(dead_code))]
pub(crate) fn pending(entries: &[JournalEntry]) -> Vec<PendingIntent> {
    let mut tail = Tail::default();
    for entry in entries {
        tail.see(entry);
    }
    tail.into_open()
}

/// Records seen since the last commit marker: how many, and which intents
/// are still open (no later `Put`, `Remove` or `Done` for their address).
/// Closing an intent costs the same however many are open: an apply with
/// unbounded parallelism writes every intent of its first wave before any
/// outcome.
#[derive(Debug, Default)]
pub(crate) struct Tail {
    pub records: usize,
    /// The open intents by address, each with its position in the journal
    /// (so they come back in journal order).
    open: crate::hash::FastMap<Address, Vec<(usize, PendingIntent)>>,
}

impl Tail {
    /// Takes one more record into account.
    pub(crate) fn see(&mut self, entry: &JournalEntry) {
        self.records += 1;
        match entry {
            JournalEntry::Intent {
                address,
                operation,
                identity,
                id,
            } => self.open.entry(address.clone()).or_default().push((
                self.records,
                PendingIntent {
                    address: address.clone(),
                    operation: *operation,
                    identity: identity.clone(),
                    id: id.clone(),
                },
            )),
            JournalEntry::Done { address }
            | JournalEntry::Put { address, .. }
            | JournalEntry::Remove { address } => {
                self.open.remove(address);
            }
            JournalEntry::Outputs { .. } => {}
        }
    }

    /// How many intents are open.
    #[cfg(test)]
    pub(crate) fn open_count(&self) -> usize {
        self.open.values().map(Vec::len).sum()
    }

    /// The open intents, in journal order.
    pub(crate) fn into_open(self) -> Vec<PendingIntent> {
        let mut open: Vec<(usize, PendingIntent)> = self.open.into_values().flatten().collect();
        open.sort_unstable_by_key(|(at, _)| *at);
        open.into_iter().map(|(_, intent)| intent).collect()
    }
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

    fn text(entries: &[JournalEntry]) -> String {
        let mut buf = Vec::new();
        encode_entries(entries, &mut buf, Path::new("j")).unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn lines_are_short_and_decode_back() {
        let a = Address::new("sim_role", "a");
        let resource = ResourceState {
            id: "r-1".into(),
            ownership: crate::state::Ownership::Created,
            attributes: [("name".to_string(), serde_json::json!("a"))].into(),
            depends_on: vec![],
            identity: None,
        };
        let entries = [
            intent("a"),
            JournalEntry::Intent {
                address: a.clone(),
                operation: Operation::Delete,
                identity: None,
                id: Some("r-1".into()),
            },
            JournalEntry::Put {
                address: a.clone(),
                resource: resource.clone(),
            },
            JournalEntry::Remove { address: a.clone() },
            done("a"),
            JournalEntry::Outputs {
                outputs: [("url".to_string(), serde_json::json!("x"))].into(),
            },
        ];
        let text = text(&entries);
        assert_eq!(
            text.lines().collect::<Vec<_>>(),
            [
                r#"{"create":"sim_role.a","identity":"a"}"#,
                r#"{"delete":"sim_role.a","id":"r-1"}"#,
                r#"{"put":{"sim_role.a":{"id":"r-1","ownership":"created","attributes":{"name":"a"}}}}"#,
                r#"{"remove":"sim_role.a"}"#,
                r#"{"done":"sim_role.a"}"#,
                r#"{"outputs":{"url":"x"}}"#,
            ]
        );
        // A put line is its record as `{ADDRESS: RECORD}` plus 9 bytes.
        let record = serde_json::to_string(&serde_json::json!({ "sim_role.a": resource })).unwrap();
        assert_eq!(text.lines().nth(2).unwrap().len(), record.len() + 8);
        let mut bytes = Vec::new();
        encode_header(&base(3), &mut bytes);
        bytes.extend_from_slice(text.as_bytes());
        encode_commit(4, &mut bytes);
        let p = parse(&bytes, Path::new("j")).unwrap();
        assert_eq!(p.entries, entries);
        assert_eq!(p.valid_len, bytes.len() as u64);
    }

    #[test]
    fn malformed_lines_are_refused() {
        for line in [
            r#"{"put":{"sim_role.a":{"id":"r","ownership":"created","attributes":{}},"sim_role.b":{"id":"r","ownership":"created","attributes":{}}}}"#,
            r#"{"done":"sim_role.a","identity":"a"}"#,
            r#"{"create":"sim_role.a","done":"sim_role.a"}"#,
            r#"{"identity":"a"}"#,
            r#"{}"#,
            r#"{"kind":"bogus"}"#,
            r#"{"create":"not an address"}"#,
        ] {
            assert!(decode_line(line.as_bytes()).is_err(), "{line}");
        }
        // Key order does not matter; format 1 still decodes.
        assert_eq!(
            decode_line(br#"{"identity":"a","create":"sim_role.a"}"#).unwrap(),
            Line::Entry(intent("a"))
        );
        assert_eq!(
            decode_line(br#"{"kind":"done","address":"sim_role.a"}"#).unwrap(),
            Line::Entry(done("a"))
        );
        assert_eq!(decode_line(br#"{"commit":9}"#).unwrap(), Line::Commit(9));
    }

    #[test]
    fn commit_markers_count_up_from_the_base_serial() {
        let mut bytes = journal(&[intent("a")]);
        encode_commit(4, &mut bytes);
        encode_commit(5, &mut bytes);
        let scanned = scan(&bytes, Path::new("j"), |_, _| Ok(())).unwrap();
        assert_eq!(scanned.committed, Some(5));
        let mut skipped = journal(&[]);
        encode_commit(5, &mut skipped);
        assert!(matches!(
            scan(&skipped, Path::new("j"), |_, _| Ok(())),
            Err(StateError::Corrupt { .. })
        ));
        // A torn marker is no marker.
        let mut torn = journal(&[intent("a")]);
        torn.extend_from_slice(b"{\"commit\":4");
        let scanned = scan(&torn, Path::new("j"), |_, _| Ok(())).unwrap();
        assert_eq!(scanned.committed, None);
    }

    #[test]
    fn chained_journals_continue_the_last_marker() {
        let p = Path::new("j");
        let mut state = State::new("s", "e");
        state.lineage = "L".into();
        state.serial = 3;
        let mut tail = Tail::default();
        // Continues serial 3: a committed segment, then an open intent.
        let mut one = journal(&[intent("a"), done("a")]);
        encode_commit(4, &mut one);
        encode_entries(&[intent("b")], &mut one, p).unwrap();
        let (fit, _) = replay_chained(&one, p, Some(&base(3)), &mut state, &mut tail).unwrap();
        assert_eq!(
            (fit, state.serial, tail.records, tail.open_count()),
            (Fit::Current, 4, 1, 1)
        );
        // The next object continues serial 4 and commits 5.
        let mut two = Vec::new();
        encode_header(&base(4), &mut two);
        encode_entries(&[done("b")], &mut two, p).unwrap();
        encode_commit(5, &mut two);
        let (fit, _) = replay_chained(&two, p, Some(&base(4)), &mut state, &mut tail).unwrap();
        assert_eq!((fit, state.serial, tail.records), (Fit::Current, 5, 0));
        // The same object after serial 5 does not fit and changes nothing.
        let (fit, scanned) =
            replay_chained(&two, p, Some(&base(5)), &mut state, &mut tail).unwrap();
        assert_eq!((fit, state.serial), (Fit::Stale, 5));
        assert_eq!(scanned.header.map(|h| h.base_serial), Some(4));
        // No committed state: the journal gives its lineage.
        let mut fresh = State::new("s", "e");
        let mut zero = Vec::new();
        encode_header(&base(0), &mut zero);
        encode_commit(1, &mut zero);
        let (fit, _) = replay_chained(&zero, p, None, &mut fresh, &mut Tail::default()).unwrap();
        assert_eq!(
            (fit, fresh.serial, fresh.lineage.as_str()),
            (Fit::Current, 1, "L")
        );
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

    #[test]
    fn one_record_closes_every_open_intent_of_its_address() {
        // A replacement: delete and create intents open together.
        let entries = [intent("a"), intent("b"), intent("a"), done("a")];
        let names: Vec<_> = pending(&entries)
            .into_iter()
            .map(|p| p.address.name)
            .collect();
        assert_eq!(names, ["b"]);
        // A first wave of many intents, then their outcomes in another
        // order: each closes its own.
        let mut entries: Vec<JournalEntry> = (0..1000).map(|i| intent(&format!("n{i}"))).collect();
        entries.extend(
            (0..1000)
                .rev()
                .filter(|i| i % 3 != 0)
                .map(|i| done(&format!("n{i}"))),
        );
        let mut tail = Tail::default();
        for e in &entries {
            tail.see(e);
        }
        assert_eq!(tail.open_count(), 334);
        let open: Vec<_> = tail
            .into_open()
            .into_iter()
            .map(|p| p.address.name)
            .collect();
        let expected: Vec<_> = (0..1000)
            .filter(|i| i % 3 == 0)
            .map(|i| format!("n{i}"))
            .collect();
        assert_eq!(open, expected);
    }
}
