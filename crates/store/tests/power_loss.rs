//! Power loss, simulated: the database and its journal sit on disks that keep what was synced
//! and lose any part of what was not. The machine dies at a chosen write (every later write and
//! sync fails), the power is cut (each unsynced write survives or not, at random), and the store
//! is opened again, sometimes dying again during that recovery; three such lives in a row, each
//! writing after what the last recovery kept. Batches are committed one by one, or written and
//! synced later in groups (as the node does off its event loop), or both, and the database
//! takes the journal's writes at random points between them. Every batch that was
//! acknowledged is there; every other batch is there whole or not at all; what is there is a
//! prefix of what was written, each batch the one its own lineage wrote (nothing an earlier life
//! wrote and a recovery dropped comes back); and the own-signature log refuses a second digest
//! at every height recorded.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::io;
use std::sync::{Arc, Mutex};

use entente_state_manager::PersistRecord;
use entente_store::{Store, StoreError};
use entente_types::{B256, Bytes};

/// A write or resize not yet synced.
#[derive(Debug, Clone)]
enum Pending {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

#[derive(Debug, Default)]
struct DiskState {
    /// What survives any power cut.
    durable: Vec<u8>,
    /// What reads see.
    current: Vec<u8>,
    pending: Vec<Pending>,
}

/// Counts the operations of both disks; past `dies_at` every write and sync fails.
#[derive(Debug)]
struct Machine {
    ops: u64,
    dies_at: u64,
}

#[derive(Debug, Clone)]
struct Disk {
    state: Arc<Mutex<DiskState>>,
    machine: Arc<Mutex<Machine>>,
}

fn apply(bytes: &mut Vec<u8>, op: &Pending) {
    match op {
        Pending::Write(offset, data) => {
            let end = *offset as usize + data.len();
            if bytes.len() < end {
                bytes.resize(end, 0);
            }
            bytes[*offset as usize..end].copy_from_slice(data);
        }
        Pending::SetLen(len) => bytes.resize(*len as usize, 0),
    }
}

impl Disk {
    fn new(machine: &Arc<Mutex<Machine>>) -> Self {
        Self {
            state: Arc::default(),
            machine: machine.clone(),
        }
    }

    fn tick(&self) -> io::Result<()> {
        let mut m = self.machine.lock().unwrap();
        m.ops += 1;
        if m.ops > m.dies_at {
            return Err(io::Error::other("the machine is dead"));
        }
        Ok(())
    }

    /// The disk after a power cut, on a new machine: what was synced, and each unsynced write
    /// or resize kept or lost as `rng` says (a kept write may also be torn to its first sectors).
    fn cut(&self, rng: &mut Rng, machine: &Arc<Mutex<Machine>>) -> Disk {
        self.cut_with(
            |_, op| match rng.below(3) {
                0 => None,
                1 => Some(op.clone()),
                _ => match op {
                    Pending::Write(offset, data) if data.len() > 512 => {
                        let sectors = data.len().div_ceil(512);
                        let kept = 512 * rng.below(sectors as u64) as usize;
                        Some(Pending::Write(*offset, data[..kept].to_vec()))
                    }
                    other => Some(other.clone()),
                },
            },
            machine,
        )
    }

    /// The disk after a power cut that keeps, whole, the unsynced writes `keep` picks (by their
    /// order).
    fn cut_keeping(&self, keep: impl Fn(usize, &Pending) -> bool, machine: &Arc<Mutex<Machine>>) -> Disk {
        self.cut_with(|n, op| keep(n, op).then(|| op.clone()), machine)
    }

    /// The disk after a power cut: what was synced, then what `survives` makes of each unsynced
    /// write or resize, in order (`None`: lost).
    fn cut_with(
        &self,
        mut survives: impl FnMut(usize, &Pending) -> Option<Pending>,
        machine: &Arc<Mutex<Machine>>,
    ) -> Disk {
        let state = self.state.lock().unwrap();
        let mut bytes = state.durable.clone();
        for (n, op) in state.pending.iter().enumerate() {
            if let Some(kept) = survives(n, op) {
                apply(&mut bytes, &kept);
            }
        }
        Disk {
            state: Arc::new(Mutex::new(DiskState {
                durable: bytes.clone(),
                current: bytes,
                pending: Vec::new(),
            })),
            machine: machine.clone(),
        }
    }
}

impl redb::StorageBackend for Disk {
    fn len(&self) -> io::Result<u64> {
        Ok(self.state.lock().unwrap().current.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let state = self.state.lock().unwrap();
        let end = offset as usize + out.len();
        let src = state
            .current
            .get(offset as usize..end)
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))?;
        out.copy_from_slice(src);
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.tick()?;
        let mut state = self.state.lock().unwrap();
        let op = Pending::SetLen(len);
        apply(&mut state.current, &op);
        state.pending.push(op);
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        self.tick()?;
        let mut state = self.state.lock().unwrap();
        state.durable = state.current.clone();
        state.pending.clear();
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.tick()?;
        let mut state = self.state.lock().unwrap();
        let op = Pending::Write(offset, data.to_vec());
        apply(&mut state.current, &op);
        state.pending.push(op);
        Ok(())
    }
}

/// xorshift64*: the runs are reproducible from their seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

const CHANNEL: B256 = B256::repeat_byte(0xc1);
/// Small, so that the runs go through many checkpoints.
const CAPACITY: u64 = 16 << 10;

fn digest(height: u64, variant: u8) -> B256 {
    let mut d = B256::left_padding_from(&height.to_be_bytes());
    d.0[0] = variant;
    d
}

/// Batch `i` as life `life` writes it: our signature at height `i` and event `i` (its size
/// varies, so frames do; both differ from one life to the next).
fn batch<'s>(store: &'s Store, i: u64, life: u8, rng: &mut Rng) -> entente_store::Batch<'s> {
    let mut batch = store.batch();
    batch.persist(
        CHANNEL,
        PersistRecord::OwnSignature {
            fork: 0,
            height: i,
            digest: digest(i, life),
        },
    );
    // Frames of a few sizes: a later life's frames often end exactly where an earlier life's
    // began (as a node's do, whose records have much the same size).
    let len = [16, 700, 2900][rng.below(3) as usize];
    batch.put_event(CHANNEL, i, Bytes::from(vec![tag(i, life); len]));
    batch
}

fn tag(i: u64, life: u8) -> u8 {
    (i as u8).wrapping_add(life.wrapping_mul(97))
}

/// Which batches the store holds, checking each is whole (its signature and its event) and the
/// one its lineage wrote (`lineage[i]`: the life whose batch `i` the store may hold; a batch
/// of an earlier life that a later one wrote over, or that was lost before it, must not come
/// back).
fn held(store: &Store, lineage: &[u8], seed: u64) -> Vec<u64> {
    let events = store.events(&CHANNEL, 0, usize::MAX).unwrap();
    let mut out = Vec::new();
    for i in 0..lineage.len() as u64 + 400 {
        let signed = store.own_signature(&CHANNEL, 0, i).unwrap();
        let event = events.iter().find(|(seq, _)| *seq == i);
        match (signed, event) {
            (Some(d), Some((_, bytes))) => {
                let life = lineage.get(i as usize).copied();
                assert!(
                    life.is_some_and(|life| d == digest(i, life)),
                    "seed {seed}: batch {i} is not its lineage's (life {life:?}): {d}"
                );
                let life = life.unwrap_or_default();
                assert!(
                    bytes.iter().all(|b| *b == tag(i, life)),
                    "seed {seed}: batch {i}: its event is damaged or from another life"
                );
                out.push(i);
            }
            (None, None) => {}
            (s, e) => panic!(
                "seed {seed}: batch {i} is half there: signature {s:?}, event {}",
                e.is_some()
            ),
        }
    }
    out
}

fn machine(dies_at: u64) -> Arc<Mutex<Machine>> {
    Arc::new(Mutex::new(Machine { ops: 0, dies_at }))
}

/// Lives of one store: each writes batches after what the last recovery kept (committed one by
/// one, or written and synced later in groups, or both), dies at a chosen write, loses power,
/// and is opened again (sometimes dying during that recovery too).
fn run(seed: u64) {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut current = machine(u64::MAX);
    let mut disks = (Disk::new(&current), Disk::new(&current));
    let mut store = Store::with_journal(disks.0.clone(), disks.1.clone(), CAPACITY, "power-loss").unwrap();
    let mut lineage: Vec<u8> = Vec::new();
    let mut acknowledged: Vec<u64> = Vec::new();
    for life in 1..=3u8 {
        // Dies somewhere in the next few hundred operations of either disk.
        {
            let mut m = current.lock().unwrap();
            m.dies_at = m.ops + 1 + rng.below(400);
        }
        // 0: every batch committed; 1: written, synced every few batches; 2: a mix.
        let mode = (seed + u64::from(life)) % 3;
        let sync = store.journal_sync().unwrap();
        // Written, not acknowledged yet: (batch, frame).
        let mut written: Vec<(u64, u64)> = Vec::new();
        let first = lineage.len() as u64;
        for i in first..first + 150 {
            lineage.push(life);
            // Now and then the database takes the writes the journal holds (as a node does
            // when it has nothing else to do): a crash then finds it partway through a round.
            if rng.below(5) == 0 && store.apply_journaled().is_err() {
                break;
            }
            let deferred = mode == 1 || (mode == 2 && rng.below(2) == 0);
            if !deferred {
                match batch(&store, i, life, &mut rng).commit() {
                    Ok(()) => {
                        // A commit's sync covers every batch written before it.
                        acknowledged.extend(written.drain(..).map(|(b, _)| b));
                        acknowledged.push(i);
                    }
                    Err(_) => break,
                }
                continue;
            }
            match batch(&store, i, life, &mut rng).write() {
                Ok(w) => written.push((i, w.frame().unwrap())),
                Err(_) => break,
            }
            if rng.below(4) == 0 {
                match sync.sync() {
                    Ok(durable) => {
                        let (done, rest): (Vec<_>, Vec<_>) = written.iter().partition(|(_, f)| *f <= durable);
                        acknowledged.extend(done.into_iter().map(|(b, _)| b));
                        written = rest;
                    }
                    Err(_) => break,
                }
            }
        }
        drop(sync);
        drop(store);

        // Power cut; the recovery itself may die (and be cut) once more.
        let mut recovered = None;
        for attempt in 0..3 {
            let next = machine(if attempt < 2 && rng.below(2) == 0 {
                rng.below(40)
            } else {
                u64::MAX
            });
            let (db, journal) = (disks.0.cut(&mut rng, &next), disks.1.cut(&mut rng, &next));
            disks = (db.clone(), journal.clone());
            current = next.clone();
            match Store::with_journal(db, journal, CAPACITY, "power-loss") {
                Ok(store) if next.lock().unwrap().dies_at == u64::MAX => {
                    recovered = Some(store);
                    break;
                }
                Ok(store) => drop(store),
                // Only a machine that dies may fail to open the store.
                Err(e) => assert!(
                    next.lock().unwrap().dies_at != u64::MAX,
                    "seed {seed}: the store does not open after life {life}: {e}"
                ),
            }
        }
        store = recovered
            .unwrap_or_else(|| panic!("seed {seed}: the store did not open again after life {life}"));
        let held = held(&store, &lineage, seed);
        assert!(
            held.iter().enumerate().all(|(k, i)| k as u64 == *i),
            "seed {seed}: after life {life} the batches held are not a prefix of those written: {held:?}"
        );
        for i in &acknowledged {
            assert!(
                held.contains(i),
                "seed {seed}: acknowledged batch {i} is lost after life {life} (held: {held:?})"
            );
        }
        // The next life writes after what is held.
        lineage.truncate(held.len());
    }
    // Nothing signs twice: a second digest at every held height is refused, whole.
    let held: Vec<u64> = (0..lineage.len() as u64).collect();
    for i in &held {
        let mut batch = store.batch();
        batch.persist(
            CHANNEL,
            PersistRecord::OwnSignature {
                fork: 0,
                height: *i,
                digest: digest(*i, 0xff),
            },
        );
        assert!(
            matches!(batch.commit(), Err(StoreError::DoubleSign { .. })),
            "seed {seed}: height {i} signed twice"
        );
    }
    // And the store carries on where it stopped.
    let next = lineage.len() as u64;
    batch(&store, next, 9, &mut rng).commit().unwrap();
    assert!(store.own_signature(&CHANNEL, 0, next).unwrap().is_some());
}

#[test]
fn a_frame_left_behind_a_lost_one_does_not_come_back_in_a_later_life() {
    // Life 1 writes batches 0, 1, 2 without syncing them; the power cut keeps the writes of 1
    // and 2 and loses 0. Life 2 holds nothing of them, writes batches 0 and 1 again (other
    // digests, frames of the same sizes) and syncs them, and dies. Life 3 must hold life 2's
    // batches 0 and 1 and nothing of life 1's: not its batch 2, whose frame sits right after.
    let m1 = machine(u64::MAX);
    let (db, journal) = (Disk::new(&m1), Disk::new(&m1));
    let store = Store::with_journal(db.clone(), journal.clone(), CAPACITY, "holes").unwrap();
    fn fixed(store: &Store, i: u64, life: u8) -> entente_store::Batch<'_> {
        let mut batch = store.batch();
        batch.persist(
            CHANNEL,
            PersistRecord::OwnSignature {
                fork: 0,
                height: i,
                digest: digest(i, life),
            },
        );
        batch.put_event(CHANNEL, i, Bytes::from(vec![tag(i, life); 600]));
        batch
    }
    let journal_writes_before = journal.state.lock().unwrap().pending.len();
    for i in 0..3 {
        let _ = fixed(&store, i, 1).write().unwrap();
    }
    // The machine dies: nothing more reaches either disk (not the database's close either).
    m1.lock().unwrap().dies_at = 0;
    drop(store);
    let m2 = machine(u64::MAX);
    // The database keeps nothing unsynced; the journal loses the first frame, keeps the others.
    let db2 = db.cut_keeping(|_, _| false, &m2);
    let journal2 = journal.cut_keeping(|n, _| n > journal_writes_before, &m2);
    let store = Store::with_journal(db2.clone(), journal2.clone(), CAPACITY, "holes").unwrap();
    assert_eq!(
        held(&store, &[], 0),
        Vec::<u64>::new(),
        "life 1 left nothing acknowledged"
    );
    for i in 0..2 {
        fixed(&store, i, 2).commit().unwrap();
    }
    m2.lock().unwrap().dies_at = 0;
    drop(store);
    let m3 = machine(u64::MAX);
    let store = Store::with_journal(
        db2.cut_keeping(|_, _| false, &m3),
        journal2.cut_keeping(|_, _| false, &m3),
        CAPACITY,
        "holes",
    )
    .unwrap();
    assert_eq!(held(&store, &[2, 2], 0), vec![0, 1]);
}

#[test]
fn acknowledged_batches_survive_a_power_cut_at_any_write() {
    let seeds: u64 = std::env::var("POWER_LOSS_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    for seed in 0..seeds {
        eprintln!("seed {seed}");
        run(seed);
    }
}
