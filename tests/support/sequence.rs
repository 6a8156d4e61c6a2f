//! The sequence of runs both state backends' bytes tests make: a tenth of
//! the resources updated per run (a different slice each time), and every
//! 7th run one removed and one created past the end; the records a run
//! journals, and the bytes of what it changed.

use std::collections::BTreeMap;

use cairn::model::Address;
use cairn::provider::Operation;
use cairn::state::{JournalEntry, ResourceState, State};

/// What a run does: put these resources (at a version), remove these.
pub struct Run {
    pub puts: Vec<(usize, usize)>,
    pub removes: Vec<usize>,
}

/// The run of step `step` over `n` resources.
pub fn step_run(n: usize, step: usize) -> Run {
    let mut puts: Vec<(usize, usize)> = (step % 10..n).step_by(10).map(|i| (i, step)).collect();
    let mut removes = vec![];
    if step.is_multiple_of(7) {
        removes.push((step * 13) % n);
        puts.retain(|(i, _)| !removes.contains(i));
        puts.push((n + step, step));
    }
    Run { puts, removes }
}

impl Run {
    /// Per change, on `state`, the intent and the outcome an apply
    /// journals; resource `i` is at `addr(i)` with record `record(i,
    /// version)` and id `id-{i}`.
    pub fn records(
        &self,
        state: &State,
        addr: impl Fn(usize) -> Address,
        record: impl Fn(usize, usize) -> ResourceState,
    ) -> Vec<(JournalEntry, JournalEntry)> {
        let puts = self.puts.iter().map(|&(i, version)| {
            let operation = if state.resources.contains_key(&addr(i)) {
                Operation::Update
            } else {
                Operation::Create
            };
            (
                JournalEntry::Intent {
                    address: addr(i),
                    operation,
                    identity: None,
                    id: None,
                },
                JournalEntry::Put {
                    address: addr(i),
                    resource: record(i, version),
                },
            )
        });
        let removes = self.removes.iter().map(|&i| {
            (
                JournalEntry::Intent {
                    address: addr(i),
                    operation: Operation::Delete,
                    identity: None,
                    id: Some(format!("id-{i}")),
                },
                JournalEntry::Remove { address: addr(i) },
            )
        });
        puts.chain(removes).collect()
    }
}

/// The size of a changed record as the benchmarks count it: its compact
/// JSON as `{"ADDRESS":RECORD}`.
pub fn record_bytes(address: &Address, r: &ResourceState) -> u64 {
    serde_json::to_string(&BTreeMap::from([(address.clone(), r.clone())]))
        .unwrap()
        .len() as u64
}

/// The bytes of the records `after` added or changed since `before`.
pub fn changed_bytes(before: &State, after: &State) -> u64 {
    after
        .resources
        .iter()
        .filter(|(a, r)| before.resources.get(a) != Some(r))
        .map(|(a, r)| record_bytes(a, r))
        .sum()
}
