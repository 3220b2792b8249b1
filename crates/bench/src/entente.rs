//! Entente's on-chain operations for `n` participants, through the conformance fixture
//! ([`World`]): the flows of `contracts/test/Gas.t.sol` (same machine, spec, keys and kinds of
//! proof), each transaction mined on anvil and measured by its receipt's `gasUsed`.

use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use anyhow::{Result, anyhow, bail};
use entente_conformance::harness::{AGREE, FALLBACK, P2P};
use entente_conformance::{Chain, Sent, World};
use entente_contracts::IStateChannelManager::{self, ChannelSpec, DisputeRecord, DoubleSignProof, Exit};
use entente_contracts::{DisputeKind, ManagerEvent, RoundRobinCounter};
use entente_types::Transaction;

use crate::Measured;

/// Operation names, shared with the report.
pub mod op {
    /// `open`, paying the opener's deposit.
    pub const OPEN: &str = "open (opener deposits)";
    /// A deposit that is not the last one.
    pub const DEPOSIT: &str = "deposit (not last)";
    /// The last deposit, which activates the channel.
    pub const DEPOSIT_LAST: &str = "deposit (last, activates)";
    /// Open plus every other participant's deposit.
    pub const FUND_TOTAL: &str = "fund a channel (open + all deposits)";
    /// `postCalldata`.
    pub const POST: &str = "post calldata";
    /// `disputeTimeout` on the genesis state.
    pub const TIMEOUT_GENESIS: &str = "timeout dispute (genesis proof)";
    /// `disputeTimeout` on a posted transaction.
    pub const TIMEOUT_POSTED: &str = "timeout dispute (posted proof)";
    /// `disputeTimeout` on an N-signed transaction.
    pub const TIMEOUT_SIGNED: &str = "timeout dispute (N-signed proof)";
    /// `challenge` with a later N-signed state.
    pub const CHALLENGE: &str = "challenge (later N-signed state)";
    /// `finalizeDispute` (removal hook, new fork or close).
    pub const FINALIZE: &str = "finalize dispute (slash hook + new fork)";
    /// `proveDoubleSign`.
    pub const FRAUD_DOUBLE: &str = "fraud: double signature";
    /// `proveFraud(InvalidTransition)`: re-execution.
    pub const FRAUD_INVALID: &str = "fraud: invalid transition (re-execution)";
    /// `proveFraud(TimestampOutOfOrder)`.
    pub const FRAUD_TS_ORDER: &str = "fraud: timestamp out of order";
    /// `proveFraud(WrongParent)`.
    pub const FRAUD_PARENT: &str = "fraud: wrong parent";
    /// `close` on an N-signed final state.
    pub const CLOSE: &str = "cooperative close";
    /// `withdraw` of the first exit.
    pub const WITHDRAW_FIRST: &str = "withdraw (first claim)";
    /// `withdraw` of the second exit.
    pub const WITHDRAW_SECOND: &str = "withdraw (second claim)";
    /// Close plus every participant's withdrawal.
    pub const CLOSE_AND_WITHDRAW_ALL: &str = "close + all withdrawals";
    /// `withdrawPending` of a removed participant.
    pub const WITHDRAW_PENDING: &str = "withdraw pending (removed participant)";
}

/// Every operation measured for `n` participants, in report order (no "not last" deposit when
/// `n == 2`).
pub fn operations(n: usize) -> Vec<&'static str> {
    let mut ops = vec![op::OPEN];
    if n > 2 {
        ops.push(op::DEPOSIT);
    }
    ops.extend([
        op::DEPOSIT_LAST,
        op::FUND_TOTAL,
        op::POST,
        op::TIMEOUT_GENESIS,
        op::TIMEOUT_POSTED,
        op::TIMEOUT_SIGNED,
        op::CHALLENGE,
        op::FINALIZE,
        op::FRAUD_DOUBLE,
        op::FRAUD_INVALID,
        op::FRAUD_TS_ORDER,
        op::FRAUD_PARENT,
        op::CLOSE,
        op::WITHDRAW_FIRST,
        op::WITHDRAW_SECOND,
        op::CLOSE_AND_WITHDRAW_ALL,
        op::WITHDRAW_PENDING,
    ]);
    ops
}

/// Records mined transactions under their operation names.
struct Recorder {
    n: usize,
    rows: Vec<Measured>,
}

impl Recorder {
    fn record(&mut self, operation: &'static str, sent: &Sent) -> Result<()> {
        if !sent.success {
            bail!("Entente N={}: {operation} reverted: {:?}", self.n, sent.error());
        }
        self.push(operation, sent.gas_used);
        Ok(())
    }

    fn push(&mut self, operation: &'static str, gas: u64) {
        self.rows.push(Measured {
            framework: crate::Framework::Entente,
            n: self.n,
            operation,
            gas,
        });
    }
}

fn ok(what: &str, sent: &Sent) -> Result<()> {
    if sent.success {
        Ok(())
    } else {
        Err(anyhow!("{what} reverted: {:?}", sent.error()))
    }
}

/// The dispute record a `DisputeStarted`/`DisputeChallenged` log carries.
fn record_of(sent: &Sent) -> Result<DisputeRecord> {
    sent.events()
        .into_iter()
        .find_map(|e| match e {
            ManagerEvent::DisputeStarted(d) => Some(d.dispute),
            ManagerEvent::DisputeChallenged(d) => Some(d.dispute),
            _ => None,
        })
        .ok_or_else(|| anyhow!("no dispute record in the logs"))
}

fn closed_exits(sent: &Sent) -> Result<Vec<Exit>> {
    sent.events()
        .into_iter()
        .find_map(|e| match e {
            ManagerEvent::ChannelClosed(c) => Some(c.exits),
            _ => None,
        })
        .ok_or_else(|| anyhow!("no ChannelClosed log"))
}

/// A RoundRobinCounter spec for the first `n` participants with a salt of its own, so that
/// every flow opens a fresh channel (fresh storage, as in `Gas.t.sol`).
///
/// Each flow also gets a freshly deployed RoundRobinCounter: a machine keeps one global state
/// (written by `setState` when a dispute is finalized or a transition re-executed), so on a shared
/// machine those operations would cost less or more depending on what ran before. A fresh machine
/// is the first-use (dearest) case, as in forge's isolated tests, and makes every row independent
/// of the order of the flows.
fn spec<C: Chain>(w: &mut World<C>, n: usize, target: u64, flow: &str) -> (ChannelSpec, Bytes) {
    w.rr = w
        .chain
        .deploy(Address::repeat_byte(0xd0), RoundRobinCounter::BYTECODE.clone());
    let (mut spec, genesis) = w.rr_spec(n, target);
    spec.salt = keccak256(format!("entente-bench {flow} n{n}"));
    (spec, genesis)
}

fn open<C: Chain>(w: &mut World<C>, n: usize, target: u64, flow: &str) -> Result<(B256, Bytes, u64)> {
    let (spec, genesis) = spec(w, n, target, flow);
    let (id, receipts) = w.open_funded(&spec, &genesis);
    let activated = receipts
        .last()
        .map(|r| r.timestamp)
        .ok_or_else(|| anyhow!("no receipts"))?;
    Ok((id, genesis, activated))
}

fn zero() -> U256 {
    U256::ZERO
}

/// Measures every Entente operation for `n` participants (2..=8) on `w`.
pub fn measure<C: Chain>(w: &mut World<C>, n: usize) -> Result<Vec<Measured>> {
    if !(2..=w.keys.len()).contains(&n) {
        bail!("Entente flows need 2..={} participants, not {n}", w.keys.len());
    }
    let mut r = Recorder { n, rows: Vec::new() };
    open_and_deposits(w, &mut r, n)?;
    disputes(w, &mut r, n)?;
    timeouts(w, &mut r, n)?;
    frauds(w, &mut r, n)?;
    close_and_withdraw(w, &mut r, n)?;
    withdraw_pending(w, &mut r, n)?;
    // Report order.
    let order = operations(n);
    r.rows
        .sort_by_key(|m| order.iter().position(|o| *o == m.operation).unwrap_or(usize::MAX));
    Ok(r.rows)
}

fn open_and_deposits<C: Chain>(w: &mut World<C>, r: &mut Recorder, n: usize) -> Result<()> {
    let (spec, genesis) = spec(w, n, 100, "open");
    let (_, receipts) = w.open_funded(&spec, &genesis);
    let mut total = 0;
    for (i, sent) in receipts.iter().enumerate() {
        let name = match i {
            0 => op::OPEN,
            i if i == n - 1 => op::DEPOSIT_LAST,
            _ => op::DEPOSIT,
        };
        // One "not last" deposit is reported (they cost the same to within calldata bytes).
        if name != op::DEPOSIT || i == 1 {
            r.record(name, sent)?;
        }
        total += sent.gas_used;
    }
    r.push(op::FUND_TOTAL, total);
    Ok(())
}

/// Calldata post, timeout on the posted proof, challenge with a later N-signed state, finalize.
fn disputes<C: Chain>(w: &mut World<C>, r: &mut Recorder, n: usize) -> Result<()> {
    let (id, genesis, _) = open(w, n, 100, "dispute")?;
    let t0 = w.now();
    let (t1, s1) = w.rr_add(id, 0, 1, 0, t0 + 1, &genesis, 1);
    let (t2, s2) = w.rr_add(id, 0, 2, 1, t0 + 2, &s1, 1);
    let post = IStateChannelManager::postCalldataCall {
        transaction: t1.clone().into(),
        signature: w.sign(0, &t1),
        parent: w.genesis_proof(&genesis),
    };
    let sent = w.send(0, &post, zero());
    r.record(op::POST, &sent)?;

    w.warp_past(t0 + 1 + P2P + AGREE + FALLBACK + 1);
    let dispute = IStateChannelManager::disputeTimeoutCall {
        channelId: id,
        latest: w.posted_proof(&t1, &s1),
    };
    let sent = w.send(2 % n, &dispute, zero());
    r.record(op::TIMEOUT_POSTED, &sent)?;
    let d = record_of(&sent)?;

    let signers: Vec<usize> = (0..n).collect();
    let challenge = IStateChannelManager::challengeCall {
        channelId: id,
        d,
        proof: w.signed_proof(&t2, &s2, &signers),
    };
    let sent = w.send(1, &challenge, zero());
    r.record(op::CHALLENGE, &sent)?;
    let c = record_of(&sent)?;

    w.warp_past(c.deadline + 1);
    let finalize = IStateChannelManager::finalizeDisputeCall {
        channelId: id,
        d: c,
        state: s2,
    };
    let sent = w.send(1, &finalize, zero());
    r.record(op::FINALIZE, &sent)
}

/// Timeout disputes on the genesis state and on an N-signed transaction.
fn timeouts<C: Chain>(w: &mut World<C>, r: &mut Recorder, n: usize) -> Result<()> {
    let (id, genesis, activated) = open(w, n, 100, "timeout-genesis")?;
    w.warp_past(activated + P2P + AGREE + FALLBACK + 1);
    let call = IStateChannelManager::disputeTimeoutCall {
        channelId: id,
        latest: w.genesis_proof(&genesis),
    };
    let sent = w.send(1, &call, zero());
    r.record(op::TIMEOUT_GENESIS, &sent)?;

    let (id, genesis, _) = open(w, n, 100, "timeout-signed")?;
    let t0 = w.now();
    let (t1, s1) = w.rr_add(id, 0, 1, 0, t0 + 1, &genesis, 1);
    let signers: Vec<usize> = (0..n).collect();
    let proof = w.signed_proof(&t1, &s1, &signers);
    w.warp_past(t0 + 1 + P2P + AGREE + FALLBACK + 1);
    let call = IStateChannelManager::disputeTimeoutCall {
        channelId: id,
        latest: proof,
    };
    let sent = w.send(0, &call, zero());
    r.record(op::TIMEOUT_SIGNED, &sent)
}

/// The fraud proofs, each against participant 1's transaction at height 2 on top of an
/// N-signed height 1.
fn frauds<C: Chain>(w: &mut World<C>, r: &mut Recorder, n: usize) -> Result<()> {
    let signers: Vec<usize> = (0..n).collect();
    let setup =
        |w: &mut World<C>, flow: &str| -> Result<(B256, u64, Bytes, IStateChannelManager::StateProof)> {
            let (id, genesis, _) = open(w, n, 100, flow)?;
            let t0 = w.now();
            let (t1, s1) = w.rr_add(id, 0, 1, 0, t0 + 1, &genesis, 1);
            let p1 = w.signed_proof(&t1, &s1, &signers);
            w.warp_past(t0 + 5);
            Ok((id, t0, s1, p1))
        };

    let (id, t0, s1, p1) = setup(w, "double")?;
    let (a, _) = w.rr_add(id, 0, 2, 1, t0 + 2, &s1, 1);
    let (b, _) = w.rr_add(id, 0, 2, 1, t0 + 2, &s1, 2);
    let proof = DoubleSignProof {
        a: a.clone().into(),
        sigA: w.sign(1, &a),
        b: b.clone().into(),
        sigB: w.sign(1, &b),
    };
    let call = IStateChannelManager::proveDoubleSignCall {
        channelId: id,
        latest: p1,
        proof,
    };
    let sent = w.send(0, &call, zero());
    r.record(op::FRAUD_DOUBLE, &sent)?;

    let kinds = [
        (DisputeKind::InvalidTransition, op::FRAUD_INVALID),
        (DisputeKind::TimestampOutOfOrder, op::FRAUD_TS_ORDER),
        (DisputeKind::WrongParent, op::FRAUD_PARENT),
    ];
    for (kind, name) in kinds {
        let (id, t0, s1, p1) = setup(w, name)?;
        let t: Transaction = match kind {
            DisputeKind::InvalidTransition => {
                let (mut t, _) = w.rr_add(id, 0, 2, 1, t0 + 2, &s1, 1);
                t.stateHash = keccak256("wrong");
                t
            }
            DisputeKind::TimestampOutOfOrder => w.rr_add(id, 0, 2, 1, t0, &s1, 1).0,
            _ => {
                let (mut t, _) = w.rr_add(id, 0, 2, 1, t0 + 2, &s1, 1);
                t.prevStateHash = keccak256("elsewhere");
                t
            }
        };
        let call = IStateChannelManager::proveFraudCall {
            channelId: id,
            kind: kind as u8,
            prev: p1,
            t: t.clone().into(),
            sig: w.sign(1, &t),
        };
        let sent = w.send(0, &call, zero());
        r.record(name, &sent)?;
    }
    Ok(())
}

/// A cooperative close on an N-signed final state, then every participant's withdrawal.
fn close_and_withdraw<C: Chain>(w: &mut World<C>, r: &mut Recorder, n: usize) -> Result<()> {
    let (id, genesis, _) = open(w, n, 10, "close")?;
    let t0 = w.now();
    let (t, s) = w.rr_add(id, 0, 1, 0, t0 + 1, &genesis, 10);
    let signers: Vec<usize> = (0..n).collect();
    let call = IStateChannelManager::closeCall {
        channelId: id,
        proof: w.signed_proof(&t, &s, &signers),
    };
    let sent = w.send(0, &call, zero());
    r.record(op::CLOSE, &sent)?;
    let mut total = sent.gas_used;
    let exits = closed_exits(&sent)?;
    for i in 0..exits.len() {
        let call = IStateChannelManager::withdrawCall {
            channelId: id,
            exits: exits.clone(),
            index: U256::from(i),
        };
        let sent = w.send(i, &call, zero());
        match i {
            0 => r.record(op::WITHDRAW_FIRST, &sent)?,
            1 => r.record(op::WITHDRAW_SECOND, &sent)?,
            _ => ok("withdraw", &sent)?,
        }
        total += sent.gas_used;
    }
    r.push(op::CLOSE_AND_WITHDRAW_ALL, total);
    Ok(())
}

/// A participant removed by a timeout pulls its credited exit (a channel of at least three, so
/// that the removal starts a new fork instead of closing).
fn withdraw_pending<C: Chain>(w: &mut World<C>, r: &mut Recorder, n: usize) -> Result<()> {
    let (id, genesis, activated) = open(w, n.max(3), 100, "pending")?;
    w.warp_past(activated + P2P + AGREE + FALLBACK + 1);
    let call = IStateChannelManager::disputeTimeoutCall {
        channelId: id,
        latest: w.genesis_proof(&genesis),
    };
    let sent = w.send(1, &call, zero());
    ok("timeout dispute", &sent)?;
    let d = record_of(&sent)?;
    w.warp_past(d.deadline + 1);
    let call = IStateChannelManager::finalizeDisputeCall {
        channelId: id,
        d,
        state: genesis,
    };
    let sent = w.send(1, &call, zero());
    ok("finalize", &sent)?;
    let call = IStateChannelManager::withdrawPendingCall { token: Address::ZERO };
    let sent = w.send(0, &call, zero());
    r.record(op::WITHDRAW_PENDING, &sent)
}
