//! Outcome records on their way to the journal, written in batches.
//!
//! An operation's outcome (its `put` or `remove`) need not be durable
//! before its dependents start: only intents must precede provider calls.
//! So outcomes are queued here and written by one task at a time: while a
//! batch waits for the journal's sync, the records that arrive meanwhile
//! form the next batch, which is written as one append as soon as the
//! previous one is durable. With a thousand operations finishing at once
//! that is a handful of appends instead of a thousand (each a task, a
//! message to the writer thread and a wake-up). [`Outbox::settle`] waits
//! until everything queued is durable; [`Outbox::hand_over`] leaves what
//! is still queued to the commit, which journals it in its own write.
//!
//! A backend that places records ([`Backend::place`]: the local one) gets
//! each batch placed while the queue's lock is held, so a record is either
//! still queued or already ahead of anything written later. The commit
//! then needs no wait for the batch being synced: its own write lands
//! after it, and fails if that batch's write failed.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::task::JoinHandle;

use crate::state::{Backend, JournalEntry, StateError};

#[derive(Default)]
struct Queue {
    records: Vec<JournalEntry>,
    /// The buffer of a batch already written, emptied, to take the next
    /// records: batches swap two buffers instead of growing new ones.
    spare: Vec<JournalEntry>,
    /// Whether a task will still take `records`.
    scheduled: bool,
    /// A batch was written with [`Backend::append`] (the backend does not
    /// place records): [`Outbox::hand_over`] must wait for batches taken.
    unplaced: bool,
    /// Tasks that write (or wrote) a batch, not yet awaited.
    tasks: Vec<JoinHandle<Result<(), StateError>>>,
}

/// Queued outcome records of one run.
pub(super) struct Outbox {
    backend: Arc<dyn Backend>,
    queue: Mutex<Queue>,
    /// Held while a batch is written: the next batch forms meanwhile.
    writing: tokio::sync::Mutex<()>,
}

impl Outbox {
    pub fn new(backend: Arc<dyn Backend>) -> Arc<Outbox> {
        Arc::new(Outbox {
            backend,
            queue: Mutex::default(),
            writing: tokio::sync::Mutex::new(()),
        })
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `record`; a task writes it with whatever else is queued by
    /// then. Must be called inside a tokio runtime.
    pub fn push(self: &Arc<Self>, record: JournalEntry) {
        let mut queue = self.queue();
        queue.records.push(record);
        if !queue.scheduled {
            queue.scheduled = true;
            let outbox = self.clone();
            queue
                .tasks
                .push(tokio::spawn(async move { outbox.write_batch().await }));
        }
    }

    /// Waits for the batch before, then writes everything queued by now.
    async fn write_batch(&self) -> Result<(), StateError> {
        let _writing = self.writing.lock().await;
        let (mut batch, placed) = {
            let mut queue = self.queue();
            queue.scheduled = false;
            if queue.records.is_empty() {
                return Ok(());
            }
            let spare = std::mem::take(&mut queue.spare);
            let batch = std::mem::replace(&mut queue.records, spare);
            // Placed before the lock is let go (see the module docs).
            let placed = self.backend.place(&batch);
            queue.unplaced |= placed.is_none();
            (batch, placed)
        };
        let written = match placed {
            Some(placed) => placed.await,
            None => self.backend.append(&batch).await,
        };
        batch.clear();
        let mut queue = self.queue();
        if queue.spare.capacity() < batch.capacity() {
            queue.spare = batch;
        }
        written
    }

    /// Ends the outbox before a commit that journals the run's state
    /// itself: records still queued are taken back unwritten (they are in
    /// the run's state, so the commit's difference holds them), so that
    /// none reaches the journal after the commit marker. Saves the sync of
    /// a last batch that the commit's own sync makes durable anyway.
    /// Batches already taken are placed ahead of the commit when the
    /// backend places records, and then not waited for ([`Outbox::settle`]
    /// after the commit says how they ended); otherwise they are waited
    /// for here. Returns the records taken back (to append should the
    /// commit fail), or the first failure of a batch waited for.
    pub async fn hand_over(&self) -> Result<Vec<JournalEntry>, StateError> {
        let (taken, unplaced) = {
            let mut queue = self.queue();
            (std::mem::take(&mut queue.records), queue.unplaced)
        };
        if unplaced {
            self.settle().await?;
        }
        Ok(taken)
    }

    /// Waits until every record queued so far is durable; the first failure
    /// of any batch since the last settle.
    pub async fn settle(&self) -> Result<(), StateError> {
        let mut first_error = None;
        loop {
            let tasks = std::mem::take(&mut self.queue().tasks);
            if tasks.is_empty() {
                break;
            }
            for task in tasks {
                let result = task.await.unwrap_or_else(|e| {
                    Err(StateError::Io {
                        operation: "append",
                        location: self.backend.location(),
                        message: e.to_string(),
                    })
                });
                if let Err(e) = result {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Address;
    use crate::state::{LocalBackend, Ownership, ResourceState};

    fn put(i: usize) -> JournalEntry {
        JournalEntry::Put {
            address: Address::new("sim_x", format!("n{i}")),
            resource: ResourceState {
                id: format!("id-{i}"),
                ownership: Ownership::Created,
                attributes: Default::default(),
                depends_on: Vec::new(),
                identity: None,
            },
        }
    }

    #[tokio::test]
    async fn queued_records_are_durable_after_settle_in_few_appends() {
        let dir = tempfile::tempdir().unwrap();
        let backend = Arc::new(LocalBackend::new(dir.path().to_path_buf(), "s", "e"));
        let outbox = Outbox::new(backend.clone());
        // Queued without yielding: the first task has not run yet, so it
        // takes all of them.
        for i in 0..100 {
            outbox.push(put(i));
        }
        outbox.settle().await.unwrap();
        assert_eq!(backend.sync_count(), 1);
        // More while a batch is being written, then more again.
        for round in 1..4 {
            for i in 0..50 {
                outbox.push(put(100 * round + i));
                if i % 10 == 0 {
                    tokio::task::yield_now().await;
                }
            }
        }
        outbox.settle().await.unwrap();
        assert!(backend.sync_count() < 1 + 150, "{}", backend.sync_count());
        // Everything reached the journal: a fresh backend reads it back.
        let reread = LocalBackend::new(dir.path().to_path_buf(), "s", "e");
        let loaded = reread.load().await.unwrap();
        assert_eq!(loaded.state.resources.len(), 250);
        for i in (0..100).chain((1..4).flat_map(|r| (0..50).map(move |i| 100 * r + i))) {
            let address = Address::new("sim_x", format!("n{i}"));
            assert_eq!(loaded.state.resources[&address].id, format!("id-{i}"));
        }
    }

    /// The journal's resources by name, as a fresh backend loads them.
    async fn names_on_disk(dir: &std::path::Path) -> Vec<String> {
        let loaded = LocalBackend::new(dir.to_path_buf(), "s", "e")
            .load()
            .await
            .unwrap();
        let mut names: Vec<_> = loaded
            .state
            .resources
            .keys()
            .map(|a| a.name.clone())
            .collect();
        names.sort_by_key(|n| n[1..].parse::<u32>().unwrap());
        names
    }

    fn first(n: u32) -> Vec<String> {
        (0..n).map(|i| format!("n{i}")).collect()
    }

    /// Hands the outbox over with a batch of ten taken and being written
    /// (the runtime has one thread: the task runs at the yield and waits
    /// for the writer thread's sync) and ten more queued behind it.
    async fn hand_over_behind_a_batch(outbox: &Arc<Outbox>) -> Vec<JournalEntry> {
        for i in 0..10 {
            outbox.push(put(i));
        }
        tokio::task::yield_now().await;
        for i in 10..20 {
            outbox.push(put(i));
        }
        outbox.hand_over().await.unwrap()
    }

    #[tokio::test]
    async fn hand_over_takes_back_what_is_queued_and_leaves_the_placed_batch_ahead() {
        let dir = tempfile::tempdir().unwrap();
        let backend = Arc::new(LocalBackend::new(dir.path().to_path_buf(), "s", "e"));
        let outbox = Outbox::new(backend.clone());
        let taken = hand_over_behind_a_batch(&outbox).await;
        assert_eq!(taken.len(), 10);
        // The placed batch was not waited for; settling says how it ended.
        outbox.settle().await.unwrap();
        assert_eq!(backend.sync_count(), 1);
        assert_eq!(names_on_disk(dir.path()).await, first(10));
        // Nothing is written later either.
        tokio::task::yield_now().await;
        assert_eq!(backend.sync_count(), 1);
    }

    /// The local backend without [`Backend::place`]: appends only, like a
    /// backend that cannot place records.
    struct AppendOnly(LocalBackend);

    #[async_trait::async_trait]
    impl Backend for AppendOnly {
        fn location(&self) -> String {
            self.0.location()
        }
        async fn lock(
            &self,
            info: &crate::state::LockInfo,
            wait: std::time::Duration,
        ) -> Result<(), StateError> {
            self.0.lock(info, wait).await
        }
        async fn unlock(&self) -> Result<(), StateError> {
            self.0.unlock().await
        }
        async fn lock_holder(&self) -> Result<Option<crate::state::LockInfo>, StateError> {
            self.0.lock_holder().await
        }
        async fn force_unlock(&self, id: &str) -> Result<crate::state::LockInfo, StateError> {
            self.0.force_unlock(id).await
        }
        async fn load(&self) -> Result<crate::state::Loaded, StateError> {
            self.0.load().await
        }
        async fn append(&self, entries: &[JournalEntry]) -> Result<(), StateError> {
            self.0.append(entries).await
        }
        async fn commit(&self, state: &crate::state::State) -> Result<(), StateError> {
            self.0.commit(state).await
        }
    }

    #[tokio::test]
    async fn hand_over_waits_for_batches_a_backend_could_not_place() {
        let dir = tempfile::tempdir().unwrap();
        let local = LocalBackend::new(dir.path().to_path_buf(), "s", "e");
        let backend = Arc::new(AppendOnly(local));
        let outbox = Outbox::new(backend.clone());
        let taken = hand_over_behind_a_batch(&outbox).await;
        assert_eq!(taken.len(), 10);
        // Durable before hand_over returned: the batch being appended.
        assert_eq!(backend.0.sync_count(), 1);
        assert_eq!(names_on_disk(dir.path()).await, first(10));
    }

    #[tokio::test]
    async fn settle_with_nothing_queued_returns_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let backend = Arc::new(LocalBackend::new(dir.path().to_path_buf(), "s", "e"));
        let outbox = Outbox::new(backend.clone());
        outbox.settle().await.unwrap();
        assert_eq!(backend.sync_count(), 0);
    }
}
