//! Byzantine peers that attack through the chain (docs/security.md, section 2 and the attacks
//! of section 6).
//!
//! Off-chain these peers play their moves by the rules, so the game goes on; on chain they act
//! for themselves with everything a participant has: its key, every transaction and signature
//! it has seen, every state it has held (of this fork and older ones), and the freedom to call
//! any function of the StateChannelManager and of the channel's machine at any time, with any
//! timestamp. Every action is a real transaction on the in-process chain; the court must refuse
//! it or turn it against its sender. The simulation checks on every chain event that no honest
//! peer is removed or slashed, and the fault matrix checks that every honest peer is paid at
//! least its deposit.

use std::collections::BTreeSet;

use alloy_primitives::U256;
use alloy_sol_types::{SolCall, SolValue};
use entente_contracts::RoundRobinCounter;
use entente_dispute::{ChainAction, DisputeHandler, FraudKind, ProofKind, StateProof};
use entente_types::{Address, B256, Bytes, LocalSigner, Signature, Transaction, keccak256};
use rand::Rng;
use rand::rngs::StdRng;

use crate::StateManager;
use crate::byzantine::{Forger, Strategy};

/// Something an attacker sends to the chain.
#[derive(Debug, Clone)]
pub(crate) enum Attack {
    /// A call of the StateChannelManager.
    Manager(Box<ChainAction>),
    /// A raw call of the channel's machine clone (`clone: true`) or of the shared machine.
    Machine { clone: bool, data: Bytes },
}

fn manager(action: ChainAction) -> Attack {
    Attack::Manager(Box::new(action))
}

/// What an attacking peer remembers between chain ticks.
#[derive(Debug, Default)]
pub(crate) struct AttackMemory {
    /// (fork, height, attack) already carried out, for attacks made once per height.
    done: BTreeSet<(u64, u64, u8)>,
    /// Proofs of states it held (any fork), to replay later.
    proofs: Vec<StateProof>,
    /// Signed transactions of other participants it has seen.
    others: Vec<(Transaction, Signature)>,
}

/// Most remembered proofs and transactions (the oldest are forgotten first).
const MEMORY: usize = 32;

/// What an attacker sees at a chain tick.
pub(crate) struct View<'a> {
    pub(crate) core: &'a StateManager<LocalSigner>,
    pub(crate) handler: &'a DisputeHandler,
    pub(crate) forger: &'a Forger,
    /// The attacker's own address.
    pub(crate) me: Address,
    /// Chain time (seconds).
    pub(crate) chain_now: u64,
    /// Addresses of the honest peers.
    pub(crate) honest: &'a [Address],
}

impl AttackMemory {
    /// Remembers what the peer holds now: its proofs and the others' signed transactions.
    pub(crate) fn observe(&mut self, view: &View<'_>, rng: &mut StdRng) {
        let core = view.core;
        let genesis = core.fork().genesis_height;
        let height = rng.random_range(genesis..=core.tip());
        if let Some(proof) = view.handler.proof_at(core, height)
            && !self.proofs.contains(&proof)
        {
            push_bounded(&mut self.proofs, proof);
        }
        for h in core.tip().saturating_sub(2).max(genesis + 1)..=core.tip() {
            let Some(entry) = core.agreement().entry(h) else {
                continue;
            };
            let issuer = entry.transaction.participant;
            if issuer == view.me {
                continue;
            }
            if let Some(sig) = entry.signatures.get(&issuer) {
                let item = (entry.transaction.clone(), *sig);
                if !self.others.contains(&item) {
                    push_bounded(&mut self.others, item);
                }
            }
        }
    }
}

fn push_bounded<T>(v: &mut Vec<T>, item: T) {
    if v.len() >= MEMORY {
        v.remove(0);
    }
    v.push(item);
}

/// The attacks `strategy` makes at this tick.
pub(crate) fn plan(
    strategy: Strategy,
    memory: &mut AttackMemory,
    view: &View<'_>,
    rng: &mut StdRng,
) -> Vec<Attack> {
    memory.observe(view, rng);
    let core = view.core;
    if view.handler.is_closed() || !core.fork().participants.contains(&view.me) {
        return Vec::new();
    }
    match strategy {
        Strategy::UnlinkedPost => unlinked_post(memory, view),
        Strategy::BackdatedPost => backdated_post(memory, view, rng),
        Strategy::JunkAtAccused => junk_at_accused(memory, view, rng),
        Strategy::StaleProofs => {
            if rng.random_bool(0.2) {
                stale_proof(memory, view, rng).into_iter().collect()
            } else {
                Vec::new()
            }
        }
        Strategy::ChainChaos => {
            if rng.random_bool(0.35) {
                chaos(memory, view, rng)
            } else {
                Vec::new()
            }
        }
        _ => Vec::new(),
    }
}

/// True for the strategies of this module.
pub(crate) fn acts_on_chain(strategy: Strategy) -> bool {
    matches!(
        strategy,
        Strategy::UnlinkedPost
            | Strategy::BackdatedPost
            | Strategy::JunkAtAccused
            | Strategy::StaleProofs
            | Strategy::ChainChaos
    )
}

/// The head as the attacker's handler sees it, as a proof (`None` when it does not hold it).
fn head_proof(view: &View<'_>) -> Option<StateProof> {
    let (height, _) = view.handler.head(view.core);
    view.handler.proof_at(view.core, height)
}

/// A state like `state` in which the attacker holds every balance (the round-robin counter's
/// layout; any other machine's state is returned as it is).
fn rich_state(state: &Bytes, me: Address) -> Bytes {
    match RoundRobinCounter::State::abi_decode(state) {
        Ok(mut s) => {
            let total: U256 = s.balances.iter().copied().sum();
            for (p, b) in s.participants.iter().zip(s.balances.iter_mut()) {
                *b = if *p == me { total } else { U256::ZERO };
            }
            s.abi_encode().into()
        }
        Err(_) => state.clone(),
    }
}

/// Attack 1: a transaction at a far height, claiming a state that pays the attacker everything,
/// posted with a made-up parent, then used as the latest state of an exit and a timeout.
fn unlinked_post(memory: &mut AttackMemory, view: &View<'_>) -> Vec<Attack> {
    let core = view.core;
    let fork = core.fork().fork;
    let (head, _) = view.handler.head(core);
    if core.is_game_over() || !memory.done.insert((fork, head, 1)) {
        return Vec::new();
    }
    let Some(tip_state) = core.state_at(core.tip()) else {
        return Vec::new();
    };
    let rich = rich_state(tip_state, view.me);
    let transaction = Transaction {
        channelId: core.spec().channel_id,
        forkCnt: fork,
        height: head + 3,
        participant: view.me,
        timestamp: view.chain_now,
        prevStateHash: keccak256(b"a state nobody proved"),
        stateHash: keccak256(&rich),
        data: RoundRobinCounter::addCall { step: 1 }.abi_encode().into(),
    };
    let signature = view.forger.sign_transaction(core, &transaction);
    let posted = StateProof {
        kind: ProofKind::Posted,
        transaction: transaction.clone(),
        signatures: vec![signature],
        state: rich.clone(),
    };
    let mut out = vec![
        manager(ChainAction::PostCalldata {
            transaction: transaction.clone(),
            signature,
            parent: posted.clone(),
        }),
        manager(ChainAction::RequestExit {
            latest: posted.clone(),
        }),
        manager(ChainAction::DisputeTimeout {
            latest: posted.clone(),
        }),
        manager(ChainAction::Close {
            proof: StateProof {
                kind: ProofKind::Signed,
                ..posted
            },
        }),
    ];
    // The same far transaction with the real head as its parent.
    if let Some(parent) = head_proof(view) {
        out.push(manager(ChainAction::PostCalldata {
            transaction,
            signature,
            parent,
        }));
    }
    out
}

/// Attack 3: the attacker withholds its move off-chain and posts it at the very end of its own
/// window, stamped with its parent's timestamp; its colluders then try to time out the next
/// writer as if that writer's window had started at the stamp.
fn backdated_post(memory: &mut AttackMemory, view: &View<'_>, rng: &mut StdRng) -> Vec<Attack> {
    let core = view.core;
    let fork = core.fork().fork;
    let timing = core.spec().timing;
    let window = timing.p2p_time + timing.agreement_time + timing.chain_fallback_time;
    let mut out = Vec::new();
    if core.is_my_turn() && !core.is_game_over() {
        let tip = core.tip();
        let end = core.tip_timestamp() + window;
        if view.chain_now + 3 >= end
            && !memory.done.contains(&(fork, tip, 3))
            && let Some(parent) = view.handler.proof_at(core, tip)
            && let Some(st) = view.forger.backdated(
                core,
                RoundRobinCounter::addCall {
                    step: rng.random_range(1..=10u64),
                }
                .abi_encode()
                .into(),
            )
        {
            memory.done.insert((fork, tip, 3));
            out.push(manager(ChainAction::PostCalldata {
                transaction: st.transaction,
                signature: st.signature,
                parent,
            }));
        }
        return out;
    }
    let writer = core.next_writer();
    if view.honest.contains(&writer)
        && rng.random_bool(0.3)
        && let Some(latest) = head_proof(view)
    {
        out.push(manager(ChainAction::DisputeTimeout { latest }));
    }
    out
}

/// Attack 5: while an honest peer is the writer, the attacker posts its own junk at that
/// height (first, before the writer can) and raises a timeout against the writer.
fn junk_at_accused(memory: &mut AttackMemory, view: &View<'_>, rng: &mut StdRng) -> Vec<Attack> {
    let core = view.core;
    let fork = core.fork().fork;
    let writer = core.next_writer();
    if core.is_game_over() || !view.honest.contains(&writer) {
        return Vec::new();
    }
    let (head, head_hash) = view.handler.head(core);
    let Some(parent) = head_proof(view) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    if memory.done.insert((fork, head, 5)) {
        let transaction = Transaction {
            channelId: core.spec().channel_id,
            forkCnt: fork,
            height: head + 1,
            participant: view.me,
            timestamp: view.chain_now,
            prevStateHash: head_hash,
            stateHash: keccak256(b"junk"),
            data: Bytes::from(vec![0xde, 0xad, 0xbe, 0xef]),
        };
        let signature = view.forger.sign_transaction(core, &transaction);
        out.push(manager(ChainAction::PostCalldata {
            transaction,
            signature,
            parent: parent.clone(),
        }));
    }
    if rng.random_bool(0.3) {
        out.push(manager(ChainAction::DisputeTimeout { latest: parent }));
    }
    out
}

/// A remembered (possibly stale, possibly other-fork) proof used for an exit, a timeout, a
/// checkpoint, a close or a challenge.
fn stale_proof(memory: &AttackMemory, view: &View<'_>, rng: &mut StdRng) -> Option<Attack> {
    if memory.proofs.is_empty() {
        return None;
    }
    let proof = memory.proofs[rng.random_range(0..memory.proofs.len())].clone();
    let action = match rng.random_range(0..5u8) {
        0 => ChainAction::RequestExit { latest: proof },
        1 => ChainAction::DisputeTimeout { latest: proof },
        2 => ChainAction::Checkpoint { proof },
        3 => ChainAction::Close { proof },
        _ => ChainAction::Challenge {
            record: view.handler.running_dispute()?.clone(),
            proof,
        },
    };
    Some(manager(action))
}

/// Anything: one random call of every kind the attacker can build, with random choices of
/// proofs, transactions, heights and timestamps.
fn chaos(memory: &mut AttackMemory, view: &View<'_>, rng: &mut StdRng) -> Vec<Attack> {
    let core = view.core;
    match rng.random_range(0..9u8) {
        0 => unlinked_post(memory, view),
        1 => junk_at_accused(memory, view, rng),
        2 => stale_proof(memory, view, rng).into_iter().collect(),
        3 => random_post(memory, view, rng).into_iter().collect(),
        4 => {
            // A fraud claim against an honest transaction, with any remembered parent.
            let (Some(target), Some(prev)) = (pick(&memory.others, rng), pick(&memory.proofs, rng)) else {
                return Vec::new();
            };
            let kind = match rng.random_range(0..3u8) {
                0 => FraudKind::InvalidTransition,
                1 => FraudKind::TimestampOutOfOrder,
                _ => FraudKind::WrongParent,
            };
            vec![manager(ChainAction::ProveFraud {
                kind,
                prev,
                transaction: target.0,
                signature: target.1,
            })]
        }
        5 => {
            // A double-sign claim: an honest transaction and a modified copy under its signature.
            let (Some((tx, sig)), Some(latest)) = (pick(&memory.others, rng), head_proof(view)) else {
                return Vec::new();
            };
            let mut twin = tx.clone();
            twin.timestamp += 1;
            vec![manager(ChainAction::ProveDoubleSign {
                latest,
                a: Box::new((tx, sig)),
                b: Box::new((twin, sig)),
            })]
        }
        6 => {
            // Finalize a running dispute early, or with a state of the attacker's choosing.
            let Some(record) = view.handler.running_dispute().cloned() else {
                return Vec::new();
            };
            let state = core
                .state_at(core.tip())
                .map(|s| rich_state(s, view.me))
                .unwrap_or_default();
            vec![manager(ChainAction::FinalizeDispute { record, state })]
        }
        7 => {
            // Attack 6: the machine's storage and hooks, on the channel's clone and the shared
            // machine.
            let honest = view.honest.first().copied().unwrap_or_default();
            let huge = Bytes::from(vec![0xab; 64 * 1024]);
            let data: Bytes = match rng.random_range(0..5u8) {
                0 => RoundRobinCounter::setStateCall { state: huge }
                    .abi_encode()
                    .into(),
                1 => RoundRobinCounter::removeParticipantCall { participant: honest }
                    .abi_encode()
                    .into(),
                2 => RoundRobinCounter::slashParticipantCall { participant: honest }
                    .abi_encode()
                    .into(),
                3 => RoundRobinCounter::initializeCall {}.abi_encode().into(),
                _ => RoundRobinCounter::joinParticipantCall {
                    participant: view.me,
                    amount: U256::from(u64::MAX),
                    data: Bytes::new(),
                }
                .abi_encode()
                .into(),
            };
            vec![Attack::Machine {
                clone: rng.random_bool(0.7),
                data,
            }]
        }
        _ => {
            // Settle with the head (or an older proof) at a moment of the attacker's choosing.
            let proof = head_proof(view).or_else(|| pick(&memory.proofs, rng));
            proof
                .map(|proof| vec![manager(ChainAction::RequestExit { latest: proof })])
                .unwrap_or_default()
        }
    }
}

/// A post of the attacker's own transaction with random height, parent, stamp, data and claim.
fn random_post(memory: &AttackMemory, view: &View<'_>, rng: &mut StdRng) -> Option<Attack> {
    let core = view.core;
    let (head, head_hash) = view.handler.head(core);
    let parent = if rng.random_bool(0.5) {
        head_proof(view)?
    } else {
        pick(&memory.proofs, rng)?
    };
    let timing = core.spec().timing;
    let timestamp = match rng.random_range(0..4u8) {
        0 => core.tip_timestamp().saturating_sub(rng.random_range(1..=5)),
        1 => view.chain_now + timing.agreement_time + rng.random_range(1..=30),
        2 => core.tip_timestamp(),
        _ => view.chain_now,
    };
    let data: Bytes = if rng.random_bool(0.5) {
        RoundRobinCounter::addCall {
            step: rng.random_range(0..=12u64),
        }
        .abi_encode()
        .into()
    } else {
        Bytes::from(vec![rng.random::<u8>(); rng.random_range(0..64)])
    };
    let mut transaction = Transaction {
        channelId: core.spec().channel_id,
        forkCnt: core.fork().fork,
        height: (head + rng.random_range(0..=3u64)).saturating_sub(1),
        participant: view.me,
        timestamp,
        prevStateHash: if rng.random_bool(0.7) {
            head_hash
        } else {
            B256::from(rng.random::<[u8; 32]>())
        },
        stateHash: B256::ZERO,
        data,
    };
    transaction.stateHash = if rng.random_bool(0.5) {
        view.forger.state_after(core, &transaction).unwrap_or_default()
    } else {
        keccak256(rich_state(core.state_at(core.tip())?, view.me))
    };
    let signature = view.forger.sign_transaction(core, &transaction);
    Some(manager(ChainAction::PostCalldata {
        transaction,
        signature,
        parent,
    }))
}

fn pick<T: Clone>(items: &[T], rng: &mut StdRng) -> Option<T> {
    (!items.is_empty()).then(|| items[rng.random_range(0..items.len())].clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rich_state_pays_the_attacker_everything() {
        let me = Address::repeat_byte(1);
        let other = Address::repeat_byte(2);
        let state: Bytes = RoundRobinCounter::State {
            participants: vec![me, other],
            balances: vec![U256::from(5u64), U256::from(7u64)],
            counter: 3,
            target: 21,
            next: 1,
        }
        .abi_encode()
        .into();
        let rich = RoundRobinCounter::State::abi_decode(&rich_state(&state, me)).unwrap();
        assert_eq!(rich.balances, vec![U256::from(12u64), U256::ZERO]);
        assert_eq!(rich.counter, 3);
    }

    #[test]
    fn the_rich_state_has_the_machine_s_layout() {
        // The machine encodes its state with abi.encode(s): the same bytes as SolValue's.
        let code = entente_evm_runtime::MachineCode::from_artifact_json(
            entente_contracts::artifacts::ROUND_ROBIN_COUNTER,
        )
        .unwrap();
        let mut m = entente_evm_runtime::MachineInstance::deploy(&code, 30_000_000).unwrap();
        let call = RoundRobinCounter::initialStateCall {
            participants: vec![Address::repeat_byte(1), Address::repeat_byte(2)],
            deposits: vec![U256::from(1u64), U256::from(2u64)],
            target: 9,
        };
        let raw = m.view(call.abi_encode().into()).unwrap();
        let genesis = RoundRobinCounter::initialStateCall::abi_decode_returns(&raw).unwrap();
        let s = RoundRobinCounter::State::abi_decode(&genesis).unwrap();
        assert_eq!(s.target, 9);
        assert_eq!(Bytes::from(s.abi_encode()), genesis);
    }
}
