//! redb persistence of channels, transactions, signatures, forks, the own-signature log and the
//! chain cursor: one database file (`entente.redb`) in the node's data directory.
//!
//! # Durability contract
//!
//! The state manager is sans-IO: it emits `Effect::Persist` records and expects them durable
//! before any later `Send`/`Broadcast` of the same channel leaves the node. The host collects a
//! turn's records in a [`Batch`] ([`Store::batch`], [`Batch::persist`]) and calls
//! [`Batch::commit`] once per event-loop turn, *before* releasing that turn's messages. A commit
//! is one redb write transaction with immediate durability (one fsync): all of the batch is on
//! disk when it returns `Ok`, none of it after an `Err` or a crash. Grouping a turn's records
//! pays one fsync for many records, so durability does not cap throughput.
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
mod store;

pub use channels::StoredChannel;
pub use codec::{ChainCursor, ChannelRecord, ChannelStatus, MachineSource};
pub use error::StoreError;
pub use redb::StorageBackend;
pub use store::{Batch, DB_FILE, OpenMode, SCHEMA_VERSION, Store};
