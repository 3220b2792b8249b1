//! redb persistence of channels, transactions, signatures, forks, the own-signature log and the
//! chain cursor: one database file (`entente.redb`) and its journal (`entente.journal`) in the
//! node's data directory; the two belong together (copy or move both, never one).
//!
//! # Durability contract
//!
//! The state manager is sans-IO: it emits `Effect::Persist` records and expects them durable
//! before any later `Send`/`Broadcast` of the same channel leaves the node. The host collects a
//! turn's records in a [`Batch`] ([`Store::batch`], [`Batch::persist`]) and calls
//! [`Batch::commit`] once per event-loop turn, *before* releasing that turn's messages. All of
//! the batch is durable when `commit` returns `Ok`, none of it after an `Err` or a crash.
//!
//! On disk a commit costs one small synced write: the batch's checks run against the database
//! and the writes not yet in it, its physical writes are appended to the journal
//! (`entente.journal`, preallocated) followed by one `fdatasync`, and they reach redb later, in
//! groups, in one write transaction without durability per group: when they pile up, before
//! any read (readers see every batch written), and when the host calls
//! [`Store::apply_journaled`] because it has nothing else to do. A redb write transaction costs
//! far more CPU than the append, so it stays off the turn's critical path. When the journal is
//! full, one durable redb commit (a checkpoint) makes everything so far durable in the database
//! and the journal starts again; opening the store replays the frames the database does not
//! hold yet. Grouping a turn's records pays one sync for many records. A store in
//! memory or on the embedder's own storage ([`Store::with_backend`]) makes every batch one
//! durable redb commit instead.
//!
//! A host can also take the sync off its event loop: [`Batch::write`] checks and appends a
//! batch without syncing and returns its journal frame ([`Written`]); a [`JournalSync`] (from
//! [`Store::journal_sync`]), on another thread, makes every frame written so far durable with
//! one `fdatasync` and reports the last one. The host keeps each turn's messages until the
//! report covers that turn's frame, and meanwhile goes on with the next turns (one sync then
//! covers them all). A crash keeps a prefix of the frames written: nothing of a turn whose
//! messages have not left can be missing while a later one is there.
//!
//! Two rules follow, and are what makes a restart safe:
//!
//! - a transaction is stored before the node signs anything that builds on it (the manager emits
//!   `Persist(Transaction)` before its signature leaves, and the batch holds both);
//! - every digest the node signs is recorded first (`Persist(OwnSignature)`): the own-signature
//!   log refuses a different digest at a recorded (channel, fork, height) with
//!   [`StoreError::DoubleSign`] and writes nothing of that batch. This is the last line of
//!   defence; the host must then drop the turn's messages.
//!
//! After a restart, [`Store::snapshot`] loads the latest fork of a channel for
//! [`StateManager::restore`](entente_state_manager::StateManager::restore), which restores the
//! own-signature map so the manager itself never signs a second digest at a recorded height.
//!
//! # Layout
//!
//! The journal's frames hold each batch's physical writes, numbered; the database records the
//! number of the last frame it holds in the same write transaction as the frames' writes, so
//! whatever state it is in after a crash or a clean close says where replay starts (format:
//! the `journal` module).
//!
//! Keys are fixed-width big-endian (channel 32 B, fork 8 B, height 8 B, signer 20 B), so one
//! channel or one fork is a contiguous range in height order. Values are a version byte plus
//! CBOR, or fixed bytes (digests; digest + 65-byte signature; heights). A `meta` table holds the
//! schema version, checked on open.
//!
//! # Opening
//!
//! [`Store::create`] makes a new data directory; [`Store::open`] opens an existing one and gives a
//! distinct [`StoreError`] (with the path) for a missing directory or database, a corrupt file,
//! another schema version, or a database already open elsewhere. Nothing is modified on a
//! refused open. [`Store::in_memory`] keeps the same tables in memory; [`Store::with_backend`]
//! puts them on the embedder's own storage ([`StorageBackend`]).

mod channels;
mod codec;
mod error;
mod journal;
mod pending;
mod store;

pub use channels::StoredChannel;
pub use codec::{ChainCursor, ChannelRecord, ChannelStatus, MachineSource};
pub use error::StoreError;
pub use journal::{JOURNAL_CAPACITY, JOURNAL_FILE};
pub use redb::StorageBackend;
pub use store::{Batch, DB_FILE, Detached, JournalSync, OpenMode, SCHEMA_VERSION, Store, Written};
