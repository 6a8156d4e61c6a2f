//! The state file's line format, and reading back a snapshot that is
//! still being written: so that a snapshot can be built a few records at a
//! time, spread over many applies, instead of all at once.
//!
//! A state file is one JSON [`State`] laid out one resource per line:
//!
//! ```text
//! {"format_version":1,"lineage":"3f0c…","serial":7,"stack":"s","env":"e","resources":{
//! "sim_role.a":{"id":"r-1",…}
//! ,"sim_role.b":{"id":"r-2",…}
//! },"outputs":{"url":"…"}}
//! ```
//!
//! Any JSON reader reads it whole ([`super::journal::decode_state`]); the
//! layout lets a writer append records in address order and a later
//! process find, from the file's last lines alone, where to go on: the
//! header line (which decodes as a state with no resources once closed
//! with `}}`), record lines (each `"ADDRESS":RECORD`, with a leading comma
//! after the first one), and the footer line (starting with `}`). A line
//! never holds a newline (compact JSON escapes them), so everything before
//! the last newline is whole lines.
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

use serde::Serialize;

use super::journal::Base;
use super::{Address, ResourceState, STATE_FORMAT_VERSION, State, StateError, json_len};
use crate::model::Value;

/// The fields of the header line, in file order.
#[derive(Serialize)]
struct Head<'a> {
    format_version: u32,
    lineage: &'a str,
    serial: u64,
    stack: &'a str,
    env: &'a str,
}

fn encode_error(location: &Path, e: &serde_json::Error) -> StateError {
    StateError::Io {
        operation: "encode state",
        location: location.display().to_string(),
        message: e.to_string(),
    }
}

/// Appends the header line of a state file of `base` for `stack`/`env`.
pub(crate) fn encode_header(
    base: &Base,
    stack: &str,
    env: &str,
    buf: &mut Vec<u8>,
    location: &Path,
) -> Result<(), StateError> {
    let head = Head {
        format_version: STATE_FORMAT_VERSION,
        lineage: &base.lineage,
        serial: base.serial,
        stack,
        env,
    };
    serde_json::to_writer(&mut *buf, &head).map_err(|e| encode_error(location, &e))?;
    // `{…}` becomes `{…,"resources":{`.
    buf.pop();
    buf.extend_from_slice(b",\"resources\":{\n");
    Ok(())
}

/// Appends one record line; `first` is whether it is the first record.
pub(crate) fn encode_record(
    address: &Address,
    resource: &ResourceState,
    first: bool,
    buf: &mut Vec<u8>,
    location: &Path,
) -> Result<(), StateError> {
    if !first {
        buf.push(b',');
    }
    serde_json::to_writer(&mut *buf, address).map_err(|e| encode_error(location, &e))?;
    buf.push(b':');
    serde_json::to_writer(&mut *buf, resource).map_err(|e| encode_error(location, &e))?;
    buf.push(b'\n');
    Ok(())
}

/// Appends the footer line: closes the resources, then the outputs.
pub(crate) fn encode_footer(
    outputs: &std::collections::BTreeMap<String, Value>,
    buf: &mut Vec<u8>,
    location: &Path,
) -> Result<(), StateError> {
    buf.push(b'}');
    if !outputs.is_empty() {
        buf.extend_from_slice(b",\"outputs\":");
        serde_json::to_writer(&mut *buf, outputs).map_err(|e| encode_error(location, &e))?;
    }
    buf.extend_from_slice(b"}\n");
    Ok(())
}

/// The whole state file for `state`.
pub(crate) fn encode_state(state: &State, location: &Path) -> Result<Vec<u8>, StateError> {
    let mut buf = Vec::with_capacity(256 * state.resources.len() + 256);
    encode_header(&state.base(), &state.stack, &state.env, &mut buf, location)?;
    for (i, (address, resource)) in state.resources.iter().enumerate() {
        encode_record(address, resource, i == 0, &mut buf, location)?;
    }
    encode_footer(&state.outputs, &mut buf, location)?;
    Ok(buf)
}

/// The size in bytes of a record line (with its comma), and of the
/// record as the benchmarks count a changed one (`{"ADDRESS":RECORD}`):
/// the same number.
pub(crate) fn record_len(address: &Address, resource: &ResourceState) -> u64 {
    match (json_len(address), json_len(resource)) {
        (Some(a), Some(r)) => a + r + 2,
        _ => 0,
    }
}

/// The size [`encode_state`] would give, without keeping the bytes.
pub(crate) fn encoded_len(state: &State) -> u64 {
    let header = 120 + state.lineage.len() + state.stack.len() + state.env.len();
    let mut total = header as u64;
    for (address, resource) in &state.resources {
        total += record_len(address, resource);
    }
    if let Some(outputs) = json_len(&state.outputs) {
        total += outputs + 16;
    }
    total
}

/// Where a snapshot being written stands: as the committing side keeps
/// it (both backends), or as read back from what was written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Progress {
    /// The lineage and serial of its header: the journal that continues
    /// the snapshot starts at this serial.
    pub base: Base,
    /// The address of its last whole record (`None`: none yet).
    pub cursor: Option<Address>,
    /// Its bytes so far, the header and whole records (0: not even the
    /// header). A footer and a torn tail are not counted: they are cut,
    /// and the footer is written again at the end.
    pub len: u64,
}

impl Progress {
    /// A snapshot of `base` with nothing written yet.
    pub(crate) fn new(base: Base) -> Progress {
        Progress {
            base,
            cursor: None,
            len: 0,
        }
    }
}

/// What a line of a snapshot says of where it stands.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Last {
    /// The footer: every record is written.
    Footer,
    /// A record: the snapshot goes on after its address.
    Record(Address),
}

/// What `line` (without its newline), read back from a snapshot, says:
/// `None` when it is neither a footer nor a record that decodes (the
/// header, or garbage).
pub(crate) fn last_line(line: &[u8]) -> Option<Last> {
    if line.first() == Some(&b'}') {
        return Some(Last::Footer);
    }
    record_address(line).map(Last::Record)
}

/// Reads the header and the last whole record of the snapshot file at
/// `path`, reading only its first line and its tail. `None`: no such file,
/// or nothing usable in it (no whole header, or a last line that does not
/// decode): the snapshot starts over.
pub(crate) fn progress(
    path: &Path,
    stack: &str,
    env: &str,
) -> Result<Option<Progress>, StateError> {
    let io = |e: io::Error| super::fsutil::io_error("read", path, &e);
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    let size = file.metadata().map_err(io)?.len();
    // The header line.
    let mut head = Vec::new();
    let mut chunk = vec![0u8; 4096];
    let header_end = loop {
        let n = file.read(&mut chunk).map_err(io)?;
        if n == 0 {
            return Ok(None);
        }
        let start = head.len();
        head.extend_from_slice(&chunk[..n]);
        if let Some(i) = head[start..].iter().position(|b| *b == b'\n') {
            break start + i + 1;
        }
    };
    let Some(base) = header_base(&head[..header_end - 1], stack, env) else {
        return Ok(None);
    };
    // The tail: grow the window until it holds the last whole record line
    // (or reaches the header).
    let header_end = header_end as u64;
    let mut window: u64 = 64 << 10;
    loop {
        let start = size.saturating_sub(window).max(header_end);
        file.seek(SeekFrom::Start(start)).map_err(io)?;
        let mut tail = Vec::new();
        file.read_to_end(&mut tail).map_err(io)?;
        // Whole lines only: cut after the last newline.
        let whole = tail.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        let lines: Vec<(usize, &[u8])> = line_starts(&tail[..whole]);
        // The first line of a window not starting at the header may be cut.
        let usable = if start == header_end { 0 } else { 1 };
        // The last line that is no footer.
        for &(offset, line) in lines.iter().skip(usable).rev() {
            match last_line(line) {
                Some(Last::Footer) => {}
                Some(Last::Record(address)) => {
                    return Ok(Some(Progress {
                        base,
                        cursor: Some(address),
                        len: start + (offset + line.len() + 1) as u64,
                    }));
                }
                None => return Ok(None),
            }
        }
        if start == header_end {
            return Ok(Some(Progress {
                base,
                cursor: None,
                len: header_end,
            }));
        }
        window = window.saturating_mul(4);
    }
}

/// The lineage and serial of a header line (without its newline), if it
/// is one of a state file of `stack`/`env`.
pub(crate) fn header_base(line: &[u8], stack: &str, env: &str) -> Option<Base> {
    let mut closed = line.to_vec();
    closed.extend_from_slice(b"}}");
    let state = serde_json::from_slice::<State>(&closed).ok()?;
    (state.stack == stack && state.env == env).then(|| state.base())
}

/// Each line of `bytes` (every one ending in a newline) with its offset,
/// without the newline.
fn line_starts(bytes: &[u8]) -> Vec<(usize, &[u8])> {
    let mut out = Vec::new();
    let mut start = 0;
    for piece in bytes.split_inclusive(|b| *b == b'\n') {
        out.push((start, piece.strip_suffix(b"\n").unwrap_or(piece)));
        start += piece.len();
    }
    out
}

/// The address of a record line (without its newline), if it decodes as
/// one.
fn record_address(line: &[u8]) -> Option<Address> {
    let line = line.strip_prefix(b",").unwrap_or(line);
    let mut wrapped = Vec::with_capacity(line.len() + 2);
    wrapped.push(b'{');
    wrapped.extend_from_slice(line);
    wrapped.push(b'}');
    let map: std::collections::BTreeMap<Address, ResourceState> =
        serde_json::from_slice(&wrapped).ok()?;
    let mut keys = map.into_keys();
    match (keys.next(), keys.next()) {
        (Some(address), None) => Some(address),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Ownership;

    fn state(n: usize) -> State {
        let mut s = State::new("s", "e");
        s.serial = 4;
        for i in 0..n {
            s.resources.insert(
                Address::new("sim_role", format!("r{i:03}")),
                ResourceState {
                    id: format!("id-{i}\nwith a newline"),
                    ownership: Ownership::Created,
                    attributes: [("k".to_string(), serde_json::json!(i))].into(),
                    depends_on: vec![],
                    identity: None,
                },
            );
        }
        s.outputs.insert("url".into(), serde_json::json!("x"));
        s
    }

    #[test]
    fn the_line_format_decodes_as_a_state_and_its_size_is_known() {
        for n in [0, 1, 5] {
            let s = state(n);
            let bytes = encode_state(&s, Path::new("f")).unwrap();
            let back: State = serde_json::from_slice(&bytes).unwrap();
            assert_eq!(back, s);
            assert_eq!(bytes.iter().filter(|b| **b == b'\n').count(), n + 2);
            let estimate = encoded_len(&s);
            assert!(
                estimate >= bytes.len() as u64,
                "{estimate} < {}",
                bytes.len()
            );
            assert!(estimate <= bytes.len() as u64 + 200);
        }
    }

    #[test]
    fn progress_finds_the_last_whole_record_and_cuts_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("next");
        let s = state(5);
        let whole = encode_state(&s, &path).unwrap();
        let lines: Vec<usize> = whole
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(i, _)| i + 1)
            .collect();
        assert_eq!(progress(&path, "s", "e").unwrap(), None);
        // Cut at every byte: the progress is the last whole record before.
        for cut in 0..=whole.len() {
            std::fs::write(&path, &whole[..cut]).unwrap();
            let p = progress(&path, "s", "e").unwrap();
            let whole_lines = lines.iter().filter(|end| **end <= cut).count();
            if whole_lines == 0 {
                assert_eq!(p, None, "cut {cut}");
                continue;
            }
            let p = p.unwrap();
            assert_eq!(p.base.serial, 4);
            let records = (whole_lines - 1).min(5);
            assert_eq!(p.len as usize, lines[records], "cut {cut}");
            let expected = records
                .checked_sub(1)
                .map(|i| Address::new("sim_role", format!("r{i:03}")));
            assert_eq!(p.cursor, expected, "cut {cut}");
        }
        // Another stack's file, or garbage, starts over.
        std::fs::write(&path, &whole).unwrap();
        assert_eq!(progress(&path, "other", "e").unwrap(), None);
        std::fs::write(&path, b"{garbage\n").unwrap();
        assert_eq!(progress(&path, "s", "e").unwrap(), None);
    }
}
