use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use entente_state_manager::{ChannelSnapshot, ForkInfo, PersistRecord, StoredTransaction};
use entente_types::{Address, B256, Bytes, Signature, SignedIntent};
use redb::{
    Database, Durability, ReadOnlyTable, ReadTransaction, ReadableDatabase, ReadableTable, Table,
    TableDefinition, WriteTransaction,
};

use crate::StoreError;
use crate::codec::{
    ChainCursor, ChannelRecord, ChannelStatus, ChannelV1, ForkV1, StoredMachine, TransactionV1, channel_key,
    cursor_key, decode, decode_digest, decode_signature, encode, encode_signature, fork_key, height_key,
    key_u64, prefix_end, signature_key,
};
use crate::journal::{JOURNAL_CAPACITY, JOURNAL_FILE, Journal, JournalFile, Redo};
use crate::pending::{Pending, TABLES, UnknownTable, Write};

/// Name of the database file inside the data directory.
pub const DB_FILE: &str = "entente.redb";

/// redb's page cache for a store on disk (redb's default is 1 GiB): reads are few (a restart,
/// event logs), writes reach the file through the journal's checkpoints.
const CACHE_SIZE: usize = 64 << 20;

/// Writes in the journal but not yet in the database that make a write apply them at once
/// (a host that is never idle; one that is applies them sooner, [`Store::apply_journaled`]).
const PENDING_WRITES: usize = 1_024;

/// Bytes of keys and values in the journal but not yet in the database that make a write
/// apply them at once.
const PENDING_BYTES: usize = 1 << 20;

/// Schema version this build writes and reads. Version 2 adds the journal beside the
/// database: a version-1 store is upgraded on open (an older build then refuses it, as it would
/// not replay the journal). Version 3 applies the journal's writes to the database in groups
/// and records where the journal's round starts: a version-2 build would take a database that
/// holds part of a round for one that holds all of it, and drop the rest.
pub const SCHEMA_VERSION: u64 = 3;

/// The oldest schema version this build opens (and upgrades).
const OLDEST_SCHEMA_VERSION: u64 = 1;

type Bin = TableDefinition<'static, &'static [u8], &'static [u8]>;

const META: TableDefinition<'static, &'static str, u64> = TableDefinition::new("meta");
const CHANNELS: Bin = TableDefinition::new("channels");
const FORKS: Bin = TableDefinition::new("forks");
const TRANSACTIONS: Bin = TableDefinition::new("transactions");
const SIGNATURES: Bin = TableDefinition::new("signatures");
const OWN_SIGNATURES: Bin = TableDefinition::new("own_signatures");
/// Our intents that may still apply, by (channel, nonce): `(SignedIntent, sent)`.
const OWN_INTENTS: Bin = TableDefinition::new("own_intents");
const FINALIZED: TableDefinition<'static, &'static [u8], u64> = TableDefinition::new("finalized");
const CURSORS: Bin = TableDefinition::new("chain_cursors");
/// Machine sources by [`MachineSource::digest`](crate::MachineSource::digest): every channel
/// that runs a machine refers to its one copy here.
const MACHINES: Bin = TableDefinition::new("machines");
/// A channel core's own records (`entente_channel::Record::Life` / `Court`), by channel id and kind.
const LIVES: Bin = TableDefinition::new("channel_lives");

/// Each channel's event log, by channel id and sequence number.
const EVENTS: Bin = TableDefinition::new("channel_events");

fn event_key(channel: &B256, seq: u64) -> [u8; 40] {
    let mut key = [0u8; 40];
    key[..32].copy_from_slice(channel.as_slice());
    key[32..].copy_from_slice(&seq.to_be_bytes());
    key
}

/// Kind byte of a channel's life record in [`LIVES`].
const LIFE: u8 = 0;
/// Kind byte of a channel's dispute-handler view in [`LIVES`].
const COURT: u8 = 1;
/// Kind byte of a channel's machine source in [`LIVES`].
const MACHINE: u8 = 2;

fn life_key(channel: &B256, kind: u8) -> [u8; 33] {
    let mut key = [0u8; 33];
    key[..32].copy_from_slice(channel.as_slice());
    key[32] = kind;
    key
}

const SCHEMA_KEY: &str = "schema_version";
/// Number of the last journal frame whose writes the database holds (see `journal`).
const JOURNAL_SEQ_KEY: &str = "journal_seq";
/// Number of the first frame of the journal's current round (the frames from the file's
/// beginning), written with every durable commit that starts a round (a checkpoint, an open).
/// The database may hold some frames of the round already (groups applied, then a clean close
/// made them durable); without the key (older stores) the round starts after `journal_seq`.
const JOURNAL_ROUND_KEY: &str = "journal_round";

/// A channel core's stored records for one channel (see [`Store::lives`]).
#[derive(Debug, Clone)]
pub struct StoredLife {
    /// The channel.
    pub channel_id: B256,
    /// Its encoded life.
    pub life: Bytes,
    /// Its dispute handler's view, if stored.
    pub court: Option<Bytes>,
    /// Its machine source, if stored (one copy for every channel that runs it).
    pub machine: Option<Arc<crate::MachineSource>>,
}

/// Machine sources read from the machines table in one read transaction, each once.
struct Machines<'a> {
    store: &'a Store,
    txn: &'a ReadTransaction,
    seen: std::collections::HashMap<B256, Arc<crate::MachineSource>>,
}

impl<'a> Machines<'a> {
    fn new(store: &'a Store, txn: &'a ReadTransaction) -> Self {
        Self {
            store,
            txn,
            seen: std::collections::HashMap::new(),
        }
    }

    fn get(&mut self, digest: &B256) -> Result<Arc<crate::MachineSource>, String> {
        if let Some(m) = self.seen.get(digest) {
            return Ok(m.clone());
        }
        let table = self
            .txn
            .open_table(MACHINES)
            .map_err(|e| format!("machines table: {}", self.store.err(e)))?;
        let value = table
            .get(digest.as_slice())
            .map_err(|e| format!("machine {digest}: {}", self.store.err(e)))?
            .ok_or_else(|| format!("machine {digest} is referred to but not stored"))?;
        let machine: crate::MachineSource = decode("machine", value.value())?;
        if machine.digest() != *digest {
            return Err(format!("machine stored under {digest} has another digest"));
        }
        let machine = Arc::new(machine);
        self.seen.insert(*digest, machine.clone());
        Ok(machine)
    }
}

/// How [`Store::open_with`] treats the data directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Create a new store (the directory is created if needed); refuse if one exists.
    Create,
    /// Open an existing store; refuse if the directory or the database is missing.
    Open,
    /// Open the store if it exists, else create it.
    OpenOrCreate,
}

/// One node's durable storage: a redb database in a data directory. See the crate docs for the
/// durability contract.
pub struct Store {
    db: Database,
    path: PathBuf,
    /// The journal, for a store on disk (`None`: every batch is a durable redb commit).
    journal: Option<Box<Mutex<Journaled>>>,
}

/// The journal and the number of its next frame.
#[derive(Debug)]
struct Journaled {
    journal: Journal,
    path: PathBuf,
    next_seq: u64,
    /// Set while a batch is in the journal but not yet among the pending writes: a panic in
    /// between leaves it set, and the store refuses to write on.
    interrupted: bool,
    progress: Arc<Progress>,
    /// Writes in the journal that the database does not hold yet.
    pending: Pending,
    /// Number of the last frame the database holds.
    applied: u64,
    /// The database as the pending writes found it (read by a batch's checks), opened once
    /// for every batch until the pending writes are applied.
    reader: Option<Reader>,
}

/// How far the journal is written and synced, shared by the writer and its [`JournalSync`]s.
#[derive(Debug)]
struct Progress {
    /// Number of the last frame written to the journal (or made durable by a checkpoint).
    written: AtomicU64,
    /// Number of the last frame known durable: every frame up to it survives a crash.
    durable: AtomicU64,
    /// Why the store stopped writing, after a write or a sync that failed.
    failed: Mutex<Option<String>>,
}

impl Progress {
    fn failed(&self) -> Option<String> {
        self.failed.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn fail(&self, reason: String) {
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(reason);
    }
}

/// A batch's writes, held apart from its store between turns ([`Batch::detach`]).
#[must_use = "detached writes do nothing until reattached and written"]
#[derive(Debug, Default)]
pub struct Detached {
    ops: Vec<Op>,
}

/// Where a batch given to [`Batch::write`] stands.
#[must_use = "a written batch is durable only once a sync covers its frame"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written(Option<u64>);

impl Written {
    /// The journal frame that holds the batch (durable once [`JournalSync::durable`] reaches
    /// it), or `None` if the batch is durable already (a store without a journal).
    pub fn frame(self) -> Option<u64> {
        self.0
    }
}

/// Makes a store's journal durable from any thread: one `fdatasync` covers every batch
/// written before it starts. A host that writes its batches with [`Batch::write`] runs this
/// off its event loop and releases each batch's messages once [`Self::durable`] covers its
/// frame. See [`Store::journal_sync`].
#[derive(Clone)]
pub struct JournalSync {
    storage: Arc<dyn redb::StorageBackend>,
    progress: Arc<Progress>,
    path: PathBuf,
}

impl std::fmt::Debug for JournalSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalSync")
            .field("path", &self.path)
            .field("durable", &self.durable())
            .finish_non_exhaustive()
    }
}

impl JournalSync {
    /// The number of the last frame known durable.
    pub fn durable(&self) -> u64 {
        self.progress.durable.load(Ordering::Acquire)
    }

    /// Makes every frame written so far durable and returns the number of the last one durable.
    /// A failed sync stops the store (every later write is refused with
    /// [`StoreError::Failed`]): what it covered may or may not be on disk.
    pub fn sync(&self) -> Result<u64, StoreError> {
        if let Some(reason) = self.progress.failed() {
            return Err(StoreError::Failed {
                path: self.path.clone(),
                reason,
            });
        }
        // Read before the sync starts: every frame up to it is written, so the sync covers it.
        let upto = self.progress.written.load(Ordering::Acquire);
        if upto <= self.durable() {
            return Ok(self.durable());
        }
        if let Err(source) = self.storage.sync_data() {
            let e = StoreError::Io {
                path: self.path.clone(),
                source,
            };
            self.progress.fail(e.to_string());
            return Err(e);
        }
        self.progress.durable.fetch_max(upto, Ordering::AcqRel);
        Ok(self.durable())
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Creates a new store in `dir` (created if missing). Refuses if a store exists there.
    pub fn create(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(dir, OpenMode::Create)
    }

    /// Opens the existing store in `dir`. A missing directory or database, a corrupt file, a
    /// schema-version mismatch and a store already open elsewhere are each a distinct error.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(dir, OpenMode::Open)
    }

    /// Opens or creates the store in `dir` as `mode` says.
    pub fn open_with(dir: impl AsRef<Path>, mode: OpenMode) -> Result<Self, StoreError> {
        let dir = dir.as_ref();
        let path = dir.join(DB_FILE);
        let dir_exists = match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => true,
            Ok(_) => {
                return Err(StoreError::NotADirectory {
                    path: dir.to_path_buf(),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(source) => {
                return Err(StoreError::Io {
                    path: dir.to_path_buf(),
                    source,
                });
            }
        };
        // A zero-length file is what an interrupted creation leaves: nothing to lose.
        let db_len = match std::fs::metadata(&path) {
            Ok(m) => Some(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        let create = match (mode, db_len) {
            (OpenMode::Create, Some(len)) if len > 0 => return Err(StoreError::AlreadyExists { path }),
            (OpenMode::Open, _) if !dir_exists => {
                return Err(StoreError::MissingDir {
                    path: dir.to_path_buf(),
                });
            }
            (OpenMode::Open, None | Some(0)) => return Err(StoreError::MissingDatabase { path }),
            (OpenMode::Open, Some(_)) | (OpenMode::OpenOrCreate, Some(1..)) => false,
            (OpenMode::Create | OpenMode::OpenOrCreate, _) => true,
        };
        let journal_path = dir.join(JOURNAL_FILE);
        if create {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
            // The directory's own entry, if it was just made, is durable before anything in it.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent).map_err(|source| StoreError::Io {
                    path: parent.to_path_buf(),
                    source,
                })?;
            }
            let db = Database::builder()
                .set_cache_size(CACHE_SIZE)
                .create(&path)
                .map_err(|e| db_error(&path, e))?;
            let mut store = Self {
                db,
                path,
                journal: None,
            };
            store.init_schema()?;
            store.open_journal(dir, journal_path)?;
            Ok(store)
        } else {
            let db = Database::builder()
                .set_cache_size(CACHE_SIZE)
                .open(&path)
                .map_err(|e| db_error(&path, e))?;
            let mut store = Self {
                db,
                path,
                journal: None,
            };
            store.check_schema()?;
            store.open_journal(dir, journal_path)?;
            Ok(store)
        }
    }

    /// Opens the journal file of a store in `dir`. A database that has recorded a journal
    /// frame number may hold acknowledged writes only in its journal: the journal must be there
    /// and not empty ([`StoreError::MissingJournal`] otherwise). A database without one (just
    /// created, or from before journals) gets a new, empty journal, made durable (file and
    /// directory entry) before the database records a frame number: a journal left by an
    /// earlier store in the directory is never replayed into this one.
    fn open_journal(&mut self, dir: &Path, path: PathBuf) -> Result<(), StoreError> {
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        let fresh = self.journal_seq()?.is_none();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(fresh)
            .truncate(fresh)
            .open(&path);
        let file = match file {
            Ok(file) => file,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::MissingJournal { path });
            }
            Err(e) => return Err(io(e)),
        };
        if fresh {
            file.sync_all().map_err(io)?;
            sync_dir(dir).map_err(|source| StoreError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        } else if file.metadata().map_err(io)?.len() == 0 {
            return Err(StoreError::MissingJournal { path });
        }
        self.attach_journal(Arc::new(JournalFile(file)), JOURNAL_CAPACITY, path)
    }

    /// The number of the last journal frame the database holds, if it ever had a journal.
    fn journal_seq(&self) -> Result<Option<u64>, StoreError> {
        self.meta(JOURNAL_SEQ_KEY)
    }

    fn meta(&self, key: &str) -> Result<Option<u64>, StoreError> {
        let txn = self.read()?;
        let meta = txn.open_table(META).map_err(|e| self.err(e))?;
        Ok(meta.get(key).map_err(|e| self.err(e))?.map(|v| v.value()))
    }

    /// A store on two storages of the embedder's own (tests of power loss): the database on
    /// `db` and the journal on `journal`, as [`Store::open`] keeps them in a data directory.
    #[doc(hidden)]
    pub fn with_journal(
        db: impl redb::StorageBackend,
        journal: impl redb::StorageBackend,
        journal_capacity: u64,
        name: impl Into<PathBuf>,
    ) -> Result<Self, StoreError> {
        let mut store = Self::on_backend(db, name)?;
        let path = store.path.with_extension("journal");
        store.attach_journal(Arc::new(journal), journal_capacity, path)?;
        Ok(store)
    }

    /// Opens the journal on `storage`, replays into the database (in one durable commit) the
    /// frames it holds beyond the database's own, and from now on commits through it.
    fn attach_journal(
        &mut self,
        storage: Arc<dyn redb::StorageBackend>,
        capacity: u64,
        path: PathBuf,
    ) -> Result<(), StoreError> {
        let applied = self.journal_seq()?.unwrap_or(0);
        let first = self.meta(JOURNAL_ROUND_KEY)?.unwrap_or(applied.saturating_add(1));
        let (mut journal, frames) =
            Journal::open(storage, capacity, first, applied).map_err(|source| StoreError::Io {
                path: path.clone(),
                source,
            })?;
        let last = frames.last().map_or(applied, |f| f.0);
        let txn = self.write()?;
        {
            let mut t = Tables::open(self, &txn)?;
            for (_, redo) in frames {
                for r in redo {
                    t.apply(&r).map_err(|e| self.apply_err(e))?;
                }
            }
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            meta.insert(JOURNAL_SEQ_KEY, last).map_err(|e| self.err(e))?;
            // The journal is cleared below: its next round starts after the last frame.
            meta.insert(JOURNAL_ROUND_KEY, last + 1)
                .map_err(|e| self.err(e))?;
            meta.insert(SCHEMA_KEY, SCHEMA_VERSION).map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))?;
        // Everything replayed is durable in the database now: the journal starts empty.
        journal.clear().map_err(|source| StoreError::Io {
            path: path.clone(),
            source,
        })?;
        self.journal = Some(Box::new(Mutex::new(Journaled {
            journal,
            path,
            next_seq: last + 1,
            interrupted: false,
            pending: Pending::default(),
            applied: last,
            reader: None,
            progress: Arc::new(Progress {
                written: AtomicU64::new(last),
                durable: AtomicU64::new(last),
                failed: Mutex::new(None),
            }),
        })));
        Ok(())
    }

    /// A store that lives in memory only (simulations and tests): the same tables, codecs and
    /// batches as on disk, gone when dropped.
    pub fn in_memory() -> Result<Self, StoreError> {
        let path = PathBuf::from(":memory:");
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .map_err(|e| db_error(&path, e))?;
        let store = Self {
            db,
            path,
            journal: None,
        };
        store.init_schema()?;
        Ok(store)
    }

    /// A store on storage of the embedder's own (a [`StorageBackend`](redb::StorageBackend):
    /// a device, an encrypted or remote volume, memory that outlives the node), named `name` in
    /// errors. An empty backend gets a new store; one that holds a store is opened (and its
    /// schema version checked). The durability contract holds if the backend's `sync_data`
    /// makes what was written durable. The storage must belong to this store alone and never go
    /// back to an older copy (no second store on it, no restored snapshot): the own-signature log
    /// in it is what keeps the node from signing twice at one height.
    ///
    /// A database that was written with a journal ([`Self::open`]'s data directories) is
    /// refused ([`StoreError::MissingJournal`]): its latest writes may be in the journal only.
    pub fn with_backend(
        backend: impl redb::StorageBackend,
        name: impl Into<PathBuf>,
    ) -> Result<Self, StoreError> {
        let store = Self::on_backend(backend, name)?;
        if store.journal_seq()?.is_some() {
            return Err(StoreError::MissingJournal {
                path: store.path.with_extension("journal"),
            });
        }
        Ok(store)
    }

    /// A store on `backend` (new if the backend is empty), without a journal yet.
    fn on_backend(backend: impl redb::StorageBackend, name: impl Into<PathBuf>) -> Result<Self, StoreError> {
        let path = name.into();
        let empty = backend.len().map_err(|source| StoreError::Io {
            path: path.clone(),
            source,
        })? == 0;
        let db = Database::builder()
            .create_with_backend(backend)
            .map_err(|e| db_error(&path, e))?;
        let store = Self {
            db,
            path,
            journal: None,
        };
        if empty {
            store.init_schema()?;
        } else {
            store.check_schema()?;
        }
        Ok(store)
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn init_schema(&self) -> Result<(), StoreError> {
        let txn = self.write()?;
        {
            let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
            meta.insert(SCHEMA_KEY, SCHEMA_VERSION).map_err(|e| self.err(e))?;
            // Create every table now, so readers never meet a missing one.
            for def in [
                CHANNELS,
                FORKS,
                TRANSACTIONS,
                SIGNATURES,
                OWN_SIGNATURES,
                OWN_INTENTS,
                CURSORS,
                LIVES,
                MACHINES,
            ] {
                txn.open_table(def).map_err(|e| self.err(e))?;
            }
            txn.open_table(FINALIZED).map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))
    }

    fn check_schema(&self) -> Result<(), StoreError> {
        let txn = self.read()?;
        let found = match txn.open_table(META) {
            Ok(meta) => meta.get(SCHEMA_KEY).map_err(|e| self.err(e))?.map(|v| v.value()),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(self.err(e)),
        };
        match found {
            Some(OLDEST_SCHEMA_VERSION..=SCHEMA_VERSION) => Ok(()),
            Some(found) => Err(StoreError::SchemaVersion {
                path: self.path.clone(),
                found,
                expected: SCHEMA_VERSION,
            }),
            None => Err(self.corrupt("no schema version: not an Entente store".into())),
        }
    }

    /// Overwrites the schema version (tests of the version check).
    #[doc(hidden)]
    pub fn force_schema_version(&self, version: u64) -> Result<(), StoreError> {
        let txn = self.write()?;
        txn.open_table(META)
            .and_then(|mut meta| meta.insert(SCHEMA_KEY, version).map(|_| ()).map_err(Into::into))
            .map_err(|e| self.err(e))?;
        txn.commit().map_err(|e| self.err(e))
    }

    /// An empty write batch: collect records, then [`Batch::commit`] them in one durable write
    /// transaction (one fsync).
    pub fn batch(&self) -> Batch<'_> {
        Batch {
            store: self,
            ops: Vec::new(),
        }
    }

    /// A batch that goes on from writes collected earlier ([`Batch::detach`]).
    pub fn reattach(&self, writes: Detached) -> Batch<'_> {
        Batch {
            store: self,
            ops: writes.ops,
        }
    }

    // ----- reads -----------------------------------------------------------------------------

    /// The channel `channel`, if stored.
    pub fn channel(&self, channel: &B256) -> Result<Option<ChannelRecord>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(CHANNELS).map_err(|e| self.err(e))?;
        let value = table
            .get(channel_key(channel).as_slice())
            .map_err(|e| self.err(e))?;
        let Some(value) = value else { return Ok(None) };
        let v: ChannelV1 = decode("channel", value.value()).map_err(|r| self.corrupt(r))?;
        let mut machines = Machines::new(self, &txn);
        v.into_record(|d| machines.get(d).map(|m| (*m).clone()))
            .map(Some)
            .map_err(|r| self.corrupt(r))
    }

    /// The stored participant of channel `channel` (its record read without its machine).
    pub(crate) fn channel_owner(&self, channel: &B256) -> Result<Option<Address>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(CHANNELS).map_err(|e| self.err(e))?;
        let value = table
            .get(channel_key(channel).as_slice())
            .map_err(|e| self.err(e))?;
        value
            .map(|v| decode::<ChannelV1>("channel", v.value()).map(|v| v.me()))
            .transpose()
            .map_err(|r| self.corrupt(r))
    }

    /// Every channel life stored by a channel core, by channel id: (id, life bytes, the dispute
    /// handler's view if stored).
    pub fn lives(&self) -> Result<Vec<StoredLife>, StoreError> {
        let txn = self.read()?;
        let table = match txn.open_table(LIVES) {
            Ok(t) => t,
            // A data directory from before channel lives: none stored.
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.err(e)),
        };
        let mut machines = Machines::new(self, &txn);
        let mut out: Vec<StoredLife> = Vec::new();
        for item in table.iter().map_err(|e| self.err(e))? {
            let (k, v) = item.map_err(|e| self.err(e))?;
            let key = k.value();
            if key.len() != 33 {
                return Err(self.corrupt("a channel life key is not 33 bytes".into()));
            }
            let id = B256::from_slice(&key[..32]);
            let bytes = Bytes::copy_from_slice(v.value());
            match key[32] {
                LIFE => out.push(StoredLife {
                    channel_id: id,
                    life: bytes,
                    court: None,
                    machine: None,
                }),
                COURT => match out.last_mut() {
                    Some(last) if last.channel_id == id => last.court = Some(bytes),
                    _ => return Err(self.corrupt(format!("channel {id} has a court view but no life"))),
                },
                MACHINE => match out.last_mut() {
                    Some(last) if last.channel_id == id => {
                        let stored: StoredMachine = decode("machine", &bytes).map_err(|r| self.corrupt(r))?;
                        let machine = match stored {
                            StoredMachine::Stored(digest) => machines.get(&digest),
                            inline => inline.resolve(|_| Err(String::new())).map(Arc::new),
                        };
                        last.machine = Some(machine.map_err(|r| self.corrupt(r))?);
                    }
                    _ => return Err(self.corrupt(format!("channel {id} has a machine but no life"))),
                },
                kind => return Err(self.corrupt(format!("unknown channel life kind {kind}"))),
            }
        }
        Ok(out)
    }

    /// Up to `max` events of `channel`'s log from sequence number `from` on, in order.
    pub fn events(&self, channel: &B256, from: u64, max: usize) -> Result<Vec<(u64, Bytes)>, StoreError> {
        let txn = self.read()?;
        let table = match txn.open_table(EVENTS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.err(e)),
        };
        let start = event_key(channel, from);
        let end = event_key(channel, u64::MAX);
        let mut out = Vec::new();
        for item in table
            .range::<&[u8]>(start.as_slice()..=end.as_slice())
            .map_err(|e| self.err(e))?
        {
            if out.len() >= max {
                break;
            }
            let (k, v) = item.map_err(|e| self.err(e))?;
            let seq =
                key_u64(k.value(), 32).ok_or_else(|| self.corrupt("an event key is too short".into()))?;
            out.push((seq, Bytes::copy_from_slice(v.value())));
        }
        Ok(out)
    }

    /// How many events `channel`'s log holds (the next sequence number).
    pub fn event_count(&self, channel: &B256) -> Result<u64, StoreError> {
        let txn = self.read()?;
        let table = match txn.open_table(EVENTS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(0),
            Err(e) => return Err(self.err(e)),
        };
        let start = event_key(channel, 0);
        let end = event_key(channel, u64::MAX);
        let last = table
            .range::<&[u8]>(start.as_slice()..=end.as_slice())
            .map_err(|e| self.err(e))?
            .next_back()
            .transpose()
            .map_err(|e| self.err(e))?;
        match last {
            Some((k, _)) => key_u64(k.value(), 32)
                .map(|seq| seq + 1)
                .ok_or_else(|| self.corrupt("an event key is too short".into())),
            None => Ok(0),
        }
    }

    /// Every stored channel, by channel id.
    pub fn channels(&self) -> Result<Vec<ChannelRecord>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(CHANNELS).map_err(|e| self.err(e))?;
        let mut machines = Machines::new(self, &txn);
        let mut out = Vec::new();
        for item in table.iter().map_err(|e| self.err(e))? {
            let (_, v) = item.map_err(|e| self.err(e))?;
            let v: ChannelV1 = decode("channel", v.value()).map_err(|r| self.corrupt(r))?;
            out.push(
                v.into_record(|d| machines.get(d).map(|m| (*m).clone()))
                    .map_err(|r| self.corrupt(r))?,
            );
        }
        Ok(out)
    }

    /// Every stored fork of `channel` with its genesis state, oldest first.
    pub fn forks(&self, channel: &B256) -> Result<Vec<(ForkInfo, Bytes)>, StoreError> {
        let txn = self.read()?;
        self.read_forks(&txn, channel)
    }

    fn read_forks(
        &self,
        txn: &ReadTransaction,
        channel: &B256,
    ) -> Result<Vec<(ForkInfo, Bytes)>, StoreError> {
        let table = txn.open_table(FORKS).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        self.scan(&table, &channel_key(channel), |key, value| {
            let fork = key_u64(key, 32).ok_or("short fork key")?;
            let v: ForkV1 = decode("fork", value)?;
            out.push(v.into_fork(fork));
            Ok(())
        })?;
        Ok(out)
    }

    /// The transactions of `channel` at `fork`, in height order, each with every signature held.
    pub fn transactions(&self, channel: &B256, fork: u64) -> Result<Vec<StoredTransaction>, StoreError> {
        let txn = self.read()?;
        self.read_transactions(&txn, channel, fork)
    }

    fn read_transactions(
        &self,
        txn: &ReadTransaction,
        channel: &B256,
        fork: u64,
    ) -> Result<Vec<StoredTransaction>, StoreError> {
        let prefix = fork_key(channel, fork);
        let mut by_height: BTreeMap<u64, StoredTransaction> = BTreeMap::new();
        let table = txn.open_table(TRANSACTIONS).map_err(|e| self.err(e))?;
        self.scan(&table, &prefix, |key, value| {
            let height = key_u64(key, 40).ok_or("short transaction key")?;
            let v: TransactionV1 = decode("transaction", value)?;
            if v.transaction.height != height {
                return Err(format!(
                    "transaction filed at height {height} is for {}",
                    v.transaction.height
                ));
            }
            by_height.insert(
                height,
                StoredTransaction {
                    transaction: v.transaction,
                    digest: v.digest,
                    signature: v.signature,
                    state: v.state,
                    confirmations: BTreeMap::new(),
                },
            );
            Ok(())
        })?;
        let table = txn.open_table(SIGNATURES).map_err(|e| self.err(e))?;
        self.scan(&table, &prefix, |key, value| {
            let height = key_u64(key, 40).ok_or("short signature key")?;
            let signer = key
                .get(48..68)
                .map(Address::from_slice)
                .ok_or("short signature key")?;
            let (digest, signature) = decode_signature(value)?;
            // A signature on another digest than the stored transaction's is no vote for it.
            if let Some(st) = by_height.get_mut(&height)
                && st.digest == digest
            {
                st.confirmations.insert(signer, signature);
            }
            Ok(())
        })?;
        Ok(by_height.into_values().collect())
    }

    /// The signatures held for `channel` at `fork`/`height`: (signer, digest, signature).
    pub fn signatures(
        &self,
        channel: &B256,
        fork: u64,
        height: u64,
    ) -> Result<Vec<(Address, B256, Signature)>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(SIGNATURES).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        self.scan(&table, &height_key(channel, fork, height), |key, value| {
            let signer = key
                .get(48..68)
                .map(Address::from_slice)
                .ok_or("short signature key")?;
            let (digest, signature) = decode_signature(value)?;
            out.push((signer, digest, signature));
            Ok(())
        })?;
        Ok(out)
    }

    /// The digest this node recorded signing at `channel`/`fork`/`height`, if any.
    pub fn own_signature(&self, channel: &B256, fork: u64, height: u64) -> Result<Option<B256>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(OWN_SIGNATURES).map_err(|e| self.err(e))?;
        let value = table
            .get(height_key(channel, fork, height).as_slice())
            .map_err(|e| self.err(e))?;
        value
            .map(|v| decode_digest(v.value()))
            .transpose()
            .map_err(|r| self.corrupt(r))
    }

    /// The own-signature log of `channel` at `fork`, by (fork, height).
    pub fn own_signatures(
        &self,
        channel: &B256,
        fork: u64,
    ) -> Result<BTreeMap<(u64, u64), B256>, StoreError> {
        let txn = self.read()?;
        self.read_own_signatures(&txn, channel, fork)
    }

    fn read_own_signatures(
        &self,
        txn: &ReadTransaction,
        channel: &B256,
        fork: u64,
    ) -> Result<BTreeMap<(u64, u64), B256>, StoreError> {
        let table = txn.open_table(OWN_SIGNATURES).map_err(|e| self.err(e))?;
        let mut out = BTreeMap::new();
        self.scan(&table, &fork_key(channel, fork), |key, value| {
            let height = key_u64(key, 40).ok_or("short own-signature key")?;
            out.insert((fork, height), decode_digest(value)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// The finalized height recorded for `channel` at `fork`, if any.
    pub fn finalized_height(&self, channel: &B256, fork: u64) -> Result<Option<u64>, StoreError> {
        let txn = self.read()?;
        self.read_finalized(&txn, channel, fork)
    }

    fn read_finalized(
        &self,
        txn: &ReadTransaction,
        channel: &B256,
        fork: u64,
    ) -> Result<Option<u64>, StoreError> {
        let table = txn.open_table(FINALIZED).map_err(|e| self.err(e))?;
        let value = table
            .get(fork_key(channel, fork).as_slice())
            .map_err(|e| self.err(e))?;
        Ok(value.map(|v| v.value()))
    }

    /// The last processed block on chain `chain_id` for the manager at `manager`, if recorded.
    pub fn cursor(&self, chain_id: u64, manager: &Address) -> Result<Option<ChainCursor>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(CURSORS).map_err(|e| self.err(e))?;
        let value = table
            .get(cursor_key(chain_id, manager).as_slice())
            .map_err(|e| self.err(e))?;
        value
            .map(|v| decode::<ChainCursor>("cursor", v.value()))
            .transpose()
            .map_err(|r| self.corrupt(r))
    }

    /// Everything [`StateManager::restore`](entente_state_manager::StateManager::restore) needs
    /// for `channel`: its latest fork, that fork's transactions with their signatures, the
    /// own-signature log and the finalized height, read in one consistent read transaction.
    pub fn snapshot(&self, channel: &B256) -> Result<ChannelSnapshot, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(CHANNELS).map_err(|e| self.err(e))?;
        let spec = match table
            .get(channel_key(channel).as_slice())
            .map_err(|e| self.err(e))?
        {
            Some(v) => decode::<ChannelV1>("channel", v.value())
                .map_err(|r| self.corrupt(r))?
                .into_spec(),
            None => return Err(StoreError::UnknownChannel(*channel)),
        };
        let Some((fork, genesis_state)) = self.read_forks(&txn, channel)?.pop() else {
            return Err(self.corrupt(format!("channel {channel} has no fork")));
        };
        let transactions = self.read_transactions(&txn, channel, fork.fork)?;
        let own_signatures = self.read_own_signatures(&txn, channel, fork.fork)?;
        let own_intents = self.read_own_intents(&txn, channel)?;
        let finalized_height = self
            .read_finalized(&txn, channel, fork.fork)?
            .unwrap_or(fork.genesis_height);
        Ok(ChannelSnapshot {
            spec,
            fork,
            genesis_state,
            transactions,
            own_signatures,
            finalized_height,
            own_intents,
        })
    }

    /// Our intents kept for `channel` (they may still apply), in nonce order, each with when it
    /// was last sent. A store written before intents were kept has none.
    fn read_own_intents(
        &self,
        txn: &ReadTransaction,
        channel: &B256,
    ) -> Result<Vec<(SignedIntent, u64)>, StoreError> {
        let table = match txn.open_table(OWN_INTENTS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.err(e)),
        };
        let mut out = Vec::new();
        self.scan(&table, &channel_key(channel), |_, value| {
            out.push(decode::<(SignedIntent, u64)>("own intent", value)?);
            Ok(())
        })?;
        Ok(out)
    }

    // ----- internals -------------------------------------------------------------------------

    /// A read transaction on the database, once it holds every write the journal holds.
    fn read(&self) -> Result<ReadTransaction, StoreError> {
        if let Some(journaled) = &self.journal {
            self.apply_pending(&mut lock(journaled))?;
        }
        self.db.begin_read().map_err(|e| self.err(e))
    }

    fn write(&self) -> Result<WriteTransaction, StoreError> {
        self.db.begin_write().map_err(|e| self.err(e))
    }

    /// Calls `f` with every (key, value) whose key starts with `prefix`, in key order.
    fn scan<T>(
        &self,
        table: &T,
        prefix: &[u8],
        mut f: impl FnMut(&[u8], &[u8]) -> Result<(), String>,
    ) -> Result<(), StoreError>
    where
        T: ReadableTable<&'static [u8], &'static [u8]>,
    {
        let range = match prefix_end(prefix) {
            Some(end) => table.range::<&[u8]>(prefix..end.as_slice()),
            None => table.range::<&[u8]>(prefix..),
        }
        .map_err(|e| self.err(e))?;
        for item in range {
            let (k, v) = item.map_err(|e| self.err(e))?;
            f(k.value(), v.value()).map_err(|r| self.corrupt(r))?;
        }
        Ok(())
    }

    fn err(&self, e: impl Into<redb::Error>) -> StoreError {
        db_error(&self.path, e)
    }

    fn corrupt(&self, reason: String) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            reason,
        }
    }
}

fn db_error(path: &Path, e: impl Into<redb::Error>) -> StoreError {
    let path = path.to_path_buf();
    match e.into() {
        redb::Error::DatabaseAlreadyOpen => StoreError::Locked { path },
        redb::Error::UpgradeRequired(version) => StoreError::FileFormat { path, version },
        redb::Error::Corrupted(reason) => StoreError::Corrupt { path, reason },
        redb::Error::RepairAborted => StoreError::Corrupt {
            path,
            reason: "repair aborted".into(),
        },
        // redb reports a file that is not (or no longer) a database as invalid data or a short
        // read: that is a corrupt store, not a failing disk.
        redb::Error::Io(source)
            if matches!(
                source.kind(),
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof
            ) =>
        {
            StoreError::Corrupt {
                path,
                reason: source.to_string(),
            }
        }
        redb::Error::Io(source) => StoreError::Io { path, source },
        other => StoreError::Database {
            path,
            reason: other.to_string(),
        },
    }
}

/// One write of a batch.
#[derive(Debug, Clone)]
enum Op {
    Channel(Box<ChannelRecord>),
    Status(B256, ChannelStatus),
    Fork(B256, ForkInfo, Bytes),
    Persist(B256, PersistRecord),
    Cursor(u64, Address, ChainCursor),
    Life(B256, u8, Bytes),
    /// A channel's machine: its source in the machines table, a reference in its life.
    Machine(B256, Box<crate::MachineSource>),
    Event(B256, u64, Bytes),
    /// Drop a channel's events below a sequence number.
    PruneEvents(B256, u64),
}

/// Writes collected for one durable commit: the host adds everything one turn of its event loop
/// must make durable, then commits once before the turn's messages leave. Either every write of
/// the batch is stored or none is.
#[must_use = "a batch does nothing until committed"]
#[derive(Debug)]
pub struct Batch<'s> {
    store: &'s Store,
    ops: Vec<Op>,
}

impl Batch<'_> {
    /// Stores a channel (replacing a stored record with the same id) and, unless already stored,
    /// its fork 0 from the spec's genesis.
    pub fn put_channel(&mut self, record: ChannelRecord) -> &mut Self {
        self.ops.push(Op::Channel(Box::new(record)));
        self
    }

    /// Sets a stored channel's status (the commit fails with [`StoreError::UnknownChannel`] if
    /// it is not stored).
    pub fn set_status(&mut self, channel: B256, status: ChannelStatus) -> &mut Self {
        self.ops.push(Op::Status(channel, status));
        self
    }

    /// Stores a fork the chain started (as handed to
    /// [`StateManager::apply_fork`](entente_state_manager::StateManager::apply_fork)) with its
    /// genesis state; the genesis state hash is recomputed from the state. Put it in the batch
    /// of the turn that applied the fork: [`Store::snapshot`] restores the latest stored fork.
    pub fn put_fork(&mut self, channel: B256, fork: ForkInfo, genesis_state: Bytes) -> &mut Self {
        self.ops.push(Op::Fork(channel, fork, genesis_state));
        self
    }

    /// Adds one record a channel's state manager emitted (`Effect::Persist`).
    pub fn persist(&mut self, channel: B256, record: PersistRecord) -> &mut Self {
        self.ops.push(Op::Persist(channel, record));
        self
    }

    /// Adds every record of `records`, in order.
    pub fn persist_all(
        &mut self,
        channel: B256,
        records: impl IntoIterator<Item = PersistRecord>,
    ) -> &mut Self {
        self.ops
            .extend(records.into_iter().map(|r| Op::Persist(channel, r)));
        self
    }

    /// Records the last processed block on chain `chain_id` for the manager at `manager`.
    pub fn put_cursor(&mut self, chain_id: u64, manager: Address, cursor: ChainCursor) -> &mut Self {
        self.ops.push(Op::Cursor(chain_id, manager, cursor));
        self
    }

    /// The writes collected so far, apart from the store: a host that groups several turns
    /// into one write keeps them here between turns ([`Store::reattach`]).
    pub fn detach(self) -> Detached {
        Detached { ops: self.ops }
    }

    /// Number of writes collected.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when nothing was collected.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// Stores a channel core's life record (replacing the stored one).
    pub fn put_life(&mut self, channel: B256, life: Bytes) -> &mut Self {
        self.ops.push(Op::Life(channel, LIFE, life));
        self
    }

    /// Stores the machine source of a channel with a life (replacing the stored one).
    pub fn put_machine(&mut self, channel: B256, machine: &crate::MachineSource) -> &mut Self {
        self.ops.push(Op::Machine(channel, Box::new(machine.clone())));
        self
    }

    /// Appends event `seq` (encoded) to `channel`'s event log.
    pub fn put_event(&mut self, channel: B256, seq: u64, event: Bytes) -> &mut Self {
        self.ops.push(Op::Event(channel, seq, event));
        self
    }

    /// Drops `channel`'s events numbered below `below` (the oldest of a long log).
    pub fn prune_events(&mut self, channel: B256, below: u64) -> &mut Self {
        self.ops.push(Op::PruneEvents(channel, below));
        self
    }

    /// Stores a channel's dispute-handler view (replacing the stored one).
    pub fn put_court(&mut self, channel: B256, court: Bytes) -> &mut Self {
        self.ops.push(Op::Life(channel, COURT, court));
        self
    }

    /// Makes everything durable (see the crate docs: one journal append and `fdatasync` on
    /// disk, one durable redb commit in memory or on an embedder's backend): when this returns
    /// `Ok`, every write is on disk; on `Err`, none is acknowledged. An empty batch does
    /// nothing. Refuses the whole batch with [`StoreError::DoubleSign`] if an own signature
    /// would record a second digest at a (channel, fork, height), and with
    /// [`StoreError::TransactionConflict`] if a different transaction is stored at its height.
    pub fn commit(self) -> Result<(), StoreError> {
        if self.ops.is_empty() {
            return Ok(());
        }
        let store = self.store;
        match self.write()?.frame() {
            Some(frame) => match store.journal_sync() {
                Some(sync) if sync.sync()? >= frame => Ok(()),
                _ => Err(StoreError::Failed {
                    path: store.path.clone(),
                    reason: format!("journal frame {frame} was written but not synced"),
                }),
            },
            None => Ok(()),
        }
    }

    /// Writes the batch without waiting for it to be durable (the checks and the errors are
    /// [`Self::commit`]'s): on disk, appended to the journal (the database takes it later); the
    /// batch is acknowledged once a [`JournalSync`] reports its frame durable
    /// ([`Written::frame`]), and a crash before that keeps it whole or not at all, with every
    /// batch written before it kept if it is. Readers see it at once. In memory or on an
    /// embedder's backend it is one durable commit, as [`Self::commit`]. An empty batch writes
    /// nothing and stands with the last batch written.
    pub fn write(self) -> Result<Written, StoreError> {
        let store = self.store;
        match &store.journal {
            Some(journaled) => store.write_journaled(lock(journaled), self.ops),
            None if self.ops.is_empty() => Ok(Written(None)),
            None => store.commit_durable(self.ops).map(|()| Written(None)),
        }
    }
}

fn lock(journaled: &Mutex<Journaled>) -> MutexGuard<'_, Journaled> {
    // A panic while holding it left `interrupted` set if it matters; the rest is plain data.
    journaled.lock().unwrap_or_else(|p| p.into_inner())
}

/// Makes a new directory entry (a file created in `dir`) durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

impl Store {
    /// One redb write transaction with immediate durability.
    fn commit_durable(&self, ops: Vec<Op>) -> Result<(), StoreError> {
        let mut txn = self.write()?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| self.database(e))?;
        let written = Tables::open(self, &txn).and_then(|mut t| write_ops(self, &mut t, ops));
        match written {
            // Dropping an uncommitted write transaction aborts it: nothing of the batch stays.
            Ok(()) => txn.commit().map_err(|e| self.err(e)),
            Err(e) => {
                let _ = txn.abort();
                Err(e)
            }
        }
    }

    /// The batch's checks run against the database and the writes pending for it, its
    /// physical writes are appended to the journal (not synced) and join the pending writes,
    /// which go to the database in groups ([`Self::apply_pending`]). A write that fails once
    /// the journal may hold the batch stops the store: it was never acknowledged, but a crash
    /// may keep it.
    fn write_journaled(
        &self,
        mut guard: MutexGuard<'_, Journaled>,
        ops: Vec<Op>,
    ) -> Result<Written, StoreError> {
        let j = &mut *guard;
        let failed = match j.interrupted {
            true => Some("a batch was interrupted between the journal and the pending writes".to_string()),
            false => j.progress.failed(),
        };
        if let Some(reason) = failed {
            return Err(StoreError::Failed {
                path: self.path.clone(),
                reason,
            });
        }
        if ops.is_empty() {
            return Ok(Written(Some(j.progress.written.load(Ordering::Acquire))));
        }
        let seq = j.next_seq;
        let reader = match &mut j.reader {
            Some(reader) => reader,
            None => j
                .reader
                .insert(Reader::new(self.db.begin_read().map_err(|e| self.err(e))?)),
        };
        let mut staged = Staged {
            pending: &j.pending,
            reader,
            writes: Pending::default(),
            redo: Vec::new(),
        };
        // A refused batch (its checks, a corrupt record) leaves nothing anywhere.
        write_ops(self, &mut staged, ops)?;
        let Staged { writes, redo, .. } = staged;
        // From the journal's append until the writes join the pending ones, the journal holds
        // a batch the next batches' checks would not see: a panic in between must stop the
        // store, so the mark goes first and is lifted once the writes are in.
        j.interrupted = true;
        let appended = match j.journal.append(seq, &redo) {
            Ok(true) => {
                j.pending.merge(writes, seq);
                Ok(false)
            }
            // The journal is full: make everything durable in redb and start it again.
            Ok(false) => {
                j.pending.merge(writes, seq);
                self.apply_pending(j)
                    .and_then(|()| self.checkpoint(seq + 1))
                    .map(|()| {
                        j.journal.restart();
                        true
                    })
            }
            Err(source) => Err(StoreError::Io {
                path: j.path.clone(),
                source,
            }),
        };
        match appended {
            Ok(checkpointed) => {
                j.next_seq += 1;
                j.interrupted = false;
                j.progress.written.store(seq, Ordering::Release);
                if checkpointed {
                    j.progress.durable.fetch_max(seq, Ordering::AcqRel);
                }
                if j.pending.writes() >= PENDING_WRITES || j.pending.bytes() >= PENDING_BYTES {
                    self.apply_pending(j)?;
                }
                Ok(Written(Some(seq)))
            }
            Err(e) => {
                j.progress.fail(e.to_string());
                Err(e)
            }
        }
    }

    /// Applies the pending writes to the database in one write transaction without
    /// durability (the journal holds them), with the number of the last frame they come from.
    /// A failure stops the store (the writes stay pending, and in the journal).
    fn apply_pending(&self, j: &mut Journaled) -> Result<(), StoreError> {
        // Frames that wrote nothing (a batch already stored) still move the number on: a
        // checkpoint must leave the database naming the frame before the journal's new start.
        if j.pending.is_empty() && j.pending.seq() <= j.applied {
            return Ok(());
        }
        // The reader's view is about to be out of date.
        j.reader = None;
        let applied = self.write().and_then(|mut txn| {
            txn.set_durability(Durability::None)
                .map_err(|e| self.database(e))?;
            let written = Tables::open(self, &txn).and_then(|mut t| {
                j.pending
                    .for_each(|table, write| match write {
                        Write::Put(key, value) => t.insert(table, key, value),
                        Write::Remove(key) => t.remove(table, key),
                        Write::RemoveRange(start, end) => t.remove_range(table, start, end),
                    })
                    .map_err(|e| self.apply_err(e))?;
                let mut meta = txn.open_table(META).map_err(|e| self.err(e))?;
                meta.insert(JOURNAL_SEQ_KEY, j.pending.seq())
                    .map_err(|e| self.err(e))?;
                Ok(())
            });
            match written {
                Ok(()) => txn.commit().map_err(|e| self.err(e)),
                Err(e) => {
                    let _ = txn.abort();
                    Err(e)
                }
            }
        });
        match applied {
            Ok(()) => {
                j.applied = j.pending.seq();
                j.pending = Pending::default();
                Ok(())
            }
            Err(e) => {
                j.progress.fail(e.to_string());
                Err(e)
            }
        }
    }

    /// Applies to the database every write the journal holds that it does not hold yet
    /// (nothing to do for a store without a journal). Writes apply them on their own once they
    /// pile up, and reads first; a host calls this when it has nothing else to do, so that
    /// the work is off its next turn. A failure stops the store, as a failed write does.
    pub fn apply_journaled(&self) -> Result<(), StoreError> {
        match &self.journal {
            Some(journaled) => self.apply_pending(&mut lock(journaled)),
            None => Ok(()),
        }
    }

    /// The store's journal sync, for a store on disk (`None`: every batch is durable when
    /// written). See [`Batch::write`].
    pub fn journal_sync(&self) -> Option<JournalSync> {
        let j = lock(self.journal.as_ref()?);
        Some(JournalSync {
            storage: j.journal.storage(),
            progress: j.progress.clone(),
            path: j.path.clone(),
        })
    }

    /// One durable redb commit: everything committed so far is on disk in the database (the
    /// caller applies the pending writes first), and the journal's next round starts at frame
    /// `next_round`.
    fn checkpoint(&self, next_round: u64) -> Result<(), StoreError> {
        let mut txn = self.write()?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| self.database(e))?;
        let marked = txn
            .open_table(META)
            .map_err(|e| self.err(e))
            .and_then(|mut meta| {
                meta.insert(JOURNAL_ROUND_KEY, next_round)
                    .map(|_| ())
                    .map_err(|e| self.err(e))
            });
        if let Err(e) = marked {
            let _ = txn.abort();
            return Err(e);
        }
        txn.commit().map_err(|e| self.err(e))
    }

    fn database(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Database {
            path: self.path.clone(),
            reason: e.to_string(),
        }
    }
}

struct Tables<'t> {
    channels: Table<'t, &'static [u8], &'static [u8]>,
    forks: Table<'t, &'static [u8], &'static [u8]>,
    transactions: Table<'t, &'static [u8], &'static [u8]>,
    signatures: Table<'t, &'static [u8], &'static [u8]>,
    own: Table<'t, &'static [u8], &'static [u8]>,
    own_intents: Table<'t, &'static [u8], &'static [u8]>,
    finalized: Table<'t, &'static [u8], u64>,
    cursors: Table<'t, &'static [u8], &'static [u8]>,
    lives: Table<'t, &'static [u8], &'static [u8]>,
    events: Table<'t, &'static [u8], &'static [u8]>,
    machines: Table<'t, &'static [u8], &'static [u8]>,
}

/// Numbers of the tables in the journal's writes.
mod table_id {
    pub(super) const CHANNELS: u8 = 0;
    pub(super) const FORKS: u8 = 1;
    pub(super) const TRANSACTIONS: u8 = 2;
    pub(super) const SIGNATURES: u8 = 3;
    pub(super) const OWN_SIGNATURES: u8 = 4;
    pub(super) const OWN_INTENTS: u8 = 5;
    pub(super) const FINALIZED: u8 = 6;
    pub(super) const CURSORS: u8 = 7;
    pub(super) const LIVES: u8 = 8;
    pub(super) const EVENTS: u8 = 9;
    pub(super) const MACHINES: u8 = 10;
}

impl<'t> Tables<'t> {
    fn open(store: &Store, txn: &'t WriteTransaction) -> Result<Self, StoreError> {
        let e = |e: redb::TableError| db_error(&store.path, e);
        Ok(Tables {
            channels: txn.open_table(CHANNELS).map_err(e)?,
            forks: txn.open_table(FORKS).map_err(e)?,
            transactions: txn.open_table(TRANSACTIONS).map_err(e)?,
            signatures: txn.open_table(SIGNATURES).map_err(e)?,
            own: txn.open_table(OWN_SIGNATURES).map_err(e)?,
            own_intents: txn.open_table(OWN_INTENTS).map_err(e)?,
            finalized: txn.open_table(FINALIZED).map_err(e)?,
            cursors: txn.open_table(CURSORS).map_err(e)?,
            lives: txn.open_table(LIVES).map_err(e)?,
            events: txn.open_table(EVENTS).map_err(e)?,
            machines: txn.open_table(MACHINES).map_err(e)?,
        })
    }

    fn bin(&mut self, table: u8) -> Option<&mut Table<'t, &'static [u8], &'static [u8]>> {
        Some(match table {
            table_id::CHANNELS => &mut self.channels,
            table_id::FORKS => &mut self.forks,
            table_id::TRANSACTIONS => &mut self.transactions,
            table_id::SIGNATURES => &mut self.signatures,
            table_id::OWN_SIGNATURES => &mut self.own,
            table_id::OWN_INTENTS => &mut self.own_intents,
            table_id::CURSORS => &mut self.cursors,
            table_id::LIVES => &mut self.lives,
            table_id::EVENTS => &mut self.events,
            table_id::MACHINES => &mut self.machines,
            _ => return None,
        })
    }

    fn bin_of(&mut self, table: u8) -> Result<&mut Table<'t, &'static [u8], &'static [u8]>, ApplyError> {
        self.bin(table).ok_or_else(|| unknown_table(table))
    }

    /// Applies one physical write (also what replaying the journal does).
    fn apply(&mut self, redo: &Redo) -> Result<(), ApplyError> {
        match redo {
            Redo::Put { table, key, value } => self.insert(*table, key, value),
            Redo::Remove { table, key } => self.remove(*table, key),
            Redo::RemoveRange { table, start, end } => self.remove_range(*table, start, end),
        }
    }

    fn insert(&mut self, table: u8, key: &[u8], value: &[u8]) -> Result<(), ApplyError> {
        if table == table_id::FINALIZED {
            let height = value
                .try_into()
                .map(u64::from_be_bytes)
                .map_err(|_| ApplyError::Corrupt("a finalized height is not 8 bytes".into()))?;
            self.finalized.insert(key, height)?;
        } else {
            self.bin_of(table)?.insert(key, value)?;
        }
        Ok(())
    }

    fn remove(&mut self, table: u8, key: &[u8]) -> Result<(), ApplyError> {
        if table == table_id::FINALIZED {
            self.finalized.remove(key)?;
        } else {
            self.bin_of(table)?.remove(key)?;
        }
        Ok(())
    }

    fn remove_range(&mut self, table: u8, start: &[u8], end: &[u8]) -> Result<(), ApplyError> {
        if table == table_id::FINALIZED {
            self.finalized.retain_in::<&[u8], _>(start..end, |_, _| false)?;
        } else {
            self.bin_of(table)?
                .retain_in::<&[u8], _>(start..end, |_, _| false)?;
        }
        Ok(())
    }
}

/// Where a batch's writes go: straight into a redb write transaction ([`Tables`]: a store
/// without a journal) or into the journal and the pending writes ([`Staged`]). Its checks read
/// through [`Self::get`], which sees the batch's own earlier writes.
trait Writes {
    /// The value of `key` in `table` (a finalized height as 8 big-endian bytes).
    fn get(&mut self, table: u8, key: &[u8]) -> Result<Option<Vec<u8>>, ApplyError>;

    /// One physical write.
    fn apply(&mut self, redo: Redo) -> Result<(), ApplyError>;

    fn put(&mut self, table: u8, key: &[u8], value: &[u8]) -> Result<(), ApplyError> {
        self.apply(Redo::Put {
            table,
            key: key.to_vec(),
            value: value.to_vec(),
        })
    }
}

impl Writes for Tables<'_> {
    fn get(&mut self, table: u8, key: &[u8]) -> Result<Option<Vec<u8>>, ApplyError> {
        if table == table_id::FINALIZED {
            return Ok(self.finalized.get(key)?.map(|v| v.value().to_be_bytes().to_vec()));
        }
        Ok(self.bin_of(table)?.get(key)?.map(|v| v.value().to_vec()))
    }

    fn apply(&mut self, redo: Redo) -> Result<(), ApplyError> {
        Tables::apply(self, &redo)
    }
}

/// The database's tables as a read transaction saw them, each opened on first use.
#[derive(Debug)]
struct Reader {
    txn: ReadTransaction,
    bins: [Option<ReadOnlyTable<&'static [u8], &'static [u8]>>; TABLES],
    finalized: Option<ReadOnlyTable<&'static [u8], u64>>,
}

impl Reader {
    fn new(txn: ReadTransaction) -> Self {
        Self {
            txn,
            bins: Default::default(),
            finalized: None,
        }
    }

    fn get(&mut self, table: u8, key: &[u8]) -> Result<Option<Vec<u8>>, ApplyError> {
        let storage = |e: redb::TableError| match e {
            redb::TableError::Storage(e) => ApplyError::Storage(e),
            other => ApplyError::Corrupt(other.to_string()),
        };
        if table == table_id::FINALIZED {
            let t = match &mut self.finalized {
                Some(t) => t,
                None => self
                    .finalized
                    .insert(self.txn.open_table(FINALIZED).map_err(storage)?),
            };
            return Ok(t.get(key)?.map(|v| v.value().to_be_bytes().to_vec()));
        }
        let def = definition(table).ok_or_else(|| unknown_table(table))?;
        let slot = self
            .bins
            .get_mut(usize::from(table))
            .ok_or_else(|| unknown_table(table))?;
        let t = match slot {
            Some(t) => t,
            None => slot.insert(self.txn.open_table(def).map_err(storage)?),
        };
        Ok(t.get(key)?.map(|v| v.value().to_vec()))
    }
}

/// The table a physical write names (all but the finalized heights, whose values are `u64`).
fn definition(table: u8) -> Option<Bin> {
    Some(match table {
        table_id::CHANNELS => CHANNELS,
        table_id::FORKS => FORKS,
        table_id::TRANSACTIONS => TRANSACTIONS,
        table_id::SIGNATURES => SIGNATURES,
        table_id::OWN_SIGNATURES => OWN_SIGNATURES,
        table_id::OWN_INTENTS => OWN_INTENTS,
        table_id::CURSORS => CURSORS,
        table_id::LIVES => LIVES,
        table_id::EVENTS => EVENTS,
        table_id::MACHINES => MACHINES,
        _ => return None,
    })
}

/// A batch on its way to the journal: its writes, and what its checks read (its own writes,
/// then the pending writes, then the database).
struct Staged<'a> {
    pending: &'a Pending,
    reader: &'a mut Reader,
    writes: Pending,
    redo: Vec<Redo>,
}

impl Writes for Staged<'_> {
    fn get(&mut self, table: u8, key: &[u8]) -> Result<Option<Vec<u8>>, ApplyError> {
        if let Some(value) = self
            .writes
            .lookup(table, key)
            .or_else(|| self.pending.lookup(table, key))
        {
            return Ok(value.map(<[u8]>::to_vec));
        }
        self.reader.get(table, key)
    }

    fn apply(&mut self, redo: Redo) -> Result<(), ApplyError> {
        self.writes
            .add(&redo)
            .map_err(|UnknownTable(t)| unknown_table(t))?;
        self.redo.push(redo);
        Ok(())
    }
}

fn unknown_table(table: u8) -> ApplyError {
    ApplyError::Corrupt(format!("unknown table {table}"))
}

/// Why a physical write failed.
pub(crate) enum ApplyError {
    Storage(redb::StorageError),
    Corrupt(String),
}

impl From<redb::StorageError> for ApplyError {
    fn from(e: redb::StorageError) -> Self {
        Self::Storage(e)
    }
}

impl Store {
    fn apply_err(&self, e: ApplyError) -> StoreError {
        match e {
            ApplyError::Storage(e) => self.err(e),
            ApplyError::Corrupt(reason) => self.corrupt(reason),
        }
    }
}

fn write_ops(store: &Store, t: &mut impl Writes, ops: Vec<Op>) -> Result<(), StoreError> {
    for op in ops {
        write_op(store, t, op)?;
    }
    Ok(())
}

fn write_op(store: &Store, t: &mut impl Writes, op: Op) -> Result<(), StoreError> {
    let a = |e: ApplyError| store.apply_err(e);
    match op {
        Op::Channel(record) => {
            let id = record.spec.channel_id;
            store_machine(store, t, &record.machine)?;
            let value = encode("channel", &ChannelV1::from(&*record))?;
            t.put(table_id::CHANNELS, channel_key(&id).as_slice(), value.as_slice())
                .map_err(a)?;
            let key = fork_key(&id, 0);
            if t.get(table_id::FORKS, key.as_slice()).map_err(a)?.is_none() {
                let fork0 = ForkV1 {
                    genesis_height: 0,
                    genesis_timestamp: record.spec.genesis_timestamp,
                    participants: record.spec.participants.clone(),
                    genesis_state: record.spec.genesis_state.clone(),
                };
                t.put(
                    table_id::FORKS,
                    key.as_slice(),
                    encode("fork", &fork0)?.as_slice(),
                )
                .map_err(a)?;
            }
        }
        Op::Status(channel, status) => {
            let key = channel_key(&channel);
            let current = t.get(table_id::CHANNELS, key.as_slice()).map_err(a)?;
            let Some(bytes) = current else {
                return Err(StoreError::UnknownChannel(channel));
            };
            let mut record: ChannelV1 = decode("channel", &bytes).map_err(|reason| store.corrupt(reason))?;
            record.status = status;
            let value = encode("channel", &record)?;
            t.put(table_id::CHANNELS, key.as_slice(), value.as_slice())
                .map_err(a)?;
        }
        Op::Fork(channel, fork, genesis_state) => {
            let value = ForkV1 {
                genesis_height: fork.genesis_height,
                genesis_timestamp: fork.genesis_timestamp,
                participants: fork.participants,
                genesis_state,
            };
            t.put(
                table_id::FORKS,
                fork_key(&channel, fork.fork).as_slice(),
                encode("fork", &value)?.as_slice(),
            )
            .map_err(a)?;
        }
        Op::Persist(channel, record) => persist(store, t, channel, record)?,
        Op::Event(channel, seq, bytes) => {
            t.put(
                table_id::EVENTS,
                event_key(&channel, seq).as_slice(),
                bytes.as_ref(),
            )
            .map_err(a)?;
        }
        Op::PruneEvents(channel, below) => {
            let (start, end) = (event_key(&channel, 0), event_key(&channel, below));
            t.apply(Redo::RemoveRange {
                table: table_id::EVENTS,
                start: start.to_vec(),
                end: end.to_vec(),
            })
            .map_err(a)?;
        }
        Op::Life(channel, kind, bytes) => {
            t.put(
                table_id::LIVES,
                life_key(&channel, kind).as_slice(),
                bytes.as_ref(),
            )
            .map_err(a)?;
        }
        Op::Machine(channel, machine) => {
            let digest = store_machine(store, t, &machine)?;
            let value = encode("machine", &StoredMachine::Stored(digest))?;
            t.put(table_id::LIVES, life_key(&channel, MACHINE).as_slice(), &value)
                .map_err(a)?;
        }
        Op::Cursor(chain_id, manager, cursor) => {
            t.put(
                table_id::CURSORS,
                cursor_key(chain_id, &manager).as_slice(),
                encode("cursor", &cursor)?.as_slice(),
            )
            .map_err(a)?;
        }
    }
    Ok(())
}

/// Puts `machine` in the machines table unless it is there; returns its digest.
fn store_machine(
    store: &Store,
    t: &mut impl Writes,
    machine: &crate::MachineSource,
) -> Result<B256, StoreError> {
    let digest = machine.digest();
    let stored = t
        .get(table_id::MACHINES, digest.as_slice())
        .map_err(|e| store.apply_err(e))?
        .is_some();
    if !stored {
        t.put(
            table_id::MACHINES,
            digest.as_slice(),
            &encode("machine", machine)?,
        )
        .map_err(|e| store.apply_err(e))?;
    }
    Ok(digest)
}

fn persist(
    store: &Store,
    t: &mut impl Writes,
    channel: B256,
    record: PersistRecord,
) -> Result<(), StoreError> {
    let a = |e: ApplyError| store.apply_err(e);
    match record {
        PersistRecord::Transaction {
            transaction,
            digest,
            signature,
            state,
        } => {
            if transaction.channelId != channel {
                return Err(StoreError::ChannelMismatch {
                    channel,
                    got: transaction.channelId,
                });
            }
            let (fork, height) = (transaction.forkCnt, transaction.height);
            let key = height_key(&channel, fork, height);
            if let Some(existing) = t.get(table_id::TRANSACTIONS, key.as_slice()).map_err(a)? {
                let stored: TransactionV1 =
                    decode("transaction", &existing).map_err(|reason| store.corrupt(reason))?;
                if stored.digest == digest {
                    return Ok(());
                }
                return Err(StoreError::TransactionConflict {
                    channel,
                    fork,
                    height,
                    stored: stored.digest,
                    refused: digest,
                });
            }
            let issuer = transaction.participant;
            let value = TransactionV1 {
                transaction,
                digest,
                signature,
                state,
            };
            t.put(
                table_id::TRANSACTIONS,
                key.as_slice(),
                encode("transaction", &value)?.as_slice(),
            )
            .map_err(a)?;
            // The issuer's signature is a vote like any other: keep it with the others.
            if let Some(signature) = signature {
                t.put(
                    table_id::SIGNATURES,
                    signature_key(&channel, fork, height, &issuer).as_slice(),
                    encode_signature(&digest, &signature).as_slice(),
                )
                .map_err(a)?;
            }
        }
        PersistRecord::Signature {
            fork,
            height,
            digest,
            signer,
            signature,
        } => {
            t.put(
                table_id::SIGNATURES,
                signature_key(&channel, fork, height, &signer).as_slice(),
                encode_signature(&digest, &signature).as_slice(),
            )
            .map_err(a)?;
        }
        PersistRecord::OwnSignature { fork, height, digest } => {
            let key = height_key(&channel, fork, height);
            let recorded = t
                .get(table_id::OWN_SIGNATURES, key.as_slice())
                .map_err(a)?
                .map(|v| decode_digest(&v))
                .transpose()
                .map_err(|reason| store.corrupt(reason))?;
            match recorded {
                Some(recorded) if recorded != digest => {
                    return Err(StoreError::DoubleSign {
                        channel,
                        fork,
                        height,
                        recorded,
                        attempted: digest,
                    });
                }
                Some(_) => {}
                None => {
                    t.put(table_id::OWN_SIGNATURES, key.as_slice(), digest.as_slice())
                        .map_err(a)?;
                }
            }
        }
        PersistRecord::OwnIntent { intent, sent } => {
            if intent.channel_id != channel {
                return Err(StoreError::ChannelMismatch {
                    channel,
                    got: intent.channel_id,
                });
            }
            // Keyed by nonce like a fork: the channel, then the nonce (big-endian).
            let key = fork_key(&channel, intent.nonce);
            t.put(
                table_id::OWN_INTENTS,
                key.as_slice(),
                encode("own intent", &(*intent, sent))?.as_slice(),
            )
            .map_err(a)?;
        }
        PersistRecord::OwnIntentExpired { nonce } => {
            t.apply(Redo::Remove {
                table: table_id::OWN_INTENTS,
                key: fork_key(&channel, nonce).to_vec(),
            })
            .map_err(a)?;
        }
        PersistRecord::Finalized { fork, height } => {
            let key = fork_key(&channel, fork);
            let current = t
                .get(table_id::FINALIZED, key.as_slice())
                .map_err(a)?
                .map(|v| {
                    v.as_slice()
                        .try_into()
                        .map(u64::from_be_bytes)
                        .map_err(|_| store.corrupt("a finalized height is not 8 bytes".into()))
                })
                .transpose()?;
            if current.is_none_or(|c| c < height) {
                t.put(table_id::FINALIZED, key.as_slice(), &height.to_be_bytes())
                    .map_err(a)?;
            }
        }
    }
    Ok(())
}
