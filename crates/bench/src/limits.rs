//! What the hardware allows: the primitives a transition is made of, measured in the same run
//! as the figures they bound, and the limits computed from them.
//!
//! A benchmark row prints its figure beside the limit computed here, so the distance to the
//! hardware is read off the run rather than argued. The primitives: the EIP-712 digest of a
//! transaction (keccak), an ECDSA signature, a signer recovery, a CBOR frame encoded and decoded,
//! one EVM transition of the benchmark's machine (RoundRobinCounter, whose state grows with N),
//! one `fdatasync` of a 1 KiB write into a preallocated file in the run's own directory (the
//! floor of making a signature durable before it leaves), and one TCP round trip on loopback.
//!
//! The limits assume the floor design: only a peer's own signature must be durable before it
//! leaves (one `fdatasync` per signature on the critical path, none where nothing is signed), all
//! other storage off the critical path, and the CPU work of the protocol and nothing else. Where
//! the peers share one thread (the in-process core benchmark) their work adds up; where they are
//! nodes on a `cores`-thread runtime it is spread over the cores; `fdatasync`s of different peers
//! go to one disk one after another. Each formula is in its function's documentation and in
//! `docs/performance.md`.

#![allow(clippy::disallowed_methods)] // a benchmark reads the wall clock

use std::collections::BTreeMap;
use std::hint::black_box;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::path::Path;
use std::time::{Duration, Instant};

use alloy_sol_types::SolCall as _;
use anyhow::{Context as _, Result, anyhow};
use entente_contracts::{RoundRobinCounter, artifacts};
use entente_evm_runtime::{MachineCode, MachineInstance};
use entente_types::{
    Address, AgreementMode, B256, Bytes, Domain, Envelope, LocalSigner, Message, SignedTransaction,
    Signer as _, Transaction, U256, keccak256, recover_signer, state_hash,
};

/// The primitives: the CPU ones the fastest of many timed batches (the machine's best, so that a
/// limit is a bound even on a noisy machine), the I/O ones the median of many single operations.
#[derive(Debug, Clone)]
pub struct Primitives {
    /// EIP-712 digest of a transaction.
    pub digest: Duration,
    /// ECDSA signature of a digest.
    pub sign: Duration,
    /// Recovery of a signer from a digest and a signature.
    pub recover: Duration,
    /// A transaction frame (CBOR) encoded and decoded.
    pub codec: Duration,
    /// One EVM transition of RoundRobinCounter (`add`), by participant count.
    pub evm: BTreeMap<usize, Duration>,
    /// One 1 KiB write into a preallocated file and its `fdatasync`, in the run's directory.
    pub fdatasync: Duration,
    /// One TCP round trip of a 1 KiB message on loopback.
    pub rtt: Duration,
    /// The cores the machine has.
    pub cores: usize,
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

/// Time of one call of `f`: the fastest of `runs` timed batches of `per_batch` calls each.
fn time(runs: usize, per_batch: u32, mut f: impl FnMut()) -> Duration {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..per_batch {
                f();
            }
            t.elapsed() / per_batch
        })
        .min()
        .unwrap_or_default()
}

fn participants(n: usize) -> Result<(Vec<LocalSigner>, Vec<Address>)> {
    let keys: Vec<LocalSigner> = (0..n)
        .map(|i| LocalSigner::from_bytes(&keccak256(format!("limits key {i}"))))
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow!("key: {e}"))?;
    let addresses = keys.iter().map(|k| k.address()).collect();
    Ok((keys, addresses))
}

/// A transaction of the benchmark's machine for `n` participants, and the machine at its
/// genesis state.
fn transaction(code: &MachineCode, n: usize) -> Result<(MachineInstance, Transaction)> {
    let (_, addresses) = participants(n)?;
    let mut machine = MachineInstance::deploy(code, 5_000_000)?;
    let genesis: Bytes = machine.view_decode(&RoundRobinCounter::initialStateCall {
        participants: addresses.clone(),
        deposits: vec![U256::from(1u64); n],
        target: u64::MAX,
    })?;
    machine.set_state(&genesis)?;
    let tx = Transaction {
        channelId: B256::repeat_byte(1),
        forkCnt: 0,
        height: 1,
        participant: addresses[0],
        timestamp: 1_700_000_001,
        prevStateHash: state_hash(&genesis),
        stateHash: B256::repeat_byte(2),
        data: RoundRobinCounter::addCall { step: 1 }.abi_encode().into(),
    };
    Ok((machine, tx))
}

/// One 1 KiB write at increasing offsets of a preallocated 4 MiB file in `dir`, each followed by
/// `fdatasync` (the file's size never changes, so only the data goes to the disk).
fn fdatasync(dir: &Path) -> Result<Duration> {
    let path = dir.join("limits-fdatasync.log");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("{}", path.display()))?;
    let size = 4 * 1024 * 1024;
    file.write_all(&vec![0u8; size])?;
    file.sync_all()?;
    let block = [0x5au8; 1024];
    let mut samples = Vec::with_capacity(300);
    for i in 0..300u64 {
        file.seek(SeekFrom::Start((i * 1024) % size as u64))?;
        let t = Instant::now();
        file.write_all(&block)?;
        file.sync_data()?;
        samples.push(t.elapsed());
    }
    drop(file);
    let _ = std::fs::remove_file(&path);
    Ok(median(samples))
}

/// A TCP round trip of 1 KiB on loopback (Nagle off), echoed by a second thread.
fn rtt() -> Result<Duration> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut buf = [0u8; 1024];
        loop {
            match s.read_exact(&mut buf) {
                Ok(()) => s.write_all(&buf)?,
                Err(_) => return Ok(()),
            }
        }
    });
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    let mut buf = [0x33u8; 1024];
    let mut samples = Vec::with_capacity(2_000);
    for _ in 0..2_000 {
        let t = Instant::now();
        s.write_all(&buf)?;
        s.read_exact(&mut buf)?;
        samples.push(t.elapsed());
    }
    drop(s);
    echo.join().map_err(|_| anyhow!("the echo thread panicked"))??;
    Ok(median(samples))
}

impl Primitives {
    /// Measures every primitive: the EVM transition for each participant count in `ns`, the
    /// `fdatasync` in `dir` (the disk the benchmark's stores are on).
    pub fn measure(dir: &Path, ns: &[usize]) -> Result<Self> {
        let code = MachineCode::from_artifact_json(artifacts::ROUND_ROBIN_COUNTER)?;
        let (keys, _) = participants(2)?;
        let domain = Domain::new(31_337, Address::repeat_byte(0x11));
        let (_, tx) = transaction(&code, 2)?;
        let digest = domain.digest(&tx);
        let signature = keys[0].sign_digest(&digest);
        let frame = Envelope::new(Message::Transaction(SignedTransaction {
            transaction: tx.clone(),
            signature,
        }));
        let mut evm = BTreeMap::new();
        for &n in ns {
            let (mut machine, tx) = transaction(&code, n)?;
            let mut failed = None;
            let t = time(21, 50, || {
                if let Err(e) = machine.execute(black_box(&tx), None) {
                    failed = Some(e);
                }
            });
            if let Some(e) = failed {
                return Err(anyhow!("the EVM transition for N = {n}: {e}"));
            }
            evm.insert(n, t);
        }
        let mut codec_failed = false;
        let codec = time(21, 200, || {
            let ok = frame
                .encode()
                .ok()
                .and_then(|bytes| Envelope::decode(black_box(&bytes)).ok());
            codec_failed |= ok.is_none();
        });
        if codec_failed {
            return Err(anyhow!("a frame did not encode and decode"));
        }
        let mut recovered = true;
        let recover = time(21, 200, || {
            recovered &= recover_signer(black_box(&digest), black_box(&signature)).is_ok();
        });
        if !recovered {
            return Err(anyhow!("a signature did not recover"));
        }
        Ok(Self {
            digest: time(21, 500, || {
                black_box(domain.digest(black_box(&tx)));
            }),
            sign: time(21, 200, || {
                black_box(keys[0].sign_digest(black_box(&digest)));
            }),
            recover,
            codec,
            evm,
            fdatasync: fdatasync(dir)?,
            rtt: rtt()?,
            cores: std::thread::available_parallelism().map_or(1, usize::from),
        })
    }

    /// One EVM transition for `n` participants (the nearest measured count above, else the
    /// largest).
    pub fn evm(&self, n: usize) -> Duration {
        self.evm
            .range(n..)
            .next()
            .or_else(|| self.evm.iter().next_back())
            .map(|(_, d)| *d)
            .unwrap_or_default()
    }

    /// CPU one peer must spend on one transition of a channel of `n`:
    /// - explicit confirmations: the EVM transition, its digest, one signature (the writer's or
    ///   the confirmation), `n - 1` recoveries (every other participant's signature) and `n - 1`
    ///   frames decoded;
    /// - virtual voting: the EVM transition and its digest; the writer signs (one peer in `n`),
    ///   the others recover its signature and decode its frame (`n - 1` peers in `n`).
    pub fn cpu_per_peer(&self, n: usize, mode: AgreementMode) -> Duration {
        let others = u32::try_from(n.saturating_sub(1)).unwrap_or(u32::MAX);
        let n32 = u32::try_from(n.max(1)).unwrap_or(u32::MAX);
        let base = self.evm(n) + self.digest;
        match mode {
            AgreementMode::ExplicitConfirmations => base + self.sign + (self.recover + self.codec) * others,
            AgreementMode::VirtualVotingOnly => {
                base + (self.sign + (self.recover + self.codec) * others) / n32
            }
        }
    }

    /// CPU of one transition over all `n` peers.
    pub fn cpu_per_transition(&self, n: usize, mode: AgreementMode) -> Duration {
        self.cpu_per_peer(n, mode) * u32::try_from(n).unwrap_or(u32::MAX)
    }

    /// Finality latency of the core benchmark, the peers of a round spread over `threads`
    /// threads (at most the cores; 1: everything on the critical path adds up).
    /// - explicit: the writer's transition, signature and `fdatasync`; then the `n - 1`
    ///   confirmers, `⌈(n - 1) / threads⌉` after one another on each thread, each decoding,
    ///   recovering, running the transition, signing and syncing; then the confirmations
    ///   recovered and decoded where they are missing ((n - 1)² of each, over the threads);
    /// - virtual voting: a height is final once all `n` participants wrote after it: `n`
    ///   transitions, each its whole CPU over the `n` peers (over the threads) and the writer's
    ///   one `fdatasync`.
    pub fn core_latency(&self, n: usize, mode: AgreementMode, threads: usize) -> Duration {
        let n32 = u32::try_from(n).unwrap_or(u32::MAX);
        let others = n32.saturating_sub(1);
        let t = u32::try_from(threads.min(self.cores).max(1)).unwrap_or(1);
        match mode {
            AgreementMode::ExplicitConfirmations => {
                let writer = self.evm(n) + self.digest + self.sign + self.fdatasync;
                let confirmer =
                    self.codec + self.digest + self.recover + self.evm(n) + self.sign + self.fdatasync;
                writer + confirmer * others.div_ceil(t) + (self.recover + self.codec) * (others * others) / t
            }
            AgreementMode::VirtualVotingOnly => (self.cpu_per_transition(n, mode) / t + self.fdatasync) * n32,
        }
    }

    /// Finalized transitions per second of one channel with its writers playing flat out, its
    /// peers on `threads` threads (at most the cores): the threads over the CPU of a transition
    /// over all peers (the `fdatasync`s are grouped, several signatures per sync, when the
    /// writers do not wait).
    pub fn core_throughput(&self, n: usize, mode: AgreementMode, threads: usize) -> f64 {
        self.concurrent_throughput(n, mode, threads)
    }

    /// Finalized transitions per second of many channels of `n` at once on `threads` threads
    /// (at most the machine's cores): the cores divided by the CPU of one transition over its `n`
    /// peers (every peer's share of every channel on the same machine).
    pub fn concurrent_throughput(&self, n: usize, mode: AgreementMode, threads: usize) -> f64 {
        let cores = threads.min(self.cores).max(1) as f64;
        cores / self.cpu_per_transition(n, mode).as_secs_f64().max(1e-9)
    }

    /// Finality latency of `n` nodes in one process over loopback (explicit confirmations), the
    /// nodes' work spread over the machine's cores and their `fdatasync`s going to one disk one
    /// after another: the writer's transition, signature and sync; half a round trip; the
    /// confirmers' work (`n - 1` of them over the cores, their syncs in a row); half a round
    /// trip; the confirmations recovered where they are missing ((n - 1)², over the cores, at
    /// least the writer's `n - 1`).
    pub fn p2p_latency(&self, n: usize) -> Duration {
        let others = u32::try_from(n.saturating_sub(1)).unwrap_or(u32::MAX);
        let cores = u32::try_from(self.cores.max(1)).unwrap_or(1);
        let writer = self.evm(n) + self.digest + self.sign + self.fdatasync;
        let confirm_cpu = self.codec + self.digest + self.recover + self.evm(n) + self.sign;
        let confirmers = (confirm_cpu * others.div_ceil(cores)).max(Duration::ZERO) + self.fdatasync * others;
        let finish = ((self.recover + self.codec) * (others * others) / cores)
            .max((self.recover + self.codec) * others);
        writer + self.rtt / 2 + confirmers + self.rtt / 2 + finish
    }

    /// The primitives as a markdown table.
    pub fn markdown(&self) -> String {
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let mut out = String::from("| primitive | µs |\n|---|---:|\n");
        for (what, d) in [
            ("EIP-712 digest (keccak)", self.digest),
            ("ECDSA signature", self.sign),
            ("signer recovery", self.recover),
            ("frame encode + decode (CBOR)", self.codec),
            (
                "fdatasync of 1 KiB (preallocated file, the run's disk)",
                self.fdatasync,
            ),
            ("TCP round trip on loopback (1 KiB)", self.rtt),
        ] {
            out.push_str(&format!("| {what} | {:.1} |\n", us(d)));
        }
        for (n, d) in &self.evm {
            out.push_str(&format!("| EVM transition, N = {n} | {:.1} |\n", us(*d)));
        }
        out.push_str(&format!("| cores | {} |\n", self.cores));
        out
    }

    /// The primitives as JSON (microseconds).
    pub fn json(&self) -> serde_json::Value {
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        serde_json::json!({
            "digest_us": us(self.digest),
            "sign_us": us(self.sign),
            "recover_us": us(self.recover),
            "codec_us": us(self.codec),
            "fdatasync_us": us(self.fdatasync),
            "loopback_rtt_us": us(self.rtt),
            "evm_us": self.evm.iter().map(|(n, d)| serde_json::json!({"n": n, "us": us(*d)})).collect::<Vec<_>>(),
            "cores": self.cores,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn fixed() -> Primitives {
        Primitives {
            digest: Duration::from_micros(2),
            sign: Duration::from_micros(30),
            recover: Duration::from_micros(25),
            codec: Duration::from_micros(3),
            evm: [(2, Duration::from_micros(20)), (16, Duration::from_micros(40))].into(),
            fdatasync: Duration::from_micros(200),
            rtt: Duration::from_micros(40),
            cores: 2,
        }
    }

    #[test]
    fn the_formulas_add_what_their_documentation_says() {
        let p = fixed();
        // explicit, N = 2: 20 + 2 + 30 + (25 + 3)
        assert_eq!(
            p.cpu_per_peer(2, AgreementMode::ExplicitConfirmations),
            Duration::from_micros(80)
        );
        // virtual voting, N = 16: 40 + 2 + (30 + 15 * 28) / 16
        assert_eq!(
            p.cpu_per_peer(16, AgreementMode::VirtualVotingOnly),
            Duration::from_micros(42) + Duration::from_micros(450) / 16
        );
        // the EVM of a count between two measured ones is the larger one's
        assert_eq!(p.evm(8), Duration::from_micros(40));
        assert_eq!(p.evm(64), Duration::from_micros(40));
        // N = 2 over loopback: writer 252, rtt 40, confirmer 3 + 2 + 25 + 20 + 30 + 200, finish 28
        assert_eq!(p.p2p_latency(2), Duration::from_micros(252 + 40 + 280 + 28));
        // core, explicit, N = 2: writer 252 + confirmer 280 + 28
        assert_eq!(
            p.core_latency(2, AgreementMode::ExplicitConfirmations, 1),
            Duration::from_micros(560)
        );
        let tps = p.core_throughput(2, AgreementMode::ExplicitConfirmations, 1);
        assert!((tps - 1e6 / 160.0).abs() < 1e-6, "{tps}");
        // core, explicit, N = 16 on two threads: writer 40 + 2 + 30 + 200 = 272, then 8
        // confirmers on each thread (3 + 2 + 25 + 40 + 30 + 200 = 300 each), then 15² = 225
        // recoveries and decodes (28 each) over two threads
        assert_eq!(
            p.core_latency(16, AgreementMode::ExplicitConfirmations, 2),
            Duration::from_micros(272 + 8 * 300 + 225 * 28 / 2)
        );
        // virtual voting, N = 16 on two threads: 16 transitions of (16 peers' CPU / 2 + 200)
        assert_eq!(
            p.core_latency(16, AgreementMode::VirtualVotingOnly, 2),
            (p.cpu_per_transition(16, AgreementMode::VirtualVotingOnly) / 2 + Duration::from_micros(200))
                * 16
        );
        let two_threads = p.core_throughput(2, AgreementMode::ExplicitConfirmations, 2);
        assert!((two_threads - 2e6 / 160.0).abs() < 1e-6, "{two_threads}");
        // two threads on two cores: twice one thread; more threads than cores: no more
        let two = p.concurrent_throughput(2, AgreementMode::ExplicitConfirmations, 2);
        assert!((two - 2e6 / 160.0).abs() < 1e-6, "{two}");
        assert_eq!(
            p.concurrent_throughput(2, AgreementMode::ExplicitConfirmations, 8),
            two
        );
    }

    #[test]
    fn the_primitives_are_measured() {
        let dir = tempfile::tempdir().unwrap();
        let p = Primitives::measure(dir.path(), &[2, 4]).unwrap();
        for d in [
            p.digest,
            p.sign,
            p.recover,
            p.codec,
            p.fdatasync,
            p.rtt,
            p.evm(2),
            p.evm(4),
        ] {
            assert!(d > Duration::ZERO, "{p:?}");
        }
        // a recovery costs more than a keccak digest on any machine
        assert!(p.recover > p.digest, "{p:?}");
        assert!(p.markdown().contains("EVM transition, N = 4"));
    }
}
