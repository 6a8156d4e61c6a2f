//! The sim's network delays, on time: a waiter thread that answers each
//! delayed call at its deadline rather than on tokio's timer wheel.
//!
//! The sim stands in for a remote provider whose answer arrives on a socket
//! the moment it is sent. tokio's timers have millisecond granularity and
//! fire up to a millisecond or two after their deadline, which on a chain
//! of hundreds of calls adds up to a delay the benchmark would blame on the
//! engine. So delays are kept by one thread per provider: it sleeps on a
//! condition variable until the earliest deadline (the OS wakes it within
//! tens of microseconds) and completes that call's oneshot channel, which
//! wakes the waiting task. A call is never answered before its deadline:
//! the thread checks the clock before answering, so a spurious or early
//! wake-up only makes it wait again.
//!
//! The same thread runs the sim's own timed chores ([`Clock::at`]): the
//! world store ends its lease of the world's file lock with it.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

/// What is due at a deadline.
enum Due {
    /// Answer a delayed call.
    Wake(oneshot::Sender<()>),
    /// Run a chore (on the thread, with no lock of the clock held).
    Run(Box<dyn FnOnce() + Send>),
}

/// One delayed call or chore: due at `deadline`. `seq` keeps equal
/// deadlines in arrival order (and makes the order total).
struct Waiter {
    deadline: Instant,
    seq: u64,
    due: Due,
}

impl PartialEq for Waiter {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.seq) == (other.deadline, other.seq)
    }
}

impl Eq for Waiter {}

impl PartialOrd for Waiter {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Waiter {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.deadline, self.seq).cmp(&(other.deadline, other.seq))
    }
}

#[derive(Default)]
struct Queue {
    waiting: BinaryHeap<Reverse<Waiter>>,
    seq: u64,
    /// Set when the clock is dropped: the thread answers everyone and ends.
    closed: bool,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // The queue is consistent between any two statements that touch it.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Precise delays for one provider; the thread starts with the first delay
/// and ends when the clock is dropped.
#[derive(Default)]
pub struct Clock {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Clock {
    /// Resolves once `delay` has passed since the call, never earlier.
    pub async fn sleep(&self, delay: Duration) {
        let deadline = Instant::now() + delay;
        let Some(done) = self.enqueue(deadline) else {
            // No thread (it could not be started): tokio's timer, which is
            // late rather than early.
            tokio::time::sleep_until(deadline.into()).await;
            return;
        };
        if done.await.is_err() {
            // The thread is gone (the clock is being dropped): keep the
            // promise of never answering early.
            tokio::time::sleep_until(deadline.into()).await;
        }
    }

    /// Runs `chore` on the clock's thread at `deadline` (not before). A
    /// chore still queued when the clock is dropped is dropped unrun.
    /// `Err(chore)` if the thread cannot run.
    pub fn at(
        &self,
        deadline: Instant,
        chore: Box<dyn FnOnce() + Send>,
    ) -> Result<(), Box<dyn FnOnce() + Send>> {
        if self.start().is_none() {
            return Err(chore);
        }
        self.push(deadline, Due::Run(chore));
        Ok(())
    }

    /// Queues a wake-up at `deadline`; `None` if the thread cannot run.
    fn enqueue(&self, deadline: Instant) -> Option<oneshot::Receiver<()>> {
        self.start()?;
        let (wake, done) = oneshot::channel();
        self.push(deadline, Due::Wake(wake));
        Some(done)
    }

    fn push(&self, deadline: Instant, due: Due) {
        let mut queue = self.shared.lock();
        let earliest = queue
            .waiting
            .peek()
            .is_none_or(|Reverse(first)| deadline < first.deadline);
        let seq = queue.seq;
        queue.seq += 1;
        queue.waiting.push(Reverse(Waiter { deadline, seq, due }));
        drop(queue);
        if earliest {
            self.shared.changed.notify_one();
        }
    }

    /// Starts the thread if it is not running.
    fn start(&self) -> Option<()> {
        let mut thread = self.thread.lock().unwrap_or_else(PoisonError::into_inner);
        if thread.is_none() {
            let shared = self.shared.clone();
            let handle = std::thread::Builder::new()
                .name("sim-clock".into())
                .spawn(move || run(&shared))
                .ok()?;
            *thread = Some(handle);
        }
        Some(())
    }
}

impl Drop for Clock {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.changed.notify_one();
        let thread = self
            .thread
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(thread) = thread {
            drop(thread.join());
        }
    }
}

/// The thread: answers every waiter whose deadline has passed, then sleeps
/// until the next deadline or a new earliest one.
fn run(shared: &Shared) {
    let mut queue = shared.lock();
    let mut chores = Vec::new();
    loop {
        let now = Instant::now();
        while let Some(Reverse(first)) = queue.waiting.peek()
            && first.deadline <= now
        {
            if let Some(Reverse(waiter)) = queue.waiting.pop() {
                match waiter.due {
                    // A waiter that gave up (its call was cancelled) is no
                    // error.
                    Due::Wake(wake) => drop(wake.send(())),
                    Due::Run(chore) => chores.push(chore),
                }
            }
        }
        if !chores.is_empty() {
            // Chores take other locks: never under the queue's.
            drop(queue);
            for chore in chores.drain(..) {
                chore();
            }
            queue = shared.lock();
            continue;
        }
        if queue.closed {
            // Dropping the senders tells the rest to wait on their own.
            queue.waiting.clear();
            return;
        }
        queue = match queue.waiting.peek() {
            None => shared
                .changed
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner),
            Some(Reverse(first)) => {
                let left = first.deadline.saturating_duration_since(now);
                shared
                    .changed
                    .wait_timeout(queue, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn never_answers_before_the_deadline() {
        let clock = Clock::default();
        for ms in [0u64, 1, 3, 7] {
            let start = Instant::now();
            clock.sleep(Duration::from_millis(ms)).await;
            assert!(start.elapsed() >= Duration::from_millis(ms));
        }
    }

    #[tokio::test]
    async fn an_earlier_deadline_wakes_a_sleeping_thread() {
        let clock = Clock::default();
        let base = Instant::now();
        // The thread goes to sleep for an hour, then an earlier waiter comes.
        let mut late = clock.enqueue(base + Duration::from_secs(3600)).unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
        let deadlines: Vec<Instant> = [40u64, 30, 20, 10]
            .iter()
            .map(|ms| base + Duration::from_millis(*ms))
            .collect();
        let mut early: Vec<_> = deadlines
            .iter()
            .map(|d| (*d, clock.enqueue(*d).unwrap()))
            .collect();
        early.sort_by_key(|(d, _)| *d);
        for (deadline, done) in early {
            done.await.unwrap();
            assert!(Instant::now() >= deadline);
        }
        assert!(late.try_recv().is_err(), "the hour is not over");
    }

    #[tokio::test]
    async fn a_cancelled_wait_does_not_hold_up_the_others() {
        let clock = Clock::default();
        let cancelled = tokio::time::timeout(
            Duration::from_millis(1),
            clock.sleep(Duration::from_secs(3600)),
        )
        .await;
        assert!(cancelled.is_err());
        let start = Instant::now();
        clock.sleep(Duration::from_millis(5)).await;
        assert!(start.elapsed() >= Duration::from_millis(5));
        assert_eq!(clock.shared.lock().waiting.len(), 1, "the hour-long waiter");
    }

    #[test]
    fn dropping_the_clock_ends_its_thread() {
        let clock = Clock::default();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        rt.block_on(clock.sleep(Duration::from_millis(1)));
        let shared = clock.shared.clone();
        assert!(clock.thread.lock().unwrap().is_some());
        drop(clock);
        // Only the test holds the queue now: the thread let go of it.
        assert_eq!(Arc::strong_count(&shared), 1);
        assert!(shared.lock().closed);
    }

    #[test]
    fn a_chore_runs_on_time_and_one_left_at_drop_never_runs() {
        let clock = Clock::default();
        let (tx, rx) = std::sync::mpsc::channel();
        let deadline = Instant::now() + Duration::from_millis(5);
        clock
            .at(
                deadline,
                Box::new(move || {
                    let _ = tx.send(Instant::now());
                }),
            )
            .ok()
            .unwrap();
        let ran_at = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(ran_at >= deadline);
        let ran = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = ran.clone();
        clock
            .at(
                Instant::now() + Duration::from_secs(3600),
                Box::new(move || flag.store(true, std::sync::atomic::Ordering::SeqCst)),
            )
            .ok()
            .unwrap();
        drop(clock);
        assert!(!ran.load(std::sync::atomic::Ordering::SeqCst));
    }
}
