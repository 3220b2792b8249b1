//! The journal's syncs, on a thread of their own: the event loop writes each turn's batch
//! without waiting for it to be durable and goes on; this thread makes every frame written so
//! far durable with one `fdatasync` and reports how far that reached. The loop releases a
//! turn's messages, chain calls and events once the report covers the turn's frame.

use entente_store::JournalSync;
use tokio::sync::watch;

/// What the sync thread last reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Report {
    /// Every journal frame up to this one is durable.
    Durable(u64),
    /// A sync failed: the store refuses to write on and the node stops.
    Failed(String),
}

/// The loop's end of the sync thread.
#[derive(Debug)]
pub(crate) struct Syncer {
    journal: JournalSync,
    requests: std::sync::mpsc::SyncSender<()>,
    reports: watch::Receiver<Report>,
}

impl Syncer {
    /// Starts the sync thread of `journal`; it ends when the returned handle is dropped.
    pub(crate) fn spawn(journal: JournalSync, name: String) -> std::io::Result<Self> {
        // One request waiting is enough: the sync that takes it covers everything written
        // before it starts.
        let (requests, wanted) = std::sync::mpsc::sync_channel::<()>(1);
        let (report, reports) = watch::channel(Report::Durable(journal.durable()));
        let thread_journal = journal.clone();
        std::thread::Builder::new().name(name).spawn(move || {
            // Each request says "frames were written".
            while wanted.recv().is_ok() {
                let next = match thread_journal.sync() {
                    Ok(durable) => Report::Durable(durable),
                    Err(e) => Report::Failed(e.to_string()),
                };
                let failed = matches!(next, Report::Failed(_));
                if report.send(next).is_err() || failed {
                    break;
                }
            }
        })?;
        Ok(Self {
            journal,
            requests,
            reports,
        })
    }

    /// Asks for a sync of everything written so far.
    pub(crate) fn request(&self) {
        // Full: a request is waiting, and the sync that takes it covers this one. Gone: the
        // thread ended on a failed sync, which the loop hears as a report.
        let _ = self.requests.try_send(());
    }

    /// Syncs on the caller's thread (when it has nothing else to do): the last frame durable.
    pub(crate) fn sync_here(&self) -> Result<u64, entente_store::StoreError> {
        self.journal.sync()
    }

    /// The last frame known durable (a checkpoint makes frames durable without a sync).
    pub(crate) fn durable(&self) -> u64 {
        self.journal.durable()
    }

    /// Waits for the next report; `Failed` if the thread is gone.
    pub(crate) async fn next(&mut self) -> Report {
        match self.reports.changed().await {
            Ok(()) => self.reports.borrow_and_update().clone(),
            Err(_) => Report::Failed("the journal's sync thread stopped".into()),
        }
    }
}
