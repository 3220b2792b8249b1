//! The store's journal (`entente.journal`): what each batch wrote, as physical writes (put,
//! remove, remove a range), in numbered frames made durable with one `fdatasync` each.
//!
//! A batch is appended here and its writes reach redb later, in groups, without durability (no
//! fsync: gone after a crash; the `pending` module); the `fdatasync` that follows the append is
//! what [`Batch::commit`](crate::Batch) waits for, and one sync covers every frame written
//! before it (so a host may write several batches and sync once, off its own thread:
//! [`Batch::write`] and [`JournalSync`](crate::JournalSync)). Each group also records the
//! number of its last frame in redb's `meta` table, so whatever state redb holds after a crash
//! or a clean close names the last frame it contains. Once the journal is full,
//! one redb durable commit (a checkpoint) makes everything so far durable there and the journal
//! starts again at its beginning. Opening the store replays, in one durable commit, the frames
//! that follow the number redb holds (the run of frames from the beginning may start with some
//! redb holds already, after a clean close), then zeroes the journal (and syncs it) before writing a
//! new frame: after a crash with several frames unsynced, the disk may have kept a later frame
//! and lost an earlier one, and that later frame must never read as one of the new ones.
//!
//! # Format
//!
//! The file is preallocated with zeros (so a synced write changes no file metadata) and holds
//! frames from offset 0 on: a 20-byte header (magic `ENTJ`, payload length `u32`, frame number
//! `u64`, CRC-32C of length, number and payload; little-endian) and the payload. Replay reads
//! frames while each one is whole (magic, length and checksum hold) and is numbered one above
//! the previous; the first that is not ends the journal. Frames left from before a checkpoint
//! carry lower numbers than the one expected, so they end it too, and a frame torn by a crash
//! fails its checksum: neither was ever acknowledged. A whole frame numbered above the one
//! expected cannot come from this store's own history (frames missing, or another store's
//! journal): opening the store fails rather than replay around it.

use std::io;
use std::sync::Arc;

use redb::StorageBackend;

/// Name of the journal file inside the data directory.
pub const JOURNAL_FILE: &str = "entente.journal";

/// Size the journal is preallocated to; a batch that no longer fits checkpoints instead.
pub const JOURNAL_CAPACITY: u64 = 4 << 20;

const MAGIC: u32 = u32::from_le_bytes(*b"ENTJ");
const HEADER: usize = 20;
const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

const PUT: u8 = 1;
const REMOVE: u8 = 2;
const REMOVE_RANGE: u8 = 3;

/// One physical write of a batch, to the table numbered `table`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Redo {
    Put {
        table: u8,
        key: Vec<u8>,
        value: Vec<u8>,
    },
    Remove {
        table: u8,
        key: Vec<u8>,
    },
    /// Every key in `start..end`.
    RemoveRange {
        table: u8,
        start: Vec<u8>,
        end: Vec<u8>,
    },
}

/// A frame read back: its number and its writes.
pub(crate) type Frame = (u64, Vec<Redo>);

/// The journal on its storage: where the next frame goes.
#[derive(Debug)]
pub(crate) struct Journal {
    storage: Arc<dyn StorageBackend>,
    capacity: u64,
    offset: u64,
    frame: Vec<u8>,
    /// End of what the file held when opened (up to its last byte that is not zero): cleared by
    /// [`Self::clear`] before any new frame is written.
    stale: u64,
}

impl Journal {
    /// Opens the journal on `storage`, preallocating it to `capacity` bytes, and returns it with
    /// the frames numbered from `applied + 1` on, in order (see the module docs): the run of
    /// consecutive frames from the file's beginning, which must start with frame `first` (the
    /// first of the journal's current round, at most `applied + 1`: the database may hold some
    /// frames of the round already), those up to `applied` skipped.
    pub(crate) fn open(
        storage: Arc<dyn StorageBackend>,
        capacity: u64,
        first: u64,
        applied: u64,
    ) -> io::Result<(Self, Vec<Frame>)> {
        if first > applied.saturating_add(1) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the journal's round starts at frame {first} but the database holds frames up to {applied} only"
                ),
            ));
        }
        let len = storage.len()?;
        let mut frames = Vec::new();
        let mut stale = 0;
        if len > 0 {
            let mut bytes = vec![0u8; usize::try_from(len).map_err(io::Error::other)?];
            storage.read(0, &mut bytes)?;
            stale = bytes.iter().rposition(|b| *b != 0).map_or(0, |p| p as u64 + 1);
            let mut at = 0usize;
            let mut expected = first;
            while let Some((seq, payload, next)) = frame_at(&bytes, at) {
                if seq > expected {
                    // Frames of this store only ever carry lower numbers (older rounds) or the
                    // next one: a higher number means frames went missing or the journal is
                    // another store's. Nothing is replayed from it.
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "journal frame {seq} where frame {expected} was expected: frames are missing or the journal belongs to another database"
                        ),
                    ));
                }
                if seq != expected {
                    break;
                }
                let Some(redo) = decode(payload) else { break };
                if seq > applied {
                    frames.push((seq, redo));
                }
                expected += 1;
                at = next;
            }
        }
        if len < capacity {
            // Real zeros, not a hole: writing into a hole allocates blocks, which is metadata
            // that each sync would then also have to write.
            storage.set_len(capacity)?;
            let chunk = vec![0u8; 64 << 10];
            let mut at = len;
            while at < capacity {
                let n = (capacity - at).min(chunk.len() as u64);
                storage.write(at, &chunk[..n as usize])?;
                at += n;
            }
            storage.sync_data()?;
        }
        let journal = Self {
            storage,
            capacity: capacity.max(len),
            offset: 0,
            frame: Vec::new(),
            stale,
        };
        Ok((journal, frames))
    }

    /// Zeroes what the file held when opened, and syncs: the caller has made every frame
    /// replayed durable elsewhere. Without this a frame of an earlier life could come back: with
    /// several frames written before one sync, a power cut can keep a later frame and lose an
    /// earlier one; replay stops at the lost one, new frames are written from the beginning,
    /// and once they reach the kept frame's offset with the numbers running on, the kept frame
    /// would read as the next one.
    pub(crate) fn clear(&mut self) -> io::Result<()> {
        if self.stale == 0 {
            return Ok(());
        }
        let chunk = vec![0u8; 64 << 10];
        let mut at = 0;
        while at < self.stale {
            let n = (self.stale - at).min(chunk.len() as u64);
            self.storage.write(at, &chunk[..n as usize])?;
            at += n;
        }
        self.storage.sync_data()?;
        self.stale = 0;
        Ok(())
    }

    /// Writes frame `seq` with `redo` after the frames written so far, without syncing it:
    /// `Ok(true)` once it is written (durable after the next [`StorageBackend::sync_data`] of
    /// [`Self::storage`]), `Ok(false)` if it does not fit in what is left (the caller
    /// checkpoints and calls [`Self::restart`]).
    pub(crate) fn append(&mut self, seq: u64, redo: &[Redo]) -> io::Result<bool> {
        self.frame.clear();
        self.frame.resize(HEADER, 0);
        for r in redo {
            encode(r, &mut self.frame);
        }
        let len = u32::try_from(self.frame.len() - HEADER).map_err(io::Error::other)?;
        if self.offset + self.frame.len() as u64 > self.capacity {
            return Ok(false);
        }
        self.frame[0..4].copy_from_slice(&MAGIC.to_le_bytes());
        self.frame[4..8].copy_from_slice(&len.to_le_bytes());
        self.frame[8..16].copy_from_slice(&seq.to_le_bytes());
        let crc = checksum(&self.frame[4..16], &self.frame[HEADER..]);
        self.frame[16..20].copy_from_slice(&crc.to_le_bytes());
        self.storage.write(self.offset, &self.frame)?;
        self.offset += self.frame.len() as u64;
        Ok(true)
    }

    /// The journal's storage, to sync from another thread (a sync covers every frame written
    /// before it starts).
    pub(crate) fn storage(&self) -> Arc<dyn StorageBackend> {
        self.storage.clone()
    }

    /// Starts writing at the beginning again (everything journaled so far is durable in redb).
    pub(crate) fn restart(&mut self) {
        self.offset = 0;
    }

    /// Bytes written since the last restart.
    #[cfg(test)]
    pub(crate) fn used(&self) -> u64 {
        self.offset
    }
}

fn checksum(header: &[u8], payload: &[u8]) -> u32 {
    let mut digest = CRC.digest();
    digest.update(header);
    digest.update(payload);
    digest.finalize()
}

/// The whole frame at `at`, if there is one: (number, payload, offset of the next frame).
fn frame_at(bytes: &[u8], at: usize) -> Option<(u64, &[u8], usize)> {
    let header = bytes.get(at..at.checked_add(HEADER)?)?;
    if u32::from_le_bytes(header[0..4].try_into().ok()?) != MAGIC {
        return None;
    }
    let len = u32::from_le_bytes(header[4..8].try_into().ok()?) as usize;
    let seq = u64::from_le_bytes(header[8..16].try_into().ok()?);
    let crc = u32::from_le_bytes(header[16..20].try_into().ok()?);
    let start = at + HEADER;
    let end = start.checked_add(len)?;
    let payload = bytes.get(start..end)?;
    (checksum(&header[4..16], payload) == crc).then_some((seq, payload, end))
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn encode(redo: &Redo, out: &mut Vec<u8>) {
    match redo {
        Redo::Put { table, key, value } => {
            out.extend_from_slice(&[PUT, *table]);
            put_bytes(out, key);
            put_bytes(out, value);
        }
        Redo::Remove { table, key } => {
            out.extend_from_slice(&[REMOVE, *table]);
            put_bytes(out, key);
        }
        Redo::RemoveRange { table, start, end } => {
            out.extend_from_slice(&[REMOVE_RANGE, *table]);
            put_bytes(out, start);
            put_bytes(out, end);
        }
    }
}

/// Decodes a payload whose checksum held; `None` if it is not a list of writes (a frame written
/// by another format: it ends the journal like a torn one).
fn decode(mut payload: &[u8]) -> Option<Vec<Redo>> {
    fn take<'a>(bytes: &mut &'a [u8]) -> Option<&'a [u8]> {
        let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
        let out = bytes.get(4..4usize.checked_add(len)?)?;
        *bytes = &bytes[4 + len..];
        Some(out)
    }
    let mut out = Vec::new();
    while let [kind, table, rest @ ..] = payload {
        payload = rest;
        let table = *table;
        out.push(match *kind {
            PUT => Redo::Put {
                table,
                key: take(&mut payload)?.to_vec(),
                value: take(&mut payload)?.to_vec(),
            },
            REMOVE => Redo::Remove {
                table,
                key: take(&mut payload)?.to_vec(),
            },
            REMOVE_RANGE => Redo::RemoveRange {
                table,
                start: take(&mut payload)?.to_vec(),
                end: take(&mut payload)?.to_vec(),
            },
            _ => return None,
        });
    }
    payload.is_empty().then_some(out)
}

/// A plain file as journal storage: positioned reads and writes, `fdatasync` for
/// [`StorageBackend::sync_data`]. (The data directory's lock is redb's, on the database file.)
#[derive(Debug)]
pub(crate) struct JournalFile(pub(crate) std::fs::File);

impl StorageBackend for JournalFile {
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        std::os::unix::fs::FileExt::read_exact_at(&self.0, out, offset)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        std::os::unix::fs::FileExt::write_all_at(&self.0, data, offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::backends::InMemoryBackend;

    fn sample(n: u8) -> Vec<Redo> {
        vec![
            Redo::Put {
                table: 1,
                key: vec![n; 40],
                value: vec![n; 300],
            },
            Redo::Remove {
                table: 4,
                key: vec![n, 1],
            },
            Redo::RemoveRange {
                table: 9,
                start: vec![0; 40],
                end: vec![n; 40],
            },
        ]
    }

    #[derive(Debug, Clone, Default)]
    struct Shared(Arc<InMemoryBackend>);

    impl StorageBackend for Shared {
        fn len(&self) -> io::Result<u64> {
            self.0.len()
        }
        fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
            self.0.read(offset, out)
        }
        fn set_len(&self, len: u64) -> io::Result<()> {
            self.0.set_len(len)
        }
        fn sync_data(&self) -> io::Result<()> {
            Ok(())
        }
        fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
            self.0.write(offset, data)
        }
    }

    #[test]
    fn frames_replay_in_order_from_the_applied_number() {
        let disk = Shared::default();
        let (mut j, frames) = Journal::open(Arc::new(disk.clone()), 64 << 10, 1, 0).unwrap();
        assert!(frames.is_empty());
        for seq in 1..=5 {
            assert!(j.append(seq, &sample(seq as u8)).unwrap());
        }
        let (_, frames) = Journal::open(Arc::new(disk.clone()), 64 << 10, 1, 0).unwrap();
        let seqs: Vec<u64> = frames.iter().map(|f| f.0).collect();
        assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
        assert_eq!(frames[2].1, sample(3));
        // A round that starts with frames redb holds already (a clean close after a group
        // was applied): those are skipped, the ones after them replayed.
        let (_, frames) = Journal::open(Arc::new(disk.clone()), 64 << 10, 1, 3).unwrap();
        let seqs: Vec<u64> = frames.iter().map(|f| f.0).collect();
        assert_eq!(seqs, vec![4, 5]);
        let (_, frames) = Journal::open(Arc::new(disk.clone()), 64 << 10, 1, 5).unwrap();
        assert!(frames.is_empty());
        // A round that starts at 4: frame 1 there is an older round's, which ends the journal.
        let (_, frames) = Journal::open(Arc::new(disk.clone()), 64 << 10, 4, 3).unwrap();
        assert!(
            frames.is_empty(),
            "frame 1 is not frame 4: the journal ends there"
        );
        let (_, frames) = Journal::open(Arc::new(disk.clone()), 64 << 10, 10, 9).unwrap();
        assert!(frames.is_empty(), "an older round, all held by the database");
        let e = Journal::open(Arc::new(disk.clone()), 64 << 10, 5, 3).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn a_frame_numbered_above_the_next_is_an_error_not_a_gap_to_skip() {
        // Frames 7 and 8 where the database holds up to 5: frame 6 is missing (or the journal
        // is another store's), and replaying 7 and 8 would write around it.
        let disk = Shared::default();
        let (mut j, _) = Journal::open(Arc::new(disk.clone()), 64 << 10, 1, 0).unwrap();
        assert!(j.append(7, &sample(7)).unwrap());
        assert!(j.append(8, &sample(8)).unwrap());
        let e = Journal::open(Arc::new(disk.clone()), 64 << 10, 6, 5).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("frame 7 where frame 6"), "{e}");
        // The same journal with the database at 6 replays both.
        let (_, frames) = Journal::open(Arc::new(disk.clone()), 64 << 10, 7, 6).unwrap();
        assert_eq!(frames.iter().map(|f| f.0).collect::<Vec<_>>(), vec![7, 8]);
    }

    #[test]
    fn a_restart_leaves_stale_frames_that_end_the_journal() {
        let disk = Shared::default();
        let (mut j, _) = Journal::open(Arc::new(disk.clone()), 64 << 10, 1, 0).unwrap();
        for seq in 1..=5 {
            assert!(j.append(seq, &sample(seq as u8)).unwrap());
        }
        // Checkpointed at 5: frames 6 and 7 overwrite the beginning.
        j.restart();
        assert!(j.append(6, &[]).unwrap());
        assert!(j.append(7, &sample(7)).unwrap());
        let (_, frames) = Journal::open(Arc::new(disk.clone()), 64 << 10, 6, 5).unwrap();
        let seqs: Vec<u64> = frames.iter().map(|f| f.0).collect();
        assert_eq!(seqs, vec![6, 7]);
    }

    #[test]
    fn a_torn_frame_ends_the_journal() {
        let disk = Shared::default();
        let (mut j, _) = Journal::open(Arc::new(disk.clone()), 64 << 10, 1, 0).unwrap();
        for seq in 1..=3 {
            assert!(j.append(seq, &sample(seq as u8)).unwrap());
        }
        let second = (HEADER + sample(1).iter().map(|r| r.encoded_len()).sum::<usize>()) as u64;
        // One byte of frame 2's payload lost.
        disk.write(second + HEADER as u64 + 7, &[0xee]).unwrap();
        let (_, frames) = Journal::open(Arc::new(disk.clone()), 64 << 10, 1, 0).unwrap();
        let seqs: Vec<u64> = frames.iter().map(|f| f.0).collect();
        assert_eq!(seqs, vec![1]);
    }

    #[test]
    fn a_frame_that_does_not_fit_is_refused_without_writing() {
        let disk = Shared::default();
        let (mut j, _) = Journal::open(Arc::new(disk.clone()), 800, 1, 0).unwrap();
        assert!(j.append(1, &sample(1)).unwrap());
        assert!(!j.append(2, &sample(2)).unwrap());
        assert_eq!(
            j.used() as usize,
            HEADER + sample(1).iter().map(|r| r.encoded_len()).sum::<usize>()
        );
        let (_, frames) = Journal::open(Arc::new(disk), 800, 1, 0).unwrap();
        assert_eq!(frames.len(), 1);
    }

    impl Redo {
        fn encoded_len(&self) -> usize {
            let mut v = Vec::new();
            encode(self, &mut v);
            v.len()
        }
    }
}
