//! The journal's writer: a thread of its own that appends records and
//! syncs them, in the order they were queued, so that a list change can be
//! answered once the kernel has it instead of after the disk (one
//! `fdatasync` of a few hundred bytes took 4 ms on the project's VM, most of
//! the 5 ms a one-item change may take).
//!
//! What a crash between the answer and the sync leaves: the kernel holds
//! the new rules, the persisted state is the one before (the record is
//! missing or torn, and a torn last record is dropped at load), with its
//! older generation. The restarted agent loads that state, applies it (one
//! nft transaction, so the rules go from the newer to the older list
//! without a moment of an empty or half table) and reports its generation;
//! the manager sees a generation older than the one it stored and sends
//! the whole configuration again (the monitor's resync), and an edit made
//! against the newer generation is refused as not at its base, so nothing
//! is applied on top of the older list. Records are written in order and
//! each names its generation, so what a crash leaves is always a prefix of
//! the changes answered: some state the router really held.
//!
//! A failed append (disk full, I/O error) leaves the journal's content
//! unknown: that journal is abandoned (later records for it are dropped),
//! the failure is kept for the agent to report, and the next save writes a
//! snapshot, which starts a new journal.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use super::Journal;

/// One append: `bytes` to the journal `file` (of `epoch`), then its
/// directory synced when the file was just created.
pub(super) struct Append {
    pub file: Arc<File>,
    pub path: PathBuf,
    pub bytes: Vec<u8>,
    pub epoch: u64,
    pub sync_dir: Option<PathBuf>,
}

#[derive(Debug, Default)]
struct Progress {
    queued: u64,
    done: u64,
    /// The first failure not taken by [`Writer::take_failure`] yet.
    failure: Option<String>,
    /// The journal abandoned after a failure: its later records are dropped.
    failed_epoch: Option<u64>,
    /// Test hook: how long each append waits before it is written.
    delay: Duration,
}

#[derive(Debug, Default)]
struct Shared {
    progress: Mutex<Progress>,
    idle: Condvar,
}

impl Shared {
    fn progress(&self) -> MutexGuard<'_, Progress> {
        self.progress.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The writer thread's handle; dropping it lets the thread finish what is
/// queued and end.
#[derive(Debug)]
pub(super) struct Writer {
    jobs: Mutex<Option<Sender<Append>>>,
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Writer {
    /// Starts the thread; a failed append abandons `journal`'s file.
    pub fn start(journal: Arc<Mutex<Journal>>) -> Self {
        let (jobs, queue) = channel();
        let shared = Arc::new(Shared::default());
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("state-journal".into())
                .spawn(move || run(queue, &shared, &journal))
                .ok()
        };
        Self {
            jobs: Mutex::new(thread.is_some().then_some(jobs)),
            shared,
            thread: Mutex::new(thread),
        }
    }

    /// Test hook: every append waits `delay` first (a window in which the
    /// process can be killed with its answer given and its record unwritten).
    pub fn set_delay(&self, delay: Duration) {
        self.shared.progress().delay = delay;
    }

    /// Queues `append`; it is written after every append queued before.
    /// Without a thread (it could not be started) it is written here.
    pub fn queue(&self, append: Append, journal: &Arc<Mutex<Journal>>) {
        let sender = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        self.shared.progress().queued += 1;
        let unsent = match sender.as_ref() {
            Some(sender) => sender.send(append).err().map(|e| e.0),
            None => Some(append),
        };
        // No thread (or it is gone): written here.
        if let Some(append) = unsent {
            write_one(append, &self.shared, journal);
        }
    }

    /// Waits until everything queued is written and synced.
    pub fn flush(&self) {
        let mut progress = self.shared.progress();
        while progress.done < progress.queued {
            progress = self
                .shared
                .idle
                .wait(progress)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    /// The first append that failed since the last call, if any.
    pub fn take_failure(&self) -> Option<String> {
        self.shared.progress().failure.take()
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the queue ends the thread once it has written the rest.
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).take();
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

fn run(queue: Receiver<Append>, shared: &Shared, journal: &Arc<Mutex<Journal>>) {
    while let Ok(append) = queue.recv() {
        write_one(append, shared, journal);
    }
}

/// Writes and syncs one append, unless its journal was abandoned; marks it
/// done either way.
fn write_one(append: Append, shared: &Shared, journal: &Arc<Mutex<Journal>>) {
    let (delay, abandoned) = {
        let progress = shared.progress();
        (progress.delay, progress.failed_epoch == Some(append.epoch))
    };
    if !delay.is_zero() {
        std::thread::sleep(delay);
    }
    let result = if abandoned {
        Ok(())
    } else {
        append_and_sync(&append)
    };
    if let Err(message) = &result {
        tracing::error!(error = %message, "the journal is abandoned; the next change writes a snapshot");
        let mut held = journal.lock().unwrap_or_else(|e| e.into_inner());
        if held.epoch == append.epoch {
            held.file = None;
            held.snapshot = None;
        }
    }
    let mut progress = shared.progress();
    if let Err(message) = result {
        progress.failed_epoch = Some(append.epoch);
        progress.failure.get_or_insert(message);
    }
    progress.done += 1;
    shared.idle.notify_all();
}

fn append_and_sync(append: &Append) -> Result<(), String> {
    let mut file: &File = &append.file;
    file.write_all(&append.bytes)
        .and_then(|()| file.sync_data())
        .map_err(|e| format!("appending to {}: {e}", append.path.display()))?;
    if let Some(dir) = &append.sync_dir {
        // The new file's name is durable once the directory is synced.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| format!("syncing {}: {e}", dir.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal_with(file: File, epoch: u64) -> Arc<Mutex<Journal>> {
        Arc::new(Mutex::new(Journal {
            file: Some(Arc::new(file)),
            epoch,
            snapshot: Some(1),
            snapshot_len: 1,
            len: 0,
        }))
    }

    fn append(file: &Arc<File>, path: &std::path::Path, bytes: &[u8], epoch: u64) -> Append {
        Append {
            file: Arc::clone(file),
            path: path.to_path_buf(),
            bytes: bytes.to_vec(),
            epoch,
            sync_dir: None,
        }
    }

    #[test]
    fn appends_are_written_in_the_order_they_were_queued() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let file = File::create(&path).unwrap();
        let journal = journal_with(file, 1);
        let writer = Writer::start(Arc::clone(&journal));
        // A slow writer: everything below is queued before the first write.
        writer.set_delay(Duration::from_millis(20));
        let file = Arc::clone(journal.lock().unwrap().file.as_ref().unwrap());
        for part in [&b"one "[..], b"two ", b"three"] {
            writer.queue(append(&file, &path, part, 1), &journal);
        }
        writer.flush();
        assert_eq!(std::fs::read(&path).unwrap(), b"one two three");
        assert_eq!(writer.take_failure(), None);
    }

    #[test]
    fn a_failed_append_abandons_its_journal_and_is_reported_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        std::fs::write(&path, b"kept").unwrap();
        // Opened for reading only: every write fails.
        let file = File::open(&path).unwrap();
        let journal = journal_with(file, 7);
        let writer = Writer::start(Arc::clone(&journal));
        let file = Arc::clone(journal.lock().unwrap().file.as_ref().unwrap());
        writer.queue(append(&file, &path, b"lost", 7), &journal);
        writer.queue(append(&file, &path, b"also dropped", 7), &journal);
        writer.flush();
        let failure = writer.take_failure().expect("the append failed");
        assert!(failure.contains("appending to"), "{failure}");
        assert_eq!(writer.take_failure(), None, "reported once");
        let held = journal.lock().unwrap();
        assert!(held.file.is_none(), "the journal is abandoned");
        assert!(held.snapshot.is_none(), "the next save is a snapshot");
        assert_eq!(std::fs::read(&path).unwrap(), b"kept");
    }

    #[test]
    fn dropping_the_writer_writes_what_is_queued() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j");
        let file = File::create(&path).unwrap();
        let journal = journal_with(file, 1);
        let writer = Writer::start(Arc::clone(&journal));
        writer.set_delay(Duration::from_millis(20));
        let file = Arc::clone(journal.lock().unwrap().file.as_ref().unwrap());
        writer.queue(append(&file, &path, b"last words", 1), &journal);
        drop(writer);
        assert_eq!(std::fs::read(&path).unwrap(), b"last words");
    }
}
