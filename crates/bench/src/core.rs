//! Finality latency, throughput and CPU per transition of the protocol core, all peers in one
//! process, over an in-memory transport, with durable storage.
//!
//! Every peer is the node's channel core ([`entente_channel::Channel`], live, its court off: no
//! chain) around a real [`StateManager`] running the RoundRobinCounter bytecode in revm, with its
//! own redb data directory: each time a peer handles an input, the records it must store are
//! committed in one durable write transaction before its messages are delivered (the node's
//! rule, through the node's `Batch::record`). Messages travel as encoded CBOR frames through an in-memory queue, in order, without
//! delay: what is measured is the work itself — signatures, EVM, hashing, encoding, fsync.
//!
//! - **Latency**: one transaction at a time; from `submit` to the moment the last peer reports
//!   it final. In virtual-voting mode a transaction is final only after every participant wrote
//!   a later one, so the writers keep playing and each height's latency is measured the same way.
//! - **Throughput**: writers play as fast as they can (each moves as soon as it applied the
//!   previous move); finalized transitions per second of wall time, counted from the first
//!   height final everywhere (in virtual voting that one needs N more transactions first).
//! - **CPU**: process CPU time (user + system) per finalized transition, divided by N: the work
//!   one peer does for one transition.
//!
//! The peers of a channel are independent parties, so they use the machine's cores as separate
//! nodes would: with `threads` above 1 the peers are shared out (peer `i` on shard
//! `i % threads`; shard 0 on the calling thread, each other one on a worker thread that owns its
//! peers, as a peer's EVM stays on the thread that built it) and the peers a round reaches work
//! at once, while the frames they send are queued in peer order as on one thread.

#![allow(clippy::disallowed_methods)] // a benchmark reads the wall clock

use std::collections::VecDeque;
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use entente_channel::{ChannelEvent, Effect};
use entente_contracts::{RoundRobinCounter, artifacts};
use entente_evm_runtime::{MachineCode, MachineInstance};
use entente_state_manager::{Config, Event, StateManager};
use entente_store::{MachineSource, Store};
use entente_types::{
    Address, AgreementMode, B256, Bytes, ChannelSpec, Domain, Envelope, LocalSigner, Signer, Timing, U256,
    keccak256,
};

/// Where a peer's records go.
enum Storage {
    /// Not stored.
    None,
    /// Its own store, one durable commit per turn.
    Own(Store),
    /// Kept in `pending` until its node commits the records of all its channels at once.
    Node,
}

/// One peer: its channel core and where its records go.
struct Peer {
    channel: entente_channel::Channel<LocalSigner>,
    storage: Storage,
    pending: Vec<entente_channel::Record>,
    finalized: u64,
}

/// What one peer's turn sends: encoded frames, to one participant or (`None`) to every other.
type Sends = Vec<(Option<Address>, Vec<u8>)>;

impl Peer {
    /// The protocol core (a live channel always has one).
    #[allow(clippy::expect_used)]
    fn sm(&self) -> &StateManager<LocalSigner> {
        self.channel.state_manager().expect("a benchmark channel is live")
    }

    /// Hands the frames that reached this peer to its core, in order (decoded as the node
    /// decodes a frame).
    fn receive(&mut self, frames: Vec<(Address, Vec<u8>)>, now: u64) {
        for (from, frame) in frames {
            if let Ok(envelope) = Envelope::decode(&frame) {
                self.channel.handle_message(from, envelope.message, now);
            }
        }
    }

    /// Carries out the peer's effects: store (one durable commit), then encode what it sends.
    /// Returns whether it committed and the frames to deliver.
    fn turn(&mut self, channel_id: B256, machine: &MachineSource) -> Result<(bool, Sends)> {
        let mut sends = Vec::new();
        let me = self.sm().me();
        let mut batch = match &self.storage {
            Storage::Own(store) => Some(store.batch()),
            Storage::None | Storage::Node => None,
        };
        while let Some(effect) = self.channel.poll_effect() {
            match effect {
                Effect::Persist(record) => {
                    if let Some(batch) = batch.as_mut() {
                        batch.record(channel_id, me, machine, record);
                    } else if matches!(self.storage, Storage::Node) {
                        self.pending.push(record);
                    }
                }
                Effect::Broadcast(message) => sends.push((None, message)),
                Effect::Send { to, message } => sends.push((Some(to), message)),
                Effect::Notify(ChannelEvent::Protocol(Event::Finalized { height, .. })) => {
                    self.finalized = self.finalized.max(height)
                }
                Effect::Notify(_) | Effect::Call(_) | Effect::Peers(_) => {}
            }
        }
        let mut committed = false;
        if let Some(batch) = batch
            && !batch.is_empty()
        {
            batch.commit().context("durable commit")?;
            committed = true;
        }
        let frames = sends
            .into_iter()
            .map(|(to, message)| Ok((to, Envelope::new(message).encode()?)))
            .collect::<Result<Sends>>()?;
        Ok((committed, frames))
    }
}

/// What the driver reads of a peer between rounds (kept up to date after each of its turns).
#[derive(Debug, Clone, Copy)]
struct Status {
    me: Address,
    tip: u64,
    finalized: u64,
    my_turn: bool,
}

impl Peer {
    fn status(&self) -> Status {
        let sm = self.sm();
        Status {
            me: sm.me(),
            tip: sm.tip(),
            finalized: self.finalized,
            my_turn: sm.is_my_turn(),
        }
    }
}

/// What one peer's turn produced: whether it committed, what it sends, its status after.
type Out = (usize, Result<(bool, Sends)>, Status);

/// Frames for some peers: each peer's index with what reached it (sender, frame), in order.
type Inbox = Vec<(usize, Vec<(Address, Vec<u8>)>)>;

/// Some of a channel's peers (by index), on one thread.
struct Shard {
    peers: Vec<(usize, Peer)>,
    channel_id: B256,
    machine: MachineSource,
}

impl Shard {
    /// Each peer of `inbox` takes its frames, in order, and carries out its turn.
    fn round(&mut self, now: u64, mut inbox: Inbox) -> Vec<Out> {
        inbox.sort_by_key(|(i, _)| *i);
        let mut outs = Vec::with_capacity(inbox.len());
        for (i, frames) in inbox {
            let Some((_, peer)) = self.peers.iter_mut().find(|(j, _)| *j == i) else {
                continue;
            };
            peer.receive(frames, now);
            let out = peer.turn(self.channel_id, &self.machine);
            outs.push((i, out, peer.status()));
        }
        outs
    }

    /// Peer `i` submits `data`; `None` if it is not here or could not.
    fn submit(&mut self, i: usize, data: Bytes, now: u64) -> Option<Out> {
        let (_, peer) = self.peers.iter_mut().find(|(j, _)| *j == i)?;
        peer.channel.submit(data, now).ok()?;
        let out = peer.turn(self.channel_id, &self.machine);
        Some((i, out, peer.status()))
    }
}

/// What a worker thread is asked to do with its shard.
enum Job {
    Round(u64, Inbox),
    Submit(usize, Bytes, u64),
}

/// A thread that owns a shard (an EVM instance stays on the thread that built it).
struct Worker {
    jobs: Option<SyncSender<Job>>,
    outs: Receiver<Vec<Out>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    /// Builds the shard with `build` on a new thread and runs its peers' first turns (what each
    /// core stores at its start); returns the worker and those turns' outputs (a failed build
    /// comes back as one error).
    fn spawn(build: impl FnOnce() -> Result<Shard> + Send + 'static) -> Result<(Self, Vec<Out>)> {
        let (jobs, job_rx) = sync_channel::<Job>(1);
        let (out_tx, outs) = sync_channel::<Vec<Out>>(1);
        let handle = std::thread::Builder::new()
            .name("bench-peers".into())
            .spawn(move || {
                let mut shard = match build() {
                    Ok(shard) => shard,
                    Err(e) => {
                        let _ = out_tx.send(vec![(usize::MAX, Err(e), NO_STATUS)]);
                        return;
                    }
                };
                let all = shard.peers.iter().map(|(i, _)| (*i, Vec::new())).collect();
                if out_tx.send(shard.round(0, all)).is_err() {
                    return;
                }
                while let Ok(job) = job_rx.recv() {
                    let outs = match job {
                        Job::Round(now, inbox) => shard.round(now, inbox),
                        Job::Submit(i, data, now) => shard.submit(i, data, now).into_iter().collect(),
                    };
                    if out_tx.send(outs).is_err() {
                        return;
                    }
                }
            })
            .context("spawn a benchmark thread")?;
        let mut worker = Self {
            jobs: Some(jobs),
            outs,
            handle: Some(handle),
        };
        let first = worker.answer()?;
        Ok((worker, first))
    }

    fn ask(&self, job: Job) -> Result<()> {
        self.jobs
            .as_ref()
            .and_then(|jobs| jobs.send(job).ok())
            .ok_or_else(|| anyhow!("a benchmark thread stopped"))
    }

    fn answer(&mut self) -> Result<Vec<Out>> {
        self.outs
            .recv()
            .map_err(|_| anyhow!("a benchmark thread stopped"))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

const NO_STATUS: Status = Status {
    me: Address::ZERO,
    tip: 0,
    finalized: 0,
    my_turn: false,
};

/// Where a channel's peers run: peer `i` on shard `i % threads`, shard 0 on the caller's thread
/// and each other shard on a worker thread of its own.
struct Peers {
    here: Shard,
    workers: Vec<Worker>,
}

impl Peers {
    fn threads(&self) -> usize {
        self.workers.len() + 1
    }
}

/// N peers of one channel and the frames in flight between them.
pub struct Channel {
    peers: Peers,
    status: Vec<Status>,
    queue: VecDeque<(usize, Address, Vec<u8>)>,
    index: std::collections::HashMap<Address, usize>,
    started: Instant,
    /// Durable commits made (one per peer turn that had something to store).
    pub commits: u64,
}

/// Elapsed milliseconds: the cores' local clock.
fn ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl Channel {
    /// A running RoundRobinCounter channel of `n` peers in `mode`, each with a redb store under
    /// `dir` (`None`: no storage), its peers spread over `threads` threads (1: all on the
    /// caller's). The peers of a channel are independent parties: on one machine they share its
    /// cores as separate nodes would.
    pub fn new(n: usize, mode: AgreementMode, dir: Option<&Path>, salt: u64, threads: usize) -> Result<Self> {
        Self::build(n, mode, dir.map(Some), salt, threads)
    }

    /// A channel whose peer `i` is a party of node `i`: its records wait until the node commits
    /// them with those of its other channels ([`Channel::commit_node`]). All on the caller's
    /// thread.
    pub fn on_nodes(n: usize, mode: AgreementMode, salt: u64) -> Result<Self> {
        Self::build(n, mode, Some(None), salt, 1)
    }

    /// `dir`: `None` for no storage, `Some(None)` for the nodes' stores, `Some(Some(dir))` for a
    /// store per peer under `dir`.
    fn build(
        n: usize,
        mode: AgreementMode,
        dir: Option<Option<&Path>>,
        salt: u64,
        threads: usize,
    ) -> Result<Self> {
        let code = MachineCode::from_artifact_json(artifacts::ROUND_ROBIN_COUNTER)?;
        let keys: Vec<LocalSigner> = (0..n)
            .map(|i| LocalSigner::from_bytes(&keccak256(format!("bench key {salt} {i}"))))
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow!("key: {e}"))?;
        let participants: Vec<Address> = keys.iter().map(|k| k.address()).collect();
        let mut scratch = MachineInstance::deploy(&code, 5_000_000)?;
        let genesis: Bytes = scratch.view_decode(&RoundRobinCounter::initialStateCall {
            participants: participants.clone(),
            deposits: vec![U256::from(1u64); n],
            target: u64::MAX,
        })?;
        let channel_id = keccak256(format!("bench channel {salt}"));
        let spec = ChannelSpec {
            channel_id,
            domain: Domain::new(31_337, Address::repeat_byte(0x11)),
            participants: participants.clone(),
            state_machine: Address::repeat_byte(0x22),
            timing: Timing {
                // Generous: the benchmark measures work, not timeouts.
                p2p_time: 3_600,
                agreement_time: 3_600,
                chain_fallback_time: 3_600,
                challenge_time: 3_600,
            },
            agreement_mode: mode,
            genesis_state: genesis,
            genesis_timestamp: 1_700_000_000,
        };
        let started = Instant::now();
        let machine = MachineSource::ArtifactJson(artifacts::ROUND_ROBIN_COUNTER.to_string());
        let store_dir = dir.map(|d| d.map(Path::to_path_buf));
        // The peers a shard holds, built where the shard runs.
        let shard = move |mine: Vec<(usize, LocalSigner)>| -> Result<Shard> {
            let mut peers = Vec::with_capacity(mine.len());
            for (i, key) in mine {
                let channel = entente_channel::Channel::live(
                    key,
                    spec.clone(),
                    code.clone(),
                    Config::default(),
                    false,
                    0,
                )?;
                let storage = match &store_dir {
                    Some(Some(dir)) => Storage::Own(Store::create(dir.join(format!("c{salt}-p{i}")))?),
                    Some(None) => Storage::Node,
                    None => Storage::None,
                };
                peers.push((
                    i,
                    Peer {
                        channel,
                        storage,
                        pending: Vec::new(),
                        finalized: 0,
                    },
                ));
            }
            Ok(Shard {
                peers,
                channel_id,
                machine: machine.clone(),
            })
        };
        let threads = threads.clamp(1, n.max(1));
        let mut status = vec![NO_STATUS; n];
        let mut firsts = Vec::new();
        let mut shares: Vec<Vec<(usize, LocalSigner)>> = (0..threads).map(|_| Vec::new()).collect();
        for (i, key) in keys.into_iter().enumerate() {
            shares[i % threads].push((i, key));
        }
        let mut shares = shares.into_iter();
        let mine = shares.next().unwrap_or_default();
        let mut workers = Vec::with_capacity(threads - 1);
        for theirs in shares {
            let build = shard.clone();
            let (worker, first) = Worker::spawn(move || build(theirs))?;
            firsts.extend(first);
            workers.push(worker);
        }
        let mut here = shard(mine)?;
        let all = here.peers.iter().map(|(i, _)| (*i, Vec::new())).collect();
        firsts.extend(here.round(0, all));
        let peers = Peers { here, workers };
        let index = participants.iter().enumerate().map(|(i, a)| (*a, i)).collect();
        let mut channel = Self {
            peers,
            status: Vec::new(),
            queue: VecDeque::new(),
            index,
            started,
            commits: 0,
        };
        // What each core stored at its start (its spec).
        firsts.sort_by_key(|(i, _, _)| *i);
        for (i, _, s) in &firsts {
            if let Some(slot) = status.get_mut(*i) {
                *slot = *s;
            }
        }
        channel.status = status;
        for out in firsts {
            channel.route(out)?;
        }
        channel.commits = 0;
        Ok(channel)
    }

    /// Number of peers.
    pub fn n(&self) -> usize {
        self.status.len()
    }

    /// Lowest finalized height over every peer.
    pub fn finalized_everywhere(&self) -> u64 {
        self.status.iter().map(|s| s.finalized).min().unwrap_or(0)
    }

    /// Height of the latest transaction (the writer's view).
    pub fn tip(&self) -> u64 {
        self.status.iter().map(|s| s.tip).max().unwrap_or(0)
    }

    /// Records peer `i`'s status and queues what its turn sends, in order.
    fn route(&mut self, (i, out, status): Out) -> Result<()> {
        let (committed, sends) = out?;
        self.commits += u64::from(committed);
        if let Some(slot) = self.status.get_mut(i) {
            *slot = status;
        }
        let from = status.me;
        for (to, frame) in sends {
            match to {
                Some(to) => {
                    if let Some(&j) = self.index.get(&to) {
                        self.queue.push_back((j, from, frame));
                    }
                }
                None => {
                    for j in (0..self.status.len()).filter(|&j| j != i) {
                        self.queue.push_back((j, from, frame.clone()));
                    }
                }
            }
        }
        Ok(())
    }

    /// Adds peer `i`'s records waiting for its node's commit to `batch` (the node commits it
    /// before any message this channel queued since is delivered: [`Channel::deliver_round`]
    /// runs after the commit). Only for a channel [`Channel::on_nodes`].
    pub fn commit_node(&mut self, i: usize, batch: &mut entente_store::Batch<'_>) -> Result<()> {
        if !self.peers.workers.is_empty() {
            return Err(anyhow!("a channel on worker threads has no node store"));
        }
        let shard = &mut self.peers.here;
        let (channel_id, machine) = (shard.channel_id, &shard.machine);
        if let Some((_, peer)) = shard.peers.iter_mut().find(|(j, _)| *j == i) {
            let me = peer.sm().me();
            for record in peer.pending.drain(..) {
                batch.record(channel_id, me, machine, record);
            }
        }
        Ok(())
    }

    /// The next writer submits `add(1)`; returns false if it could not.
    pub fn submit_next(&mut self) -> Result<bool> {
        let Some(w) = self.status.iter().position(|s| s.my_turn) else {
            return Ok(false);
        };
        let now = ms(self.started);
        let data: Bytes =
            alloy_sol_types::SolCall::abi_encode(&RoundRobinCounter::addCall { step: 1 }).into();
        let out = match w % self.peers.threads() {
            0 => self.peers.here.submit(w, data, now),
            k => {
                let worker = &mut self.peers.workers[k - 1];
                worker.ask(Job::Submit(w, data, now))?;
                worker.answer()?.pop()
            }
        };
        match out {
            Some(out) => self.route(out).map(|()| true),
            None => Ok(false),
        }
    }

    /// Delivers every frame in flight, then lets each peer that received one carry out its
    /// effects once (one durable commit per peer per round, as the node groups the messages
    /// that are ready); false when nothing was in flight. The shards run their peers at the
    /// same time; what the peers send is queued in peer order, as on one thread.
    pub fn deliver_round(&mut self) -> Result<bool> {
        if self.queue.is_empty() {
            return Ok(false);
        }
        let now = ms(self.started);
        let mut inbox: Vec<Vec<(Address, Vec<u8>)>> = vec![Vec::new(); self.status.len()];
        for (to, from, frame) in std::mem::take(&mut self.queue) {
            inbox[to].push((from, frame));
        }
        let reached = inbox
            .into_iter()
            .enumerate()
            .filter(|(_, frames)| !frames.is_empty());
        let threads = self.peers.threads();
        let mut shares: Vec<Inbox> = (0..threads).map(|_| Vec::new()).collect();
        for (i, frames) in reached {
            shares[i % threads].push((i, frames));
        }
        let mut shares = shares.into_iter();
        let mine = shares.next().unwrap_or_default();
        // The workers start first, then this thread runs its own share meanwhile.
        let mut asked = Vec::new();
        for (w, share) in shares.enumerate() {
            if !share.is_empty() {
                self.peers.workers[w].ask(Job::Round(now, share))?;
                asked.push(w);
            }
        }
        let mut outs = if mine.is_empty() {
            Vec::new()
        } else {
            self.peers.here.round(now, mine)
        };
        for w in asked {
            outs.extend(self.peers.workers[w].answer()?);
        }
        outs.sort_by_key(|(i, _, _)| *i);
        for out in outs {
            self.route(out)?;
        }
        Ok(true)
    }
}

/// Figures of one configuration.
#[derive(Debug, Clone)]
pub struct CoreFigures {
    /// Participants.
    pub n: usize,
    /// Agreement mode.
    pub mode: AgreementMode,
    /// Submit-to-final-everywhere latencies.
    pub latencies: Vec<Duration>,
    /// Finalized transitions per second, writers playing flat out.
    pub throughput: f64,
    /// CPU time per finalized transition and per peer.
    pub cpu_per_peer: Duration,
    /// Threads the peers were spread over.
    pub threads: usize,
}

/// Process CPU time (user + system).
pub fn cpu_time() -> Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a rusage struct into the pointer it is given.
    #[allow(unsafe_code)]
    let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) } == 0;
    if !ok {
        return Duration::ZERO;
    }
    // SAFETY: initialized by the successful call above.
    #[allow(unsafe_code)]
    let usage = unsafe { usage.assume_init() };
    let tv = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Measures latency (`samples` transactions one at a time, or played continuously in
/// virtual-voting mode) and throughput (`flat_out` transactions played flat out), the peers of
/// each round spread over `threads` threads.
pub fn measure(
    n: usize,
    mode: AgreementMode,
    samples: usize,
    flat_out: usize,
    threads: usize,
    dir: &Path,
) -> Result<CoreFigures> {
    // Latency.
    let mut ch = Channel::new(n, mode, Some(dir), 1, threads)?;
    let mut latencies = Vec::with_capacity(samples);
    match mode {
        AgreementMode::ExplicitConfirmations => {
            for _ in 0..samples {
                let target = ch.tip() + 1;
                let t0 = Instant::now();
                if !ch.submit_next()? {
                    return Err(anyhow!("nobody could write at height {target}"));
                }
                while ch.finalized_everywhere() < target {
                    if !ch.deliver_round()? {
                        return Err(anyhow!("height {target} never became final"));
                    }
                }
                latencies.push(t0.elapsed());
            }
        }
        AgreementMode::VirtualVotingOnly => {
            // Each height becomes final once every participant wrote after it: play on and
            // record, for each height, submit time and the moment it is final everywhere.
            let total = samples + n + 1;
            let mut submitted: Vec<Instant> = Vec::with_capacity(total);
            let mut done = 0;
            while latencies.len() < samples {
                if submitted.len() < total && ch.queue.is_empty() {
                    let t = Instant::now();
                    if ch.submit_next()? {
                        submitted.push(t);
                    }
                }
                if !ch.deliver_round()? && submitted.len() >= total {
                    break;
                }
                let fin = usize::try_from(ch.finalized_everywhere()).unwrap_or(0);
                while done < fin.min(submitted.len()) && latencies.len() < samples {
                    latencies.push(submitted[done].elapsed());
                    done += 1;
                }
            }
        }
    }
    // Throughput and CPU: a fresh channel, writers flat out, measured once the pipeline is full
    // (in virtual voting the first height is final only after n more transactions: counting
    // those would charge the steady state with n transactions that finalize nothing yet).
    let mut ch = Channel::new(n, mode, Some(dir), 2, threads)?;
    let mut submitted = 0u64;
    let mut play = |ch: &mut Channel, until: u64| -> Result<()> {
        let most = until + n as u64 + 1;
        while ch.finalized_everywhere() < until {
            if submitted < most && ch.submit_next()? {
                submitted += 1;
            }
            if !ch.deliver_round()? && submitted >= most {
                return Err(anyhow!("height {until} never became final"));
            }
        }
        Ok(())
    };
    play(&mut ch, 1)?;
    let first = ch.finalized_everywhere();
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    play(&mut ch, first + flat_out as u64)?;
    let elapsed = t0.elapsed();
    let cpu = cpu_time().saturating_sub(cpu0);
    let finalized = ch.finalized_everywhere().saturating_sub(first).max(1);
    Ok(CoreFigures {
        n,
        mode,
        latencies,
        throughput: finalized as f64 / elapsed.as_secs_f64(),
        cpu_per_peer: cpu / u32::try_from(finalized).unwrap_or(u32::MAX) / u32::try_from(n).unwrap_or(1),
        threads,
    })
}

/// The threads [`concurrent`] runs on in the `core` benchmark.
pub const CONCURRENT_THREADS: usize = 2;

/// 100 (or `channels`) two-party channels at once on `threads` threads, writers flat out:
/// finalized transitions per second over all of them. Each thread is two nodes, each a party to
/// every channel of the thread with one store: after each sweep over its channels a node makes
/// one durable commit of all their records, before any message of that sweep is delivered.
pub fn concurrent(
    channels: usize,
    mode: AgreementMode,
    per_channel: u64,
    threads: usize,
    dir: &Path,
) -> Result<f64> {
    let t0 = Instant::now();
    let results: Vec<Result<u64>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || -> Result<u64> {
                    let mine: Vec<usize> = (0..channels).filter(|c| c % threads == t).collect();
                    let nodes = [0, 1].map(|i| Store::create(dir.join(format!("thread{t}-node{i}"))));
                    let [a, b] = nodes;
                    let nodes = [a?, b?];
                    let mut chans = mine
                        .iter()
                        .map(|&c| Channel::on_nodes(2, mode, 1_000 + c as u64))
                        .collect::<Result<Vec<_>>>()?;
                    let commit = |chans: &mut Vec<Channel>| -> Result<()> {
                        for (i, store) in nodes.iter().enumerate() {
                            let mut batch = store.batch();
                            for ch in chans.iter_mut() {
                                ch.commit_node(i, &mut batch)?;
                            }
                            if !batch.is_empty() {
                                batch.commit().context("durable commit")?;
                            }
                        }
                        Ok(())
                    };
                    commit(&mut chans)?;
                    let mut submitted = vec![0u64; chans.len()];
                    loop {
                        let mut busy = false;
                        for (k, ch) in chans.iter_mut().enumerate() {
                            if ch.finalized_everywhere() >= per_channel {
                                continue;
                            }
                            busy = true;
                            if submitted[k] < per_channel + 3 && ch.submit_next()? {
                                submitted[k] += 1;
                            }
                        }
                        // The records of the submissions, then the messages they queued.
                        commit(&mut chans)?;
                        for ch in chans.iter_mut() {
                            ch.deliver_round()?;
                        }
                        commit(&mut chans)?;
                        if !busy {
                            break;
                        }
                    }
                    Ok(chans.iter().map(|c| c.finalized_everywhere()).sum())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow!("a benchmark thread panicked")))
            })
            .collect()
    });
    let mut total = 0;
    for r in results {
        total += r?;
    }
    Ok(total as f64 / t0.elapsed().as_secs_f64())
}

/// The `p`-th percentile (0..=100) of `samples`.
pub fn percentile(samples: &[Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn mode_name(mode: AgreementMode) -> &'static str {
    match mode {
        AgreementMode::ExplicitConfirmations => "explicit",
        AgreementMode::VirtualVotingOnly => "virtual voting",
    }
}

fn ms_f(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The markdown table of the core figures and of the concurrent-channel throughput.
pub fn markdown(
    figures: &[CoreFigures],
    concurrent: &[(AgreementMode, usize, f64)],
    limits: &crate::limits::Primitives,
) -> String {
    let mut out = String::from(
        "Each figure beside its limit, computed in the same run from the measured primitives (below; \
         formulas in `crates/bench/src/limits.rs`): latency as measured / floor (1.0 = at the floor), \
         throughput and CPU as measured / limit. The peers a round reaches are spread over the threads \
         of the `threads` column (the limits count the same threads).\n\n\
         | N | mode | threads | latency p50 (ms) | floor (ms) | p50 / floor | latency p99 (ms) | finalized/s (one channel) | limit | of limit | CPU per transition per peer (µs) | limit (µs) | measured / limit |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for f in figures {
        let p50 = percentile(&f.latencies, 50.0);
        let floor = limits.core_latency(f.n, f.mode, f.threads);
        let tps_limit = limits.core_throughput(f.n, f.mode, f.threads);
        let cpu_limit = limits.cpu_per_peer(f.n, f.mode);
        out.push_str(&format!(
            "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} | {:.0} | {:.0}% | {:.0} | {:.0} | {:.2} |\n",
            f.n,
            mode_name(f.mode),
            f.threads,
            ms_f(p50),
            ms_f(floor),
            ratio(p50.as_secs_f64(), floor.as_secs_f64()),
            ms_f(percentile(&f.latencies, 99.0)),
            f.throughput,
            tps_limit,
            100.0 * ratio(f.throughput, tps_limit),
            f.cpu_per_peer.as_secs_f64() * 1e6,
            cpu_limit.as_secs_f64() * 1e6,
            ratio(f.cpu_per_peer.as_secs_f64(), cpu_limit.as_secs_f64()),
        ));
    }
    out.push_str(
        "\n| concurrent 2-party channels | mode | finalized/s (all channels) | limit | of limit |\n|---:|---|---:|---:|---:|\n",
    );
    for (mode, channels, tps) in concurrent {
        let limit = limits.concurrent_throughput(2, *mode, CONCURRENT_THREADS);
        out.push_str(&format!(
            "| {channels} | {} | {tps:.0} | {limit:.0} | {:.0}% |\n",
            mode_name(*mode),
            100.0 * ratio(*tps, limit)
        ));
    }
    out.push_str("\nThe primitives, measured in this run:\n\n");
    out.push_str(&limits.markdown());
    out
}

/// `a / b`, 0 when `b` is 0.
pub fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// The figures as JSON.
pub fn json(
    figures: &[CoreFigures],
    concurrent: &[(AgreementMode, usize, f64)],
    limits: &crate::limits::Primitives,
) -> serde_json::Value {
    serde_json::json!({
        "transport": "in-memory",
        "storage": "redb, durable commit per peer turn",
        "primitives": limits.json(),
        "single_channel": figures.iter().map(|f| serde_json::json!({
            "n": f.n,
            "mode": mode_name(f.mode),
            "samples": f.latencies.len(),
            "latency_p50_ms": ms_f(percentile(&f.latencies, 50.0)),
            "latency_p99_ms": ms_f(percentile(&f.latencies, 99.0)),
            "threads": f.threads,
            "limit_latency_ms": ms_f(limits.core_latency(f.n, f.mode, f.threads)),
            "finalized_per_s": f.throughput,
            "limit_finalized_per_s": limits.core_throughput(f.n, f.mode, f.threads),
            "cpu_per_transition_per_peer_us": f.cpu_per_peer.as_secs_f64() * 1e6,
            "limit_cpu_per_transition_per_peer_us": limits.cpu_per_peer(f.n, f.mode).as_secs_f64() * 1e6,
        })).collect::<Vec<_>>(),
        "concurrent": concurrent.iter().map(|(mode, channels, tps)| serde_json::json!({
            "channels": channels, "participants": 2, "mode": mode_name(*mode), "finalized_per_s": tps,
            "limit_finalized_per_s": limits.concurrent_throughput(2, *mode, CONCURRENT_THREADS),
        })).collect::<Vec<_>>(),
    })
}

/// A log-scale plot of latency p50 and p99 against N, one line per mode (SVG).
pub fn svg(figures: &[CoreFigures], title: &str) -> String {
    let (w, h, left, right, top, bottom) = (720.0, 420.0, 70.0, 20.0, 40.0, 50.0);
    let ns: Vec<usize> = {
        let mut v: Vec<usize> = figures.iter().map(|f| f.n).collect();
        v.sort();
        v.dedup();
        v
    };
    let values: Vec<f64> = figures
        .iter()
        .flat_map(|f| {
            [
                ms_f(percentile(&f.latencies, 50.0)),
                ms_f(percentile(&f.latencies, 99.0)),
            ]
        })
        .filter(|v| *v > 0.0)
        .collect();
    let lo = values
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min)
        .max(1e-3)
        .log10()
        .floor();
    let hi = values
        .iter()
        .copied()
        .fold(0.0, f64::max)
        .max(1e-3)
        .log10()
        .ceil()
        .max(lo + 1.0);
    let x = |i: usize| left + (w - left - right) * (i as f64 + 0.5) / ns.len().max(1) as f64;
    let y = |v: f64| top + (h - top - bottom) * (1.0 - (v.max(1e-3).log10() - lo) / (hi - lo));
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">{title}</text>\n",
        w / 2.0
    );
    let mut decade = lo;
    while decade <= hi {
        let v = 10f64.powf(decade);
        s.push_str(&format!(
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y0:.1}\" y2=\"{y0:.1}\" stroke=\"#ddd\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v} ms</text>\n",
            w - right,
            left - 6.0,
            y(v) + 4.0,
            y0 = y(v)
        ));
        decade += 1.0;
    }
    for (i, n) in ns.iter().enumerate() {
        s.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">N={n}</text>\n",
            x(i),
            h - bottom + 20.0
        ));
    }
    let series = [
        (
            AgreementMode::ExplicitConfirmations,
            50.0,
            "#1f77b4",
            "explicit p50",
            "",
        ),
        (
            AgreementMode::ExplicitConfirmations,
            99.0,
            "#1f77b4",
            "explicit p99",
            "5,4",
        ),
        (
            AgreementMode::VirtualVotingOnly,
            50.0,
            "#d62728",
            "virtual voting p50",
            "",
        ),
        (
            AgreementMode::VirtualVotingOnly,
            99.0,
            "#d62728",
            "virtual voting p99",
            "5,4",
        ),
    ];
    for (k, (mode, p, color, label, dash)) in series.iter().enumerate() {
        let points: Vec<String> = ns
            .iter()
            .enumerate()
            .filter_map(|(i, n)| {
                let f = figures.iter().find(|f| f.n == *n && f.mode == *mode)?;
                Some(format!(
                    "{:.1},{:.1}",
                    x(i),
                    y(ms_f(percentile(&f.latencies, *p)))
                ))
            })
            .collect();
        if points.is_empty() {
            continue;
        }
        s.push_str(&format!(
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\" stroke-dasharray=\"{dash}\" points=\"{}\"/>\n",
            points.join(" ")
        ));
        s.push_str(&format!(
            "<line x1=\"{}\" x2=\"{}\" y1=\"{ly}\" y2=\"{ly}\" stroke=\"{color}\" stroke-width=\"2\" stroke-dasharray=\"{dash}\"/><text x=\"{}\" y=\"{}\">{label}</text>\n",
            left + 10.0,
            left + 40.0,
            left + 46.0,
            top + 14.0 + 16.0 * k as f64 + 4.0,
            ly = top + 14.0 + 16.0 * k as f64
        ));
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Plays until height 12 is final everywhere; returns that height, the commits made, and
    /// the frames in flight (recipient, sender) after each submission.
    #[allow(clippy::type_complexity)]
    fn play(threads: usize, mode: AgreementMode, dir: &Path) -> (u64, u64, Vec<Vec<(usize, Address)>>) {
        let mut ch = Channel::new(4, mode, Some(dir), 7, threads).unwrap();
        let mut queued = Vec::new();
        while ch.finalized_everywhere() < 12 {
            ch.submit_next().unwrap();
            queued.push(ch.queue.iter().map(|(to, from, _)| (*to, *from)).collect());
            assert!(ch.deliver_round().unwrap() || ch.finalized_everywhere() >= 12);
        }
        (ch.finalized_everywhere(), ch.commits, queued)
    }

    #[test]
    fn peers_on_worker_threads_play_as_on_one_thread() {
        for mode in [
            AgreementMode::ExplicitConfirmations,
            AgreementMode::VirtualVotingOnly,
        ] {
            let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
            let single = play(1, mode, one.path());
            let spread = play(2, mode, two.path());
            assert_eq!(single, spread, "{mode:?}");
            assert!(single.1 > 0, "the peers stored nothing");
        }
    }
}
