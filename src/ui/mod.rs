//! All output goes through one [`Printer`]: it owns stdout and stderr,
//! decides whether progress bars draw (only on a terminal), and whether
//! colour is used. The engine never prints; it reports [`crate::apply::Event`]s.
//!
//! Progress lines (CI logs) may be *gathered*: while an apply runs, a
//! thread writes the gathered lines every [`GATHER_INTERVAL`], so a
//! thousand operations starting at once cost a few writes instead of a
//! thousand system calls on the apply's own threads. Every other line
//! first writes what is gathered, so the order on stderr is the order of
//! events.

pub mod diagnostics;
mod progress;

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

pub use progress::Progress;

/// Where output goes and how it looks.
#[derive(Debug)]
pub struct Printer {
    /// stderr is a terminal: progress bars and colour.
    pub interactive: bool,
    /// stdin is a terminal: we may ask questions.
    pub can_prompt: bool,
    pub color: bool,
    lock: Mutex<()>,
    /// Progress lines gathered and not yet written (see the module docs).
    gathered: Mutex<Gathered>,
    /// Wakes the thread that writes gathered lines when gathering stops.
    stop_gathering: Condvar,
}

/// How long a gathered progress line waits at most before it is written.
pub const GATHER_INTERVAL: Duration = Duration::from_millis(50);

/// Gathered lines at most before they are written at once.
const GATHER_LIMIT: usize = 64 * 1024;

#[derive(Debug, Default)]
struct Gathered {
    bytes: Vec<u8>,
    /// The thread writing gathered lines, while gathering is on.
    thread: Option<JoinHandle<()>>,
    on: bool,
}

impl Printer {
    pub fn new(no_color: bool) -> Printer {
        let interactive = std::io::stderr().is_terminal();
        let color = interactive && !no_color && std::env::var_os("NO_COLOR").is_none();
        Printer {
            interactive,
            can_prompt: std::io::stdin().is_terminal(),
            color,
            lock: Mutex::new(()),
            gathered: Mutex::default(),
            stop_gathering: Condvar::new(),
        }
    }

    fn gathered(&self) -> MutexGuard<'_, Gathered> {
        self.gathered.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes the gathered progress lines (with the output lock held).
    fn write_gathered(&self) {
        let bytes = std::mem::take(&mut self.gathered().bytes);
        if !bytes.is_empty() {
            let mut stderr = std::io::stderr().lock();
            let _ = stderr.write_all(&bytes);
            let _ = stderr.flush();
        }
    }

    /// Starts gathering progress lines: a thread writes them every
    /// [`GATHER_INTERVAL`] until [`Printer::stop_gathering`].
    pub fn start_gathering(self: &Arc<Self>) {
        let mut gathered = self.gathered();
        if gathered.on {
            return;
        }
        gathered.on = true;
        let printer = self.clone();
        let thread = std::thread::Builder::new()
            .name("cairn-progress".into())
            .spawn(move || {
                loop {
                    let gathered = printer.gathered();
                    let (gathered, _) = printer
                        .stop_gathering
                        .wait_timeout_while(gathered, GATHER_INTERVAL, |g| g.on)
                        .unwrap_or_else(PoisonError::into_inner);
                    let on = gathered.on;
                    drop(gathered);
                    let _guard = printer.lock.lock();
                    printer.write_gathered();
                    if !on {
                        break;
                    }
                }
            });
        match thread {
            Ok(thread) => gathered.thread = Some(thread),
            // Without the thread, lines are written as they come.
            Err(_) => gathered.on = false,
        }
    }

    /// Stops gathering and writes what was gathered.
    pub fn stop_gathering(&self) {
        let thread = {
            let mut gathered = self.gathered();
            gathered.on = false;
            gathered.thread.take()
        };
        self.stop_gathering.notify_all();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
        let _guard = self.lock.lock();
        self.write_gathered();
    }

    /// A progress line (stderr): gathered while gathering is on.
    pub fn progress(&self, text: &str) {
        let mut gathered = self.gathered();
        if !gathered.on {
            drop(gathered);
            return self.err(text);
        }
        gathered.bytes.extend_from_slice(text.as_bytes());
        if !text.ends_with('\n') {
            gathered.bytes.push(b'\n');
        }
        if gathered.bytes.len() >= GATHER_LIMIT {
            drop(gathered);
            let _guard = self.lock.lock();
            self.write_gathered();
        }
    }

    /// A line of the command's result (stdout).
    pub fn out(&self, text: &str) {
        let _guard = self.lock.lock();
        self.write_gathered();
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(text.as_bytes());
        if !text.ends_with('\n') {
            let _ = stdout.write_all(b"\n");
        }
        let _ = stdout.flush();
    }

    /// A line of information, warning or error (stderr).
    pub fn err(&self, text: &str) {
        let _guard = self.lock.lock();
        self.write_gathered();
        let mut stderr = std::io::stderr().lock();
        // One write per line: stderr is unbuffered.
        if text.ends_with('\n') {
            let _ = stderr.write_all(text.as_bytes());
        } else {
            let mut line = String::with_capacity(text.len() + 1);
            line.push_str(text);
            line.push('\n');
            let _ = stderr.write_all(line.as_bytes());
        }
        let _ = stderr.flush();
    }

    /// Asks a yes/no question on the terminal; only `yes` accepts.
    pub fn confirm(&self, question: &str) -> bool {
        self.err(question);
        let _ = std::io::stderr().write_all(b"  Enter a value: ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer).is_ok() && answer.trim() == "yes"
    }
}

/// Appends `HH:MM:SS` (UTC) of now, for plain progress lines.
pub fn push_clock(out: &mut String) {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let day = secs % 86_400;
    for (i, part) in [day / 3600, day % 3600 / 60, day % 60]
        .into_iter()
        .enumerate()
    {
        if i > 0 {
            out.push(':');
        }
        // Each part is below 100: two digits.
        out.push(char::from(b'0' + (part / 10) as u8));
        out.push(char::from(b'0' + (part % 10) as u8));
    }
}

/// With `CAIRN_TIMINGS=1`, prints how long each phase took (to stderr), and
/// on Linux the resident memory after it and the peak so far, for finding
/// where time and memory go at scale.
pub struct PhaseTimer {
    last: Option<std::sync::Mutex<std::time::Instant>>,
}

/// ` (rss N MB, peak N MB)` from `/proc/self/status`, or nothing.
fn memory() -> String {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return String::new();
    };
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    match (field("VmRSS:"), field("VmHWM:")) {
        (Some(rss), Some(peak)) => format!(" (rss {} MB, peak {} MB)", rss / 1024, peak / 1024),
        _ => String::new(),
    }
}

impl PhaseTimer {
    pub fn from_env() -> PhaseTimer {
        let on = std::env::var_os("CAIRN_TIMINGS").is_some_and(|v| v == "1");
        PhaseTimer {
            last: on.then(|| std::sync::Mutex::new(std::time::Instant::now())),
        }
    }

    /// Prints the time since the previous mark.
    pub fn mark(&self, phase: &str) {
        if let Some(last) = &self.last {
            let mut last = last
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            eprintln!(
                "timing: {phase}: {:.4}s{}",
                last.elapsed().as_secs_f64(),
                memory()
            );
            *last = std::time::Instant::now();
        }
    }
}
