//! The conformance scenarios: generic over [`Chain`], so the same checks run on the devchain and
//! on anvil. Real k256 signatures over real EIP-712 digests; every verdict comes from
//! the manager's bytecode and is checked through revert data and logs.

use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use alloy_sol_types::{SolCall, SolValue};
use entente_contracts::IStateChannelManager::{self, DisputeRecord, DoubleSignProof, Exit};
use entente_contracts::{
    ChannelStatus, DisputeKind, ManagerError, ManagerEvent, Payments, RoundRobinCounter,
};
use entente_dispute::{ChainAction, ChainEvent, ProofKind as DisputeProofKind, StateProof as DisputeProof};
use entente_evm_runtime::{MachineCode, MachineInstance};
use entente_types::{Domain, Signature, SignedIntent, Transaction, recover_signer};

use crate::harness::*;

/// A scenario: a check run on a [`World`].
pub type Scenario<C> = fn(&mut World<C>);

/// Every scenario, by name (the same list as [`crate::conformance_tests!`]).
pub fn all<C: Chain>() -> Vec<(&'static str, Scenario<C>)> {
    vec![
        ("tictactoe_open_is_atomic", tictactoe_open_is_atomic::<C>),
        ("calldata_post_round_trips", calldata_post_round_trips::<C>),
        ("timeout_dispute", timeout_dispute::<C>),
        ("double_signature_slashes", double_signature_slashes::<C>),
        ("cooperative_close", cooperative_close::<C>),
        ("four_party_round_robin", four_party_round_robin::<C>),
        ("refusals", refusals::<C>),
        (
            "intent_post_and_force_round_trip",
            intent_post_and_force_round_trip::<C>,
        ),
    ]
}

const RELAYER: usize = 7; // a funded account that is in no channel: "anyone"

fn zero() -> U256 {
    U256::ZERO
}

/// The one `DisputeStarted`/`DisputeChallenged` record in `events`.
fn record_of(events: &[ManagerEvent]) -> DisputeRecord {
    events
        .iter()
        .find_map(|e| match e {
            ManagerEvent::DisputeStarted(d) => Some(d.dispute.clone()),
            ManagerEvent::DisputeChallenged(d) => Some(d.dispute.clone()),
            _ => None,
        })
        .expect("a dispute record")
}

fn closed_exits(events: &[ManagerEvent]) -> (u64, u64, Vec<Exit>) {
    events
        .iter()
        .find_map(|e| match e {
            ManagerEvent::ChannelClosed(c) => Some((c.forkCnt, c.height, c.exits.clone())),
            _ => None,
        })
        .expect("ChannelClosed")
}

/// Withdraws every exit of a closed channel through the relayer and checks that each
/// participant's balance grows by exactly its exit.
fn withdraw_all<C: Chain>(w: &mut World<C>, id: B256, exits: &[Exit]) {
    let manager = w.chain.manager();
    let manager_before = w.chain.balance(manager);
    for (i, exit) in exits.iter().enumerate() {
        let before = w.chain.balance(exit.participant);
        let call = IStateChannelManager::withdrawCall {
            channelId: id,
            exits: exits.to_vec(),
            index: U256::from(i),
        };
        let sent = w.send(RELAYER, &call, zero());
        assert!(sent.success, "withdraw {i}: {:?}", sent.error());
        assert!(
            sent.events()
                .contains(&ManagerEvent::Withdrawn(IStateChannelManager::Withdrawn {
                    channelId: id,
                    participant: exit.participant,
                    amount: exit.amount,
                }))
        );
        assert_eq!(
            w.chain.balance(exit.participant),
            before + exit.amount,
            "exit {i} paid"
        );
        let again = w.send(RELAYER, &call, zero());
        assert_refused(
            &again,
            ManagerError::AlreadyClaimed(IStateChannelManager::AlreadyClaimed { index: U256::from(i) }),
        );
    }
    let total: U256 = exits.iter().map(|e| e.amount).sum();
    assert_eq!(
        w.chain.balance(manager),
        manager_before - total,
        "the manager paid out every exit"
    );
}

// ---------------------------------------------------------------------- open

/// A 2-party TicTacToe channel with ETH deposits opens atomically: live only after the last
/// deposit, with everything the `ChannelOpened` log promised.
pub fn tictactoe_open_is_atomic<C: Chain>(w: &mut World<C>) {
    let (spec, genesis) = w.ttt_spec();
    let manager = w.chain.manager();
    let (x, o) = (w.addr(0), w.addr(1));
    let (manager0, x0, o0) = (w.chain.balance(manager), w.chain.balance(x), w.chain.balance(o));

    let open = IStateChannelManager::openCall {
        spec: spec.clone(),
        genesisState: genesis.clone(),
    };
    let sent = w.send(0, &open, ether(1));
    assert!(sent.success, "{:?}", sent.error());
    let id = IStateChannelManager::openCall::abi_decode_returns(&sent.output).unwrap();
    assert_eq!(
        id,
        w.view(&IStateChannelManager::computeChannelIdCall {
            spec: spec.clone(),
            genesisState: genesis.clone()
        })
    );
    assert_eq!(
        sent.events(),
        vec![
            ManagerEvent::ChannelOpened(IStateChannelManager::ChannelOpened {
                channelId: id,
                opener: x,
                spec: spec.clone(),
                genesisState: genesis.clone(),
            }),
            ManagerEvent::Deposited(IStateChannelManager::Deposited {
                channelId: id,
                participant: x,
                amount: ether(1),
            }),
        ],
        "opened and funded by the opener, not active yet"
    );
    let ch = w.channel(id);
    assert_eq!(ch.status, ChannelStatus::Funding as u8);
    assert_eq!((ch.participantCount, ch.fundedCount), (2, 1));
    assert_eq!(ch.timestamp, sent.timestamp + FUNDING, "the funding deadline");
    assert_eq!(ch.genesisStateHash, keccak256(&genesis));
    assert_eq!(ch.participantsHash, participants_hash(&spec.participants));

    // Not live yet: no calldata, no dispute.
    let (t1, _) = w.ttt_move(id, 0, 1, 0, sent.timestamp + 1, &genesis, 4);
    let post = IStateChannelManager::postCalldataCall {
        transaction: t1.clone().into(),
        signature: w.sign(0, &t1),
        parent: w.genesis_proof(&genesis),
    };
    let refused = w.send(0, &post, zero());
    assert_refused(
        &refused,
        ManagerError::WrongStatus(IStateChannelManager::WrongStatus {
            channelId: id,
            status: ChannelStatus::Funding as u8,
        }),
    );
    // The deposit must be exact, and only once.
    let deposit = IStateChannelManager::depositCall {
        channelId: id,
        index: U256::from(1),
    };
    let half = w.send(1, &deposit, ether(1) / U256::from(2));
    assert_refused(
        &half,
        ManagerError::WrongAmount(IStateChannelManager::WrongAmount {
            expected: ether(1),
            received: ether(1) / U256::from(2),
        }),
    );
    let twice = w.send(
        1,
        &IStateChannelManager::depositCall {
            channelId: id,
            index: U256::ZERO,
        },
        ether(1),
    );
    assert_refused(
        &twice,
        ManagerError::AlreadyFunded(IStateChannelManager::AlreadyFunded { index: U256::ZERO }),
    );

    let last = w.send(1, &deposit, ether(1));
    assert!(last.success, "{:?}", last.error());
    assert_eq!(
        last.events(),
        vec![
            ManagerEvent::Deposited(IStateChannelManager::Deposited {
                channelId: id,
                participant: o,
                amount: ether(1),
            }),
            ManagerEvent::ChannelActivated(IStateChannelManager::ChannelActivated {
                channelId: id,
                genesisTimestamp: last.timestamp,
            }),
        ],
        "the last deposit activates, at its block's time"
    );
    let ch = w.channel(id);
    assert_eq!(ch.status, ChannelStatus::Open as u8);
    assert_eq!(ch.timestamp, last.timestamp, "fork 0's genesis timestamp");
    assert_eq!(ch.locked, alloy_primitives::Uint::<96, 2>::from(2 * ETHER));

    // Real balances moved: the failed attempts cost only gas.
    let x_fees = sent.fee + refused.fee;
    let o_fees = half.fee + twice.fee + last.fee;
    assert_eq!(w.chain.balance(manager), manager0 + ether(2));
    assert_eq!(w.chain.balance(x), x0 - ether(1) - x_fees);
    assert_eq!(w.chain.balance(o), o0 - ether(1) - o_fees);
}

// ---------------------------------------------------------------------- calldata

/// A transaction posted as calldata is run by the chain on the head and comes back from the
/// `CalldataPosted` log exactly, with its signature, which recovers to its issuer under the real
/// EIP-712 digest; the posted state becomes the head.
pub fn calldata_post_round_trips<C: Chain>(w: &mut World<C>) {
    let (spec, genesis) = w.ttt_spec();
    let (id, _) = w.open_funded(&spec, &genesis);
    let ts = w.now();
    let (t1, s1) = w.ttt_move(id, 0, 1, 0, ts + 1, &genesis, 4);
    let digest = w.domain.digest(&t1);
    assert_eq!(
        w.view(&IStateChannelManager::transactionDigestCall {
            transaction: t1.clone().into()
        }),
        digest,
        "Rust and Solidity agree on the EIP-712 digest"
    );
    assert_eq!(
        w.view(&IStateChannelManager::domainSeparatorCall {}),
        w.domain.separator()
    );
    let signature = w.sign(0, &t1);
    let call = IStateChannelManager::postCalldataCall {
        transaction: t1.clone().into(),
        signature: signature.clone(),
        parent: w.genesis_proof(&genesis),
    };
    let from_block = w.chain.block_number() + 1;
    // Anyone may post it: here the other participant does.
    let sent = w.send(1, &call, zero());
    assert!(sent.success, "{:?}", sent.error());

    let events = w.events_since(from_block);
    assert_eq!(events.len(), 1, "one log: {events:?}");
    let (log, event) = &events[0];
    let ManagerEvent::CalldataPosted(posted) = event else {
        panic!("not a CalldataPosted: {event:?}");
    };
    assert_eq!(posted.channelId, id);
    assert_eq!((posted.forkCnt, posted.height), (0, 1));
    let decoded: Transaction = posted.transaction.clone().into();
    assert_eq!(decoded, t1, "the exact transaction");
    assert_eq!(posted.signature, signature, "the exact signature");
    let sig = Signature::from_slice(&posted.signature).unwrap();
    assert_eq!(
        recover_signer(&w.domain.digest(&decoded), &sig).unwrap(),
        w.addr(0)
    );
    // The log's data is the ABI encoding of the transaction and its signature.
    assert_eq!(
        log.log.data.data,
        Bytes::from((posted.transaction.clone(), posted.signature.clone()).abi_encode_params())
    );
    assert_eq!(log.block_number, sent.block_number);
    assert_eq!(log.timestamp, sent.timestamp);
    assert_eq!(
        w.view(&IStateChannelManager::postedAtCall { digest }),
        sent.timestamp
    );

    let ch = w.channel(id);
    assert_eq!(
        (ch.headHeight, ch.headStateHash),
        (1, keccak256(&s1)),
        "the posted state is the head"
    );
    assert_eq!(ch.headSince, sent.timestamp.max(t1.timestamp));
    // The same post again: its parent is no longer the head.
    let again = w.send(0, &call, zero());
    assert_refused(
        &again,
        ManagerError::StaleProof(IStateChannelManager::StaleProof {
            headHeight: 1,
            stateHash: keccak256(&genesis),
        }),
    );
}

// ---------------------------------------------------------------------- timeout

/// A timeout dispute: refused before the writer's deadline (decoded `TooEarly`), accepted after;
/// finalized only after the challenge period; the removed player forfeits (TicTacToe) and the
/// channel settles with real payouts.
pub fn timeout_dispute<C: Chain>(w: &mut World<C>) {
    let (spec, genesis) = w.ttt_spec();
    let (id, _) = w.open_funded(&spec, &genesis);
    let (x, o) = (w.addr(0), w.addr(1));
    let genesis_ts = w.channel(id).timestamp;
    let writer_deadline = genesis_ts + P2P + AGREE + FALLBACK;
    let dispute = IStateChannelManager::disputeTimeoutCall {
        channelId: id,
        latest: w.genesis_proof(&genesis),
    };

    let early = w.send(1, &dispute, zero());
    assert_refused(
        &early,
        ManagerError::TooEarly(IStateChannelManager::TooEarly {
            notBefore: U256::from(writer_deadline + 1),
        }),
    );
    let self_accused = w.send(0, &dispute, zero());
    assert_refused(
        &self_accused,
        ManagerError::CannotAccuseSelf(IStateChannelManager::CannotAccuseSelf {}),
    );
    let outsider = w.send(RELAYER, &dispute, zero());
    assert_refused(
        &outsider,
        ManagerError::NotAParticipant(IStateChannelManager::NotAParticipant {
            account: w.addr(RELAYER),
        }),
    );

    w.warp_past(writer_deadline + 5);
    let started = w.send(1, &dispute, zero());
    assert!(started.success, "{:?}", started.error());
    let events = started.events();
    let d = record_of(&events);
    assert_eq!(
        events,
        vec![ManagerEvent::DisputeStarted(
            IStateChannelManager::DisputeStarted {
                channelId: id,
                dispute: DisputeRecord {
                    kind: DisputeKind::Timeout as u8,
                    challenged: false,
                    slash: false,
                    submitter: o,
                    target: x,
                    forkCnt: 0,
                    height: 0,
                    stateHash: keccak256(&genesis),
                    writerDeadline: writer_deadline,
                    deadline: started.timestamp + CHALLENGE,
                },
                state: genesis.clone(),
            }
        )]
    );
    assert_eq!(w.channel(id).status, ChannelStatus::Disputed as u8);

    let finalize = IStateChannelManager::finalizeDisputeCall {
        channelId: id,
        d: d.clone(),
        state: genesis.clone(),
    };
    let too_early = w.send(RELAYER, &finalize, zero());
    assert_refused(
        &too_early,
        ManagerError::TooEarly(IStateChannelManager::TooEarly {
            notBefore: U256::from(d.deadline + 1),
        }),
    );
    w.warp_past(d.deadline + 5);
    let forged = IStateChannelManager::finalizeDisputeCall {
        channelId: id,
        d: DisputeRecord {
            target: o,
            ..d.clone()
        },
        state: genesis.clone(),
    };
    assert_refused(
        &w.send(RELAYER, &forged, zero()),
        ManagerError::DisputeMismatch(IStateChannelManager::DisputeMismatch {}),
    );
    let done = w.send(RELAYER, &finalize, zero());
    assert!(done.success, "{:?}", done.error());
    let events = done.events();
    assert_eq!(
        events[..2],
        [
            ManagerEvent::DisputeFinalized(IStateChannelManager::DisputeFinalized {
                channelId: id,
                dispute: d.clone()
            }),
            ManagerEvent::ParticipantRemoved(IStateChannelManager::ParticipantRemoved {
                channelId: id,
                participant: x,
                slashed: false,
            }),
        ]
    );
    let (fork, height, exits) = closed_exits(&events);
    assert_eq!((fork, height), (0, 0));
    assert_eq!(
        exits,
        vec![Exit {
            participant: o,
            amount: ether(2)
        }],
        "x forfeits its stake to o"
    );
    assert_eq!(w.channel(id).status, ChannelStatus::Closed as u8);
    withdraw_all(w, id, &exits);
}

// ---------------------------------------------------------------------- fraud

/// A participant who signs two different transactions at one height is slashed after the
/// challenge period: the other takes everything.
pub fn double_signature_slashes<C: Chain>(w: &mut World<C>) {
    let (spec, genesis) = w.ttt_spec();
    let (id, _) = w.open_funded(&spec, &genesis);
    let (x, o) = (w.addr(0), w.addr(1));
    let ts = w.now();
    let (t1, s1) = w.ttt_move(id, 0, 1, 0, ts + 1, &genesis, 4);
    let latest = w.signed_proof(&t1, &s1, &[0, 1]);
    let (a, _) = w.ttt_move(id, 0, 2, 1, ts + 2, &s1, 0);
    let (b, _) = w.ttt_move(id, 0, 2, 1, ts + 2, &s1, 8);

    let same = DoubleSignProof {
        a: a.clone().into(),
        sigA: w.sign(1, &a),
        b: a.clone().into(),
        sigB: w.sign(1, &a),
    };
    let not_double = w.send(
        0,
        &IStateChannelManager::proveDoubleSignCall {
            channelId: id,
            latest: latest.clone(),
            proof: same,
        },
        zero(),
    );
    assert_refused(
        &not_double,
        ManagerError::NotADoubleSign(IStateChannelManager::NotADoubleSign {}),
    );

    let proof = DoubleSignProof {
        a: a.clone().into(),
        sigA: w.sign(1, &a),
        b: b.clone().into(),
        sigB: w.sign(1, &b),
    };
    let call = IStateChannelManager::proveDoubleSignCall {
        channelId: id,
        latest,
        proof,
    };
    let proved = w.send(0, &call, zero());
    assert!(proved.success, "{:?}", proved.error());
    let d = record_of(&proved.events());
    assert_eq!(
        (d.kind, d.slash, d.submitter, d.target),
        (DisputeKind::DoubleSign as u8, true, x, o)
    );
    assert_eq!((d.height, d.stateHash), (1, keccak256(&s1)));
    assert!(w.channel(id).fraudDispute);

    w.warp_past(d.deadline + 5);
    let finalize = IStateChannelManager::finalizeDisputeCall {
        channelId: id,
        d: d.clone(),
        state: s1.clone(),
    };
    let done = w.send(RELAYER, &finalize, zero());
    assert!(done.success, "{:?}", done.error());
    let events = done.events();
    assert!(events.contains(&ManagerEvent::ParticipantRemoved(
        IStateChannelManager::ParticipantRemoved {
            channelId: id,
            participant: o,
            slashed: true,
        }
    )));
    let (_, height, exits) = closed_exits(&events);
    assert_eq!(height, 1);
    assert_eq!(
        exits,
        vec![Exit {
            participant: x,
            amount: ether(2)
        }],
        "o is slashed: x takes both stakes"
    );
    withdraw_all(w, id, &exits);
}

// ---------------------------------------------------------------------- close

/// A cooperative close on an N-signed game-over state settles at once; pull withdrawals move real
/// balances, each once.
pub fn cooperative_close<C: Chain>(w: &mut World<C>) {
    let (spec, genesis) = w.ttt_spec();
    let (id, _) = w.open_funded(&spec, &genesis);
    let (x, o) = (w.addr(0), w.addr(1));
    let ts = w.now();
    let mut state = genesis.clone();
    let mut history = Vec::new();
    for (i, cell) in [0u8, 3, 1, 4, 2].into_iter().enumerate() {
        let (t, s) = w.ttt_move(id, 0, i as u64 + 1, i % 2, ts + i as u64 + 1, &state, cell);
        history.push((t, s.clone()));
        state = s;
    }
    // Before the last move, the game is not over.
    let (t4, s4) = &history[3];
    let not_final = w.send(
        0,
        &IStateChannelManager::closeCall {
            channelId: id,
            proof: w.signed_proof(t4, s4, &[0, 1]),
        },
        zero(),
    );
    assert_refused(
        &not_final,
        ManagerError::NotFinal(IStateChannelManager::NotFinal {}),
    );
    // One signature missing.
    let (t5, s5) = &history[4];
    let mut short = w.signed_proof(t5, s5, &[0, 1]);
    short.signatures.pop();
    let refused = w.send(
        0,
        &IStateChannelManager::closeCall {
            channelId: id,
            proof: short,
        },
        zero(),
    );
    assert_refused(
        &refused,
        ManagerError::SignatureCountMismatch(IStateChannelManager::SignatureCountMismatch {
            expected: U256::from(2),
            got: U256::from(1),
        }),
    );

    let close = IStateChannelManager::closeCall {
        channelId: id,
        proof: w.signed_proof(t5, s5, &[0, 1]),
    };
    let closed = w.send(1, &close, zero());
    assert!(closed.success, "{:?}", closed.error());
    let (fork, height, exits) = closed_exits(&closed.events());
    assert_eq!((fork, height), (0, 5));
    assert_eq!(
        exits,
        vec![
            Exit {
                participant: x,
                amount: ether(2)
            },
            Exit {
                participant: o,
                amount: U256::ZERO
            },
        ],
        "x won"
    );
    assert_eq!(w.channel(id).status, ChannelStatus::Closed as u8);
    withdraw_all(w, id, &exits);
    assert_eq!(w.channel(id).locked, alloy_primitives::Uint::<96, 2>::ZERO);
}

// ---------------------------------------------------------------------- N parties

/// A 4-party RoundRobinCounter channel: N-of-N proofs, a timeout that removes the stalled writer
/// and starts fork 1 (`SetState` carries everything a peer needs to carry on), the removed
/// participant's exit through the pending ledger, old-fork proofs refused, and a 3-party close.
pub fn four_party_round_robin<C: Chain>(w: &mut World<C>) {
    let (spec, genesis) = w.rr_spec(4, 12);
    let (id, receipts) = w.open_funded(&spec, &genesis);
    assert_eq!(receipts.len(), 4);
    assert!(
        !receipts[..3].iter().any(|r| r
            .events()
            .iter()
            .any(|e| matches!(e, ManagerEvent::ChannelActivated(_)))),
        "not live before the last deposit"
    );
    assert!(
        receipts[3]
            .events()
            .iter()
            .any(|e| matches!(e, ManagerEvent::ChannelActivated(_)))
    );
    let all = [0, 1, 2, 3];
    let ts = w.now();
    let (_, s1) = w.rr_add(id, 0, 1, 0, ts + 1, &genesis, 5);
    let (t2, s2) = w.rr_add(id, 0, 2, 1, ts + 2, &s1, 5);
    assert_eq!(w.rr_next(&s2), w.addr(2), "participant 2 writes next, and stalls");
    let latest = w.signed_proof(&t2, &s2, &all);
    let dispute = IStateChannelManager::disputeTimeoutCall {
        channelId: id,
        latest: latest.clone(),
    };
    let writer_deadline = t2.timestamp + P2P + AGREE + FALLBACK;
    assert_refused(
        &w.send(0, &dispute, zero()),
        ManagerError::TooEarly(IStateChannelManager::TooEarly {
            notBefore: U256::from(writer_deadline + 1),
        }),
    );
    w.warp_past(writer_deadline + 5);
    let started = w.send(0, &dispute, zero());
    assert!(started.success, "{:?}", started.error());
    let d = record_of(&started.events());
    assert_eq!(
        (d.kind, d.target, d.height),
        (DisputeKind::Timeout as u8, w.addr(2), 2)
    );
    w.warp_past(d.deadline + 5);
    let done = w.send(
        RELAYER,
        &IStateChannelManager::finalizeDisputeCall {
            channelId: id,
            d: d.clone(),
            state: s2.clone(),
        },
        zero(),
    );
    assert!(done.success, "{:?}", done.error());
    let events = done.events();
    assert!(
        events.contains(&ManagerEvent::ExitCredited(IStateChannelManager::ExitCredited {
            channelId: id,
            participant: w.addr(2),
            amount: ether(1),
        }))
    );
    let set = events
        .iter()
        .find_map(|e| match e {
            ManagerEvent::SetState(s) => Some(s.clone()),
            _ => None,
        })
        .expect("SetState");
    let remaining = vec![w.addr(0), w.addr(1), w.addr(3)];
    assert_eq!(set.channelId, id);
    assert_eq!((set.forkCnt, set.genesisHeight), (1, 2));
    assert_eq!(set.genesisTimestamp, done.timestamp);
    assert_eq!(set.participants, remaining);
    let decoded = w
        .view_typed(
            w.rr,
            &RoundRobinCounter::decodeCall {
                state: set.state.clone(),
            },
        )
        .unwrap();
    assert_eq!(decoded.participants, remaining);
    assert_eq!(decoded.balances, vec![ether(1); 3]);
    assert_eq!(decoded.counter, 10);
    let ch = w.channel(id);
    assert_eq!(ch.status, ChannelStatus::Open as u8);
    assert_eq!(
        (ch.forkCnt, ch.genesisHeight, ch.timestamp),
        (1, 2, set.genesisTimestamp)
    );
    assert_eq!(ch.genesisStateHash, keccak256(&set.state));
    assert_eq!(ch.participantsHash, participants_hash(&remaining));
    assert_eq!(
        w.view(&IStateChannelManager::getParticipantsCall { channelId: id }),
        remaining
    );

    // The removed participant pulls its exit.
    let removed = w.addr(2);
    assert_eq!(
        w.view(&IStateChannelManager::pendingBalanceCall {
            account: removed,
            token: Address::ZERO
        }),
        ether(1)
    );
    let before = w.chain.balance(removed);
    let pulled = w.send(
        2,
        &IStateChannelManager::withdrawPendingCall { token: Address::ZERO },
        zero(),
    );
    assert!(pulled.success, "{:?}", pulled.error());
    assert_eq!(w.chain.balance(removed), before + ether(1) - pulled.fee);
    assert_refused(
        &w.send(
            2,
            &IStateChannelManager::withdrawPendingCall { token: Address::ZERO },
            zero(),
        ),
        ManagerError::NothingToWithdraw(IStateChannelManager::NothingToWithdraw {}),
    );

    // Fork 1 goes on from SetState's state; fork 0's proofs are dead.
    let genesis1 = set.state.clone();
    let next = w.rr_next(&genesis1);
    let issuer = (0..4).find(|&i| w.addr(i) == next).unwrap();
    let ts = w.now();
    let (t3, s3) = w.rr_add(id, 1, 3, issuer, ts + 1, &genesis1, 2);
    let stale = w.send(
        0,
        &IStateChannelManager::requestExitCall {
            channelId: id,
            latest,
        },
        zero(),
    );
    assert_refused(
        &stale,
        ManagerError::WrongFork(IStateChannelManager::WrongFork { expected: 1, got: 0 }),
    );
    let (old_fork_tx, _) = w.rr_add(id, 0, 3, 2, ts + 1, &s2, 2);
    let old_post = w.send(
        2,
        &IStateChannelManager::postCalldataCall {
            transaction: old_fork_tx.clone().into(),
            signature: w.sign(2, &old_fork_tx),
            parent: w.posted_proof(&old_fork_tx, &s2),
        },
        zero(),
    );
    assert_refused(
        &old_post,
        ManagerError::WrongFork(IStateChannelManager::WrongFork { expected: 1, got: 0 }),
    );
    // The old signer set does not sign fork 1 any more.
    let four = w.signed_proof(&t3, &s3, &all);
    assert_refused(
        &w.send(
            0,
            &IStateChannelManager::closeCall {
                channelId: id,
                proof: four,
            },
            zero(),
        ),
        ManagerError::SignatureCountMismatch(IStateChannelManager::SignatureCountMismatch {
            expected: U256::from(3),
            got: U256::from(4),
        }),
    );
    let close = IStateChannelManager::closeCall {
        channelId: id,
        proof: w.signed_proof(&t3, &s3, &[0, 1, 3]),
    };
    let closed = w.send(3, &close, zero());
    assert!(closed.success, "{:?}", closed.error());
    let (fork, height, exits) = closed_exits(&closed.events());
    assert_eq!((fork, height), (1, 3));
    assert_eq!(
        exits,
        remaining
            .iter()
            .map(|&participant| Exit {
                participant,
                amount: ether(1)
            })
            .collect::<Vec<_>>()
    );
    withdraw_all(w, id, &exits);
}

// ---------------------------------------------------------------------- refusals

/// Wrong signers and replayed signatures (another chain id, another channel) are refused with the
/// manager's decoded custom errors.
pub fn refusals<C: Chain>(w: &mut World<C>) {
    let (spec, genesis) = w.ttt_spec();
    let (a, _) = w.open_funded(&spec, &genesis);
    let other_spec = IStateChannelManager::ChannelSpec {
        salt: keccak256("another channel"),
        ..spec.clone()
    };
    let (b, _) = w.open_funded(&other_spec, &genesis);
    assert_ne!(a, b);
    let (x, o) = (w.addr(0), w.addr(1));
    let ts = w.now();
    let (t1, s1) = w.ttt_move(a, 0, 1, 0, ts + 1, &genesis, 4);
    let parent = w.genesis_proof(&genesis);
    let post = |tx: &Transaction, signature: Bytes| IStateChannelManager::postCalldataCall {
        transaction: tx.clone().into(),
        signature,
        parent: parent.clone(),
    };

    // Wrong signer: x's transaction signed by o.
    let by_o = w.sign(1, &t1);
    assert_refused(
        &w.send(0, &post(&t1, by_o), zero()),
        ManagerError::SignerMismatch(IStateChannelManager::SignerMismatch { expected: x, got: o }),
    );
    // N-of-N: a stranger's signature, and the right signatures in the wrong order.
    let mut stranger = w.signed_proof(&t1, &s1, &[0, 1]);
    stranger.signatures[1] = w.sign(5, &t1);
    assert_refused(
        &w.send(
            0,
            &IStateChannelManager::requestExitCall {
                channelId: a,
                latest: stranger,
            },
            zero(),
        ),
        ManagerError::InvalidSignature(IStateChannelManager::InvalidSignature { index: U256::from(1) }),
    );
    let swapped = w.signed_proof(&t1, &s1, &[1, 0]);
    assert_refused(
        &w.send(
            0,
            &IStateChannelManager::requestExitCall {
                channelId: a,
                latest: swapped,
            },
            zero(),
        ),
        ManagerError::InvalidSignature(IStateChannelManager::InvalidSignature { index: U256::ZERO }),
    );

    // Replayed from another chain id: the same key and transaction, the domain of chain 1.
    let mainnet = Domain::new(1, w.chain.manager());
    let foreign = w.sign_in(&mainnet, 0, &t1);
    let sent = w.send(0, &post(&t1, foreign.clone()), zero());
    let recovered = recover_signer(&w.domain.digest(&t1), &Signature::from_slice(&foreign).unwrap()).unwrap();
    assert_ne!(recovered, x);
    assert_refused(
        &sent,
        ManagerError::SignerMismatch(IStateChannelManager::SignerMismatch {
            expected: x,
            got: recovered,
        }),
    );
    let mut foreign_proof = w.signed_proof(&t1, &s1, &[0, 1]);
    foreign_proof.signatures = vec![foreign, w.sign_in(&mainnet, 1, &t1)];
    assert_refused(
        &w.send(
            0,
            &IStateChannelManager::requestExitCall {
                channelId: a,
                latest: foreign_proof,
            },
            zero(),
        ),
        ManagerError::InvalidSignature(IStateChannelManager::InvalidSignature { index: U256::ZERO }),
    );

    // Replayed from another channel: channel a's N-signed proof offered to channel b, and a's
    // signature on the same transaction re-addressed to b.
    let proof_a = w.signed_proof(&t1, &s1, &[0, 1]);
    assert_refused(
        &w.send(
            0,
            &IStateChannelManager::requestExitCall {
                channelId: b,
                latest: proof_a,
            },
            zero(),
        ),
        ManagerError::WrongChannel(IStateChannelManager::WrongChannel { expected: b, got: a }),
    );
    let readdressed = Transaction {
        channelId: b,
        ..t1.clone()
    };
    let sig_a = w.sign(0, &t1);
    let sent = w.send(0, &post(&readdressed, sig_a.clone()), zero());
    let got = recover_signer(
        &w.domain.digest(&readdressed),
        &Signature::from_slice(&sig_a).unwrap(),
    )
    .unwrap();
    assert_refused(
        &sent,
        ManagerError::SignerMismatch(IStateChannelManager::SignerMismatch { expected: x, got }),
    );

    // And the genuine article is accepted: the refusals changed nothing.
    let ok = w.send(0, &post(&t1, sig_a), zero());
    assert!(ok.success, "{:?}", ok.error());
    assert_eq!(w.channel(a).status, ChannelStatus::Open as u8);
    assert_eq!(w.channel(b).status, ChannelStatus::Open as u8);
}

// ---------------------------------------------------------------------- gas

/// One measured operation: the transaction gas this chain reports, and `docs/contracts.md`'s
/// figure (forge `--isolate`, N = 2, RoundRobinCounter).
#[derive(Debug)]
pub struct GasRow {
    /// What was measured.
    pub operation: &'static str,
    /// The transaction gas the chain reported.
    pub measured: u64,
    /// The figure in `docs/contracts.md`.
    pub documented: u64,
}

/// Replays `test/Gas.t.sol`'s N = 2 flows (same keys, spec, timestamps and calldata except the
/// machine's address) and returns the gas of each operation next to the documented figure.
pub fn gas_of_operations<C: Chain>(w: &mut World<C>) -> Vec<GasRow> {
    let mut rows = Vec::new();
    let mut row = |operation, sent: &Sent, documented| {
        assert!(sent.success, "{operation}: {:?}", sent.error());
        rows.push(GasRow {
            operation,
            measured: sent.gas_used,
            documented,
        });
    };

    // calibration: an empty view sent as a transaction
    let sent = w.send(0, &IStateChannelManager::domainSeparatorCall {}, zero());
    row("calibration: domainSeparator()", &sent, 26_487);

    // open + last deposit
    let (spec, genesis) = w.rr_spec(2, 100);
    let (id, receipts) = w.open_funded(&spec, &genesis);
    row("open (opener deposits)", &receipts[0], 260_430);
    row("deposit (last, activates)", &receipts[1], 43_846);

    // calldata, timeout on a posted proof, challenge, finalize
    let t0 = w.now();
    let (t1, s1) = w.rr_add(id, 0, 1, 0, t0 + 1, &genesis, 1);
    let (t2, s2) = w.rr_add(id, 0, 2, 1, t0 + 2, &s1, 1);
    let sent = w.send(
        0,
        &IStateChannelManager::postCalldataCall {
            transaction: t1.clone().into(),
            signature: w.sign(0, &t1),
            parent: w.genesis_proof(&genesis),
        },
        zero(),
    );
    row("post calldata", &sent, 434_477);
    w.warp_past(t0 + 1 + P2P + AGREE + FALLBACK + 1);
    let posted = w.posted_proof(&t1, &s1);
    let sent = w.send(
        0,
        &IStateChannelManager::disputeTimeoutCall {
            channelId: id,
            latest: posted,
        },
        zero(),
    );
    row("timeout dispute (posted proof)", &sent, 90_346);
    let d = record_of(&sent.events());
    let later = w.signed_proof(&t2, &s2, &[0, 1]);
    let sent = w.send(
        1,
        &IStateChannelManager::challengeCall {
            channelId: id,
            d,
            proof: later,
        },
        zero(),
    );
    row("challenge (later N-signed state)", &sent, 132_012);
    let c = record_of(&sent.events());
    w.warp_past(c.deadline + 1);
    let sent = w.send(
        1,
        &IStateChannelManager::finalizeDisputeCall {
            channelId: id,
            d: c,
            state: s2.clone(),
        },
        zero(),
    );
    row("finalize dispute (slash hook + new fork)", &sent, 141_319);

    // fraud: double signature
    let spec = IStateChannelManager::ChannelSpec {
        salt: keccak256("double"),
        ..spec.clone()
    };
    let (id, _) = w.open_funded(&spec, &genesis);
    let t0 = w.now();
    let (t1, s1) = w.rr_add(id, 0, 1, 0, t0 + 1, &genesis, 1);
    let p1 = w.signed_proof(&t1, &s1, &[0, 1]);
    let (a, _) = w.rr_add(id, 0, 2, 1, t0 + 2, &s1, 1);
    let (b, _) = w.rr_add(id, 0, 2, 1, t0 + 2, &s1, 2);
    let proof = DoubleSignProof {
        a: a.clone().into(),
        sigA: w.sign(1, &a),
        b: b.clone().into(),
        sigB: w.sign(1, &b),
    };
    let sent = w.send(
        0,
        &IStateChannelManager::proveDoubleSignCall {
            channelId: id,
            latest: p1,
            proof,
        },
        zero(),
    );
    row("fraud: double signature", &sent, 205_857);

    // close and withdrawals
    let (spec, genesis) = w.rr_spec(2, 10);
    let (id, _) = w.open_funded(&spec, &genesis);
    let t0 = w.now();
    let (t, s) = w.rr_add(id, 0, 1, 0, t0 + 1, &genesis, 10);
    let sent = w.send(
        0,
        &IStateChannelManager::closeCall {
            channelId: id,
            proof: w.signed_proof(&t, &s, &[0, 1]),
        },
        zero(),
    );
    row("cooperative close", &sent, 104_149);
    let (_, _, exits) = closed_exits(&sent.events());
    for (i, (name, documented, from)) in [
        ("withdraw (first claim)", 71_783, 0),
        ("withdraw (second claim)", 45_427, 1),
    ]
    .into_iter()
    .enumerate()
    {
        let call = IStateChannelManager::withdrawCall {
            channelId: id,
            exits: exits.clone(),
            index: U256::from(i),
        };
        let sent = w.send(from, &call, zero());
        row(name, &sent, documented);
    }
    rows
}

// ---------------------------------------------------------------------- intents the court holds

/// A participant's intent, given to the court and forced onto the head, through the dispute
/// layer's own encoding (`ChainAction::PostIntent`, `ChainAction::ForceIntent`) and decoding
/// (`ChainEvent::IntentPosted`, `ChainEvent::IntentForced`): the Rust intent digest is the
/// machine's, the held intent falls due one `agreementTime` later, and the transaction the court
/// writes gives, run on the genesis by the Rust runtime, exactly the chain's new head.
pub fn intent_post_and_force_round_trip<C: Chain>(w: &mut World<C>) {
    let (spec, genesis) = w.payments_spec(3);
    let (id, _) = w.open_funded(&spec, &genesis);
    let now = w.now();
    let data: Bytes = Payments::payCall {
        to: w.addr(1),
        amount: U256::from(1_000u64),
    }
    .abi_encode()
    .into();
    let intent = SignedIntent::sign(&w.keys[2], id, 0, now + 3_600, data).unwrap();
    let machine_digest = w
        .view_typed(
            w.payments,
            &Payments::intentDigestCall {
                intent: Payments::Intent {
                    channelId: intent.channel_id,
                    issuer: intent.issuer,
                    nonce: intent.nonce,
                    notAfter: intent.not_after,
                    data: intent.data.clone(),
                },
            },
        )
        .unwrap();
    assert_eq!(
        machine_digest,
        intent.intent().digest(),
        "Rust and the machine agree on the intent digest"
    );

    let manager = w.chain.manager();
    let relayer = w.addr(RELAYER);
    let post = entente_dispute::encode_action(
        id,
        &ChainAction::PostIntent {
            intent: Box::new(intent.clone()),
        },
    );
    let from_block = w.chain.block_number() + 1;
    let sent = w.chain.send(relayer, manager, post, zero());
    assert!(sent.success, "postIntent: {:?}", sent.error());
    let posted: Vec<ChainEvent> = w
        .events_since(from_block)
        .iter()
        .filter_map(|(log, e)| entente_dispute::decode_event(e, log.timestamp))
        .map(|(_, e)| e)
        .collect();
    let due_at = sent.timestamp + AGREE;
    assert_eq!(
        posted,
        vec![ChainEvent::IntentPosted {
            fork: 0,
            index: 2,
            intent: Box::new(intent.clone()),
            due_at,
        }],
        "the held intent, decoded"
    );

    let genesis_proof = DisputeProof {
        kind: DisputeProofKind::Genesis,
        transaction: Transaction::default(),
        signatures: Vec::new(),
        state: genesis.clone(),
    };
    let force = entente_dispute::encode_action(
        id,
        &ChainAction::ForceIntent {
            index: 2,
            intent: Box::new(intent.clone()),
            parent: genesis_proof,
        },
    );
    let early = w.chain.send(relayer, manager, force.clone(), zero());
    assert_refused(
        &early,
        ManagerError::IntentNotDue(IStateChannelManager::IntentNotDue { dueAt: due_at }),
    );
    w.warp_past(due_at);
    let head_ts = w.channel(id).headTimestamp;
    let from_block = w.chain.block_number() + 1;
    let sent = w.chain.send(relayer, manager, force, zero());
    assert!(sent.success, "forceIntent: {:?}", sent.error());
    let forced: Vec<ChainEvent> = w
        .events_since(from_block)
        .iter()
        .filter_map(|(log, e)| entente_dispute::decode_event(e, log.timestamp))
        .map(|(_, e)| e)
        .collect();
    let [
        ChainEvent::IntentForced {
            transaction,
            timestamp,
        },
    ] = forced.as_slice()
    else {
        panic!("not one IntentForced: {forced:?}");
    };
    assert_eq!(*timestamp, sent.timestamp);
    assert_eq!(
        (
            transaction.forkCnt,
            transaction.height,
            transaction.participant,
            transaction.timestamp
        ),
        (0, 1, w.addr(2), head_ts),
        "the court wrote the issuer's move at the next height with the head's stamp"
    );
    assert_eq!(transaction.prevStateHash, keccak256(&genesis));
    let ch = w.channel(id);
    assert_eq!((ch.headHeight, ch.headStateHash), (1, transaction.stateHash));
    // The peers rebuild the forced state from the event alone.
    let code = MachineCode::from_artifact_json(entente_contracts::artifacts::PAYMENTS).unwrap();
    let mut scratch = MachineInstance::deploy(&code, MACHINE_GAS).unwrap();
    scratch.set_state(&genesis).unwrap();
    let outcome = scratch.apply(transaction, None).unwrap();
    assert_eq!(
        outcome.state_hash, transaction.stateHash,
        "the forced state, rebuilt off chain"
    );
}
