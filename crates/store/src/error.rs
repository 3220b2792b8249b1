use std::path::PathBuf;

use entente_types::B256;

/// Why the store refused an operation. Errors about the data directory or the database file name
/// the path; a refused batch wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Opening an existing store, but the data directory does not exist.
    #[error("data directory {path} does not exist (create the store first)")]
    MissingDir {
        /// The directory.
        path: PathBuf,
    },
    /// The data path exists but is not a directory.
    #[error("data path {path} is not a directory")]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// Opening an existing store, but the directory holds no database file.
    #[error("no database at {path} (the data directory exists but holds no store)")]
    MissingDatabase {
        /// The database file.
        path: PathBuf,
    },
    /// Creating a store where one already exists.
    #[error("a store already exists at {path}")]
    AlreadyExists {
        /// The database file.
        path: PathBuf,
    },
    /// The file is not a readable database, or a stored value does not decode.
    #[error("store at {path} is corrupt: {reason}")]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The store was written by a build with another schema.
    #[error("store at {path} has schema version {found}, this build reads version {expected}")]
    SchemaVersion {
        /// The database file.
        path: PathBuf,
        /// In the file.
        found: u64,
        /// This build's.
        expected: u64,
    },
    /// The database file format needs an upgrade this build does not do.
    #[error("database file {path} has file format {version}, which needs an upgrade")]
    FileFormat {
        /// The database file.
        path: PathBuf,
        /// The file's format version.
        version: u8,
    },
    /// Another process (or another handle in this one) has the database open.
    #[error("store at {path} is locked: it is already open")]
    Locked {
        /// The database file.
        path: PathBuf,
    },
    /// An I/O error.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// An earlier write of this store failed after it was applied in memory (its journal could
    /// not be written, or redb refused a commit): nothing more is stored until the store is
    /// opened again, which recovers everything that was acknowledged.
    #[error("store at {path} stopped after a failed write ({reason}): open it again")]
    Failed {
        /// The database file.
        path: PathBuf,
        /// The write that failed.
        reason: String,
    },
    /// The journal beside the database is missing or empty while the database says it has
    /// one: writes that were acknowledged may exist only there (opening without it could sign
    /// twice). Nothing was modified.
    #[error(
        "the journal {path} is missing or empty, but the database next to it keeps its writes there: \
         put the journal back (a data directory is the database and its journal together)"
    )]
    MissingJournal {
        /// The journal file.
        path: PathBuf,
    },
    /// Any other database error.
    #[error("database error on {path}: {reason}")]
    Database {
        /// The database file.
        path: PathBuf,
        /// What redb reported.
        reason: String,
    },
    /// A value could not be encoded.
    #[error("could not encode a {what}: {reason}")]
    Encode {
        /// The kind of record.
        what: &'static str,
        /// Why.
        reason: String,
    },
    /// The last line of defence against double signing: a different digest at a (channel, fork,
    /// height) where the own-signature log already holds one. The whole batch was refused.
    #[error(
        "refusing to record a second own signature at channel {channel}, fork {fork}, height {height}: \
         {recorded} is recorded, {attempted} was attempted"
    )]
    DoubleSign {
        /// Channel.
        channel: B256,
        /// Fork.
        fork: u64,
        /// Height.
        height: u64,
        /// The digest already recorded.
        recorded: B256,
        /// The digest refused.
        attempted: B256,
    },
    /// A different transaction at a (channel, fork, height) that already holds one. The whole
    /// batch was refused.
    #[error("a different transaction is stored at channel {channel}, fork {fork}, height {height}")]
    TransactionConflict {
        /// Channel.
        channel: B256,
        /// Fork.
        fork: u64,
        /// Height.
        height: u64,
        /// Digest stored.
        stored: B256,
        /// Digest refused.
        refused: B256,
    },
    /// A record for a channel the store does not hold.
    #[error("unknown channel {0}")]
    UnknownChannel(B256),
    /// A transaction record filed under another channel than its own.
    #[error("transaction of channel {got} filed under channel {channel}")]
    ChannelMismatch {
        /// The channel it was filed under.
        channel: B256,
        /// The transaction's channel.
        got: B256,
    },
}
