//! The DisputeHandler's decisions against real state managers driven by the simulation.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use entente_dispute::{CallOutcome, ChainAction, ChainEvent, DisputeHandler, FraudKind, ProofKind};
use entente_sim::{Game, Scenario, Strategy};
use entente_types::{AgreementMode, Signer};

const GENESIS_TS: u64 = 1_700_000_000;

#[test]
fn silent_peer_calldata_then_timeout_dispute() {
    // Peer 0 writes first; peer 1 is silent: it neither confirms nor moves.
    let scenario = Scenario::new(Game::Counter { target: 100 }, 2, 1).byzantine(1, Strategy::Silent);
    let mut sim = scenario.build().unwrap();
    sim.run(5_000).unwrap();
    let me = sim.peer(0).me();
    let mut handler = DisputeHandler::new(me);
    let core = sim.peer_mut(0);
    assert_eq!(core.tip(), 1, "peer 0 made its move");
    assert_eq!(core.finalized_height(), 0, "nobody confirmed it");

    // Before the confirmation deadline (genesis + p2pTime + agreementTime = 40 s): nothing.
    assert!(handler.on_tick(core, 39_000).is_empty());
    // After it: post our unconfirmed transaction as calldata, once.
    let actions = handler.on_tick(core, 41_000);
    let posted = match actions.as_slice() {
        [
            ChainAction::PostCalldata {
                transaction,
                signature,
                parent,
            },
        ] => {
            assert_eq!(
                parent.kind,
                ProofKind::Genesis,
                "it links to the head, the genesis"
            );
            (transaction.clone(), *signature)
        }
        other => panic!("expected a calldata post, got {other:?}"),
    };
    assert_eq!(posted.0.height, 1);
    assert!(handler.on_tick(core, 42_000).is_empty(), "posted once");

    // The chain shows the post. Peer 1 writes next: its window starts at the post (42 s, later
    // than the stamp); past its calldata deadline (post + 100 s), peer 0 disputes it from the
    // head.
    let claimed = posted.0.stateHash;
    handler.on_chain_event(
        core,
        ChainEvent::CalldataPosted {
            transaction: posted.0,
            signature: posted.1,
            timestamp: GENESIS_TS + 42,
        },
        42_000,
    );
    let before = (42 + 100 + 1) * 1000;
    assert!(handler.on_tick(core, before).is_empty());
    let actions = handler.on_tick(core, before + 2_000);
    match actions.as_slice() {
        [ChainAction::DisputeTimeout { latest }] => {
            assert_eq!(latest.kind, ProofKind::Posted, "the head");
            assert_eq!(entente_types::keccak256(&latest.state), claimed);
        }
        other => panic!("expected a timeout dispute, got {other:?}"),
    }
    assert!(handler.on_tick(core, before + 3_000).is_empty(), "disputed once");
    assert!(
        core.signing_stopped(),
        "no more signatures on a fork we dispute (O3)"
    );
}

#[test]
fn signed_genesis_proof_when_the_first_writer_is_silent() {
    // Peer 0, the first writer, never moves (the simulation is not even run): peer 1 disputes
    // it from the genesis.
    let mut sim = Scenario::new(Game::Counter { target: 100 }, 2, 2)
        .build()
        .unwrap();
    let me = sim.peer(1).me();
    let mut handler = DisputeHandler::new(me);
    let core = sim.peer_mut(1);
    assert!(
        handler.on_tick(core, 100_000).is_empty(),
        "deadline is genesis + 100 s"
    );
    match handler.on_tick(core, 102_000).as_slice() {
        [ChainAction::DisputeTimeout { latest }] => assert_eq!(latest.kind, ProofKind::Genesis),
        other => panic!("expected a timeout dispute, got {other:?}"),
    }
}

#[test]
fn fraud_is_proven_from_pipeline_refusals() {
    for (strategy, kind) in [
        (Strategy::InvalidTransition, FraudKind::InvalidTransition),
        (Strategy::OutOfOrderTimestamp, FraudKind::TimestampOutOfOrder),
        (Strategy::StaleState, FraudKind::WrongParent),
    ] {
        // Three peers: the byzantine one (index 2) writes third, after two honest moves.
        let scenario = Scenario::new(Game::Counter { target: 100 }, 3, 4)
            .mode(AgreementMode::ExplicitConfirmations)
            .byzantine(1, strategy);
        let mut sim = scenario.build().unwrap();
        sim.run(5_000).unwrap();
        let me = sim.peer(0).me();
        let mut handler = DisputeHandler::new(me);
        let core = sim.peer_mut(0);
        assert_eq!(core.fraud_evidence().len(), 1, "{strategy:?}");
        let actions = handler.on_tick(core, 5_000);
        match actions.as_slice() {
            [
                ChainAction::ProveFraud {
                    kind: k,
                    prev,
                    transaction,
                    ..
                },
            ] => {
                assert_eq!(*k, kind);
                assert_eq!(prev.transaction.height + 1, transaction.height);
                assert_eq!(prev.kind, ProofKind::Signed, "the parent is N-signed");
            }
            other => panic!("{strategy:?}: expected a fraud proof, got {other:?}"),
        }
        assert!(handler.on_tick(core, 6_000).is_empty(), "proven once");
    }
}

#[test]
fn a_future_stamp_is_refused_but_never_proven() {
    // The chain judges a future stamp when the transaction is posted (docs/security.md, R3, R7):
    // the pipeline refuses it and keeps no fraud evidence, so no proof can be caught out.
    let scenario = Scenario::new(Game::Counter { target: 100 }, 3, 4)
        .mode(AgreementMode::ExplicitConfirmations)
        .byzantine(1, Strategy::FutureTimestamp);
    let mut sim = scenario.build().unwrap();
    sim.run(5_000).unwrap();
    let me = sim.peer(0).me();
    let mut handler = DisputeHandler::new(me);
    let core = sim.peer_mut(0);
    assert!(core.fraud_evidence().is_empty());
    assert!(
        !handler
            .on_tick(core, 5_000)
            .iter()
            .any(|a| matches!(a, ChainAction::ProveFraud { .. }))
    );
}

#[test]
fn equivocation_is_proven() {
    // The last peer equivocates: even and odd peers get different transactions at its height.
    let scenario = Scenario::new(Game::Counter { target: 100 }, 4, 5).byzantine(1, Strategy::Equivocate);
    let mut sim = scenario.build().unwrap();
    sim.run(5_000).unwrap();
    // Find an honest peer holding equivocation evidence.
    let holder = sim
        .honest()
        .into_iter()
        .find(|&i| !sim.peer(i).evidence().is_empty())
        .expect("evidence");
    let me = sim.peer(holder).me();
    let mut handler = DisputeHandler::new(me);
    let actions = handler.on_tick(sim.peer_mut(holder), 5_000);
    match actions.as_slice() {
        [ChainAction::ProveDoubleSign { a, b, .. }] => {
            assert_eq!(a.0.height, b.0.height);
            assert_ne!(a.0, b.0);
            assert_eq!(a.0.participant, b.0.participant);
        }
        other => panic!("expected a double-sign proof, got {other:?}"),
    }
}

#[test]
fn during_a_dispute_a_conflicting_posted_branch_is_cut_with_a_challenge() {
    // Two honest peers play until peer 0 holds an N-signed tip; then the chain shows a posted
    // branch that conflicts with it at that height (its writer equivocated on chain) and goes one
    // higher, and an exit dispute starts on that branch. The chain takes no checkpoint while a
    // dispute runs: peer 0 must cut the branch with a challenge carrying its N-signed state (R2).
    let scenario = Scenario::new(Game::Counter { target: 100 }, 2, 9);
    let keys = scenario.keys();
    let mut sim = scenario.build().unwrap();
    run_until_peer0_is_final_above_1(&mut sim);
    let me = sim.peer(0).me();
    let colluder = sim.peer(1).me();
    let mut handler = DisputeHandler::new(me);
    let core = sim.peer_mut(0);
    let tip = core.tip();
    let domain = core.spec().domain.clone();
    let key_of = |a: entente_types::Address| keys.iter().find(|k| k.address() == a).unwrap().clone();
    let ours = core.agreement().entry(tip).unwrap().transaction.clone();
    let mut twin = ours.clone();
    twin.timestamp += 1;
    twin.stateHash = entente_types::keccak256(b"the branch's state at the tip height");
    let twin_sig = key_of(twin.participant).sign_digest(&domain.digest(&twin));
    let mut above = twin.clone();
    above.height = tip + 1;
    above.prevStateHash = twin.stateHash;
    above.stateHash = entente_types::keccak256(b"the branch's state above");
    above.participant = keys
        .iter()
        .map(|k| k.address())
        .find(|a| *a != twin.participant)
        .unwrap();
    let above_sig = key_of(above.participant).sign_digest(&domain.digest(&above));
    let now = (core.tip_timestamp() - GENESIS_TS) * 1000 + 2_000;
    for (tx, sig) in [(twin, twin_sig), (above.clone(), above_sig)] {
        handler.on_chain_event(
            core,
            ChainEvent::CalldataPosted {
                transaction: tx,
                signature: sig,
                timestamp: GENESIS_TS + now / 1000,
            },
            now,
        );
    }
    let record = entente_dispute::DisputeRecord {
        kind: entente_dispute::DisputeKind::Exit,
        challenged: false,
        slash: false,
        submitter: colluder,
        target: colluder,
        fork: 0,
        height: tip + 1,
        state_hash: above.stateHash,
        writer_deadline: 0,
        deadline: GENESIS_TS + now / 1000 + 120,
    };
    let actions = handler.on_chain_event(
        core,
        ChainEvent::DisputeStarted {
            record: record.clone(),
            state: entente_types::Bytes::new(),
        },
        now,
    );
    match actions.as_slice() {
        [ChainAction::Challenge { record: r, proof }] => {
            assert_eq!(*r, record);
            assert_eq!(proof.kind, ProofKind::Signed);
            assert_eq!(
                proof.transaction, ours,
                "our N-signed state at the conflicting height"
            );
        }
        other => panic!("expected a challenge that cuts the branch, got {other:?}"),
    }
}

#[test]
fn a_failed_call_is_decided_again_after_a_back_off_and_never_given_up() {
    // Peer 0, the first writer, never moves: peer 1 disputes it from the genesis (as above).
    let mut sim = Scenario::new(Game::Counter { target: 100 }, 2, 2)
        .build()
        .unwrap();
    let me = sim.peer(1).me();
    let mut handler = DisputeHandler::new(me);
    let core = sim.peer_mut(1);
    let mut now = 102_000;
    let first = handler.on_tick(core, now);
    let [action @ ChainAction::DisputeTimeout { .. }] = first.as_slice() else {
        panic!("expected a timeout dispute, got {first:?}");
    };
    let action = action.clone();
    // Not sent (the chain is down): decided again after 1 s, then 2 s, ...
    handler.on_call_outcome(
        core,
        &action,
        &CallOutcome::NotSent("connection refused".into()),
        now,
    );
    assert!(
        handler.on_tick(core, now + 500).is_empty(),
        "waits out the back-off"
    );
    now += 1_000;
    assert_eq!(handler.on_tick(core, now), vec![action.clone()], "sent again");
    // Reverted again and again (say the chain's clock lags): the waits grow, 2 s, 4 s, 8 s, ...,
    // up to 64 s, but the call is never given up, or the silent writer would never be removed.
    let mut wait = 2_000;
    for revert in 1..=8 {
        handler.on_call_outcome(core, &action, &CallOutcome::Reverted("TooEarly".into()), now);
        assert!(
            handler.on_tick(core, now + wait - 1).is_empty(),
            "revert {revert}: not before {wait} ms"
        );
        now += wait;
        assert_eq!(
            handler.on_tick(core, now),
            vec![action.clone()],
            "revert {revert}: decided again"
        );
        wait = (wait * 2).min(64_000);
    }
    // Mined: nothing more.
    handler.on_call_outcome(core, &action, &CallOutcome::Mined, now);
    assert!(
        handler.on_tick(core, now + 100_000).is_empty(),
        "raised once it landed"
    );
}

#[test]
fn a_dispute_the_chain_refused_lifts_the_stop_on_signing() {
    // Peer 1 raises a timeout against the silent first writer and stops signing (O3). A writer
    // that posts its move first makes the timeout revert: no dispute of ours exists, so peer 1
    // must sign again (or it could not write its own turn and would be timed out itself).
    let mut sim = Scenario::new(Game::Counter { target: 100 }, 2, 2)
        .build()
        .unwrap();
    let me = sim.peer(1).me();
    let mut handler = DisputeHandler::new(me);
    let core = sim.peer_mut(1);
    let actions = handler.on_tick(core, 102_000);
    let [action @ ChainAction::DisputeTimeout { .. }] = actions.as_slice() else {
        panic!("expected a timeout dispute, got {actions:?}");
    };
    let action = action.clone();
    assert!(core.signing_stopped());
    // Not sent: it may still be mined, so the stop stays.
    handler.on_call_outcome(core, &action, &CallOutcome::NotSent("timeout".into()), 102_000);
    assert!(
        core.signing_stopped(),
        "a call that may still land keeps the stop"
    );
    let again = handler.on_tick(core, 103_000);
    assert_eq!(again, vec![action.clone()]);
    handler.on_call_outcome(
        core,
        &action,
        &CallOutcome::Reverted("StaleProof".into()),
        103_000,
    );
    assert!(!core.signing_stopped(), "a refused dispute lifts the stop");
}

#[test]
fn our_own_exit_is_never_challenged_but_another_s_is() {
    // A challenge of an undefeated exit slashes its submitter, whoever sends it: the handler
    // challenges another's stale exit, never its own.
    let scenario = Scenario::new(Game::Counter { target: 100 }, 2, 9);
    let mut sim = scenario.build().unwrap();
    run_until_peer0_is_final_above_1(&mut sim);
    let me = sim.peer(0).me();
    let other = sim.peer(1).me();
    let core = sim.peer_mut(0);
    let now = (core.tip_timestamp() - GENESIS_TS) * 1000 + 2_000;
    let genesis_hash = core.fork().genesis_state_hash;
    let record = |submitter| entente_dispute::DisputeRecord {
        kind: entente_dispute::DisputeKind::Exit,
        challenged: false,
        slash: false,
        submitter,
        target: submitter,
        fork: 0,
        height: 0,
        state_hash: genesis_hash,
        writer_deadline: 0,
        deadline: GENESIS_TS + now / 1000 + 120,
    };
    let started = |r| ChainEvent::DisputeStarted {
        record: r,
        state: entente_types::Bytes::new(),
    };
    let mut handler = DisputeHandler::new(me);
    let ours = handler.on_chain_event(core, started(record(me)), now);
    assert!(ours.is_empty(), "never challenge our own exit: {ours:?}");
    assert!(
        handler
            .on_tick(core, now + 1_000)
            .iter()
            .all(|a| !matches!(a, ChainAction::Challenge { .. }))
    );
    let mut handler = DisputeHandler::new(me);
    let theirs = handler.on_chain_event(core, started(record(other)), now);
    assert!(
        matches!(theirs.as_slice(), [ChainAction::Challenge { .. }]),
        "a stale exit of another is challenged: {theirs:?}"
    );
}

#[test]
fn a_dispute_on_a_posted_branch_we_hold_no_state_of_is_finalized_with_the_state_we_compute() {
    // Peer 0 holds an N-signed tip; the chain shows a branch others posted from the height below
    // it (a real transition conflicting with ours, and a real one on top of it), and a dispute on
    // that branch nobody challenged in time. To finalize it the handler needs the head's state,
    // which it never held: it runs the posted transactions from the state below, as the chain did.
    use alloy_sol_types::SolCall;
    let scenario = Scenario::new(Game::Counter { target: 1_000_000 }, 2, 11);
    let keys = scenario.keys();
    let mut sim = scenario.build().unwrap();
    run_until_peer0_is_final_above_1(&mut sim);
    let me = sim.peer(0).me();
    let mut handler = DisputeHandler::new(me);
    let core = sim.peer_mut(0);
    let tip = core.tip();
    let domain = core.spec().domain.clone();
    let key_of = |a: entente_types::Address| keys.iter().find(|k| k.address() == a).unwrap().clone();
    let code = entente_evm_runtime::MachineCode::from_artifact_json(
        entente_contracts::artifacts::ROUND_ROBIN_COUNTER,
    )
    .unwrap();
    let mut machine = entente_evm_runtime::MachineInstance::deploy(&code, core.gas_limit()).unwrap();
    machine.set_state(core.state_at(tip - 1).unwrap()).unwrap();
    let ours = core.agreement().entry(tip).unwrap().transaction.clone();
    let mut twin = ours.clone();
    let our_step = entente_contracts::RoundRobinCounter::addCall::abi_decode(&ours.data)
        .unwrap()
        .step;
    let step = if our_step == 10 { 9 } else { our_step + 1 };
    twin.data = entente_contracts::RoundRobinCounter::addCall { step }
        .abi_encode()
        .into();
    twin.stateHash = machine.apply(&twin, None).unwrap().state_hash;
    assert_ne!(twin.stateHash, ours.stateHash, "a different transition");
    let mut above = twin.clone();
    above.height = tip + 1;
    above.prevStateHash = twin.stateHash;
    above.participant = keys
        .iter()
        .map(|k| k.address())
        .find(|a| *a != twin.participant)
        .unwrap();
    above.data = entente_contracts::RoundRobinCounter::addCall { step: 1 }
        .abi_encode()
        .into();
    let expected = machine.apply(&above, None).unwrap();
    above.stateHash = expected.state_hash;
    assert!(
        core.state_at(tip + 1).is_none(),
        "peer 0 holds nothing above its tip"
    );
    let now = (core.tip_timestamp() - GENESIS_TS) * 1000 + 2_000;
    for tx in [twin, above.clone()] {
        let signature = key_of(tx.participant).sign_digest(&domain.digest(&tx));
        handler.on_chain_event(
            core,
            ChainEvent::CalldataPosted {
                transaction: tx,
                signature,
                timestamp: GENESIS_TS + now / 1000,
            },
            now,
        );
    }
    // The posted head is provable as any other (an exit or checkpoint may need it).
    let proof = handler
        .proof_at(core, tip + 1)
        .expect("a proof of the posted head");
    assert_eq!(proof.kind, ProofKind::Posted);
    assert_eq!(proof.state, expected.state, "the state the chain computed");
    let record = entente_dispute::DisputeRecord {
        kind: entente_dispute::DisputeKind::Timeout,
        challenged: false,
        slash: false,
        submitter: above.participant,
        target: me,
        fork: 0,
        height: tip + 1,
        state_hash: above.stateHash,
        writer_deadline: 0,
        deadline: GENESIS_TS + now / 1000 + 120,
    };
    // The dispute's own event carries no state.
    handler.on_chain_event(
        core,
        ChainEvent::DisputeStarted {
            record: record.clone(),
            state: entente_types::Bytes::new(),
        },
        now,
    );
    let late = now + 10_000_000;
    let actions = handler.on_tick(core, late);
    let finalize = actions
        .iter()
        .find_map(|a| match a {
            ChainAction::FinalizeDispute { record: r, state } => Some((r.clone(), state.clone())),
            _ => None,
        })
        .unwrap_or_else(|| panic!("expected a finalization, got {actions:?}"));
    assert_eq!(finalize.0, record);
    assert_eq!(finalize.1, expected.state, "the state the chain computed");
    assert_eq!(core.tip(), tip, "nothing held changed");
    assert!(core.state_at(tip).is_some());
}

/// Runs `sim` until peer 0's tip is at height 2 or more and final.
fn run_until_peer0_is_final_above_1(sim: &mut entente_sim::Simulation) {
    let mut until = 1_000;
    while !(sim.peer(0).tip() >= 2 && sim.peer(0).finalized_height() == sim.peer(0).tip()) {
        until += 50;
        assert!(until < 60_000, "the game did not reach a final height");
        sim.run(until).unwrap();
    }
}

#[test]
fn an_exit_we_ask_for_stops_signing_and_first_brings_what_we_signed_to_the_chain() {
    // Peer 0 moved at height 1; peer 1 never confirms it: height 1 is ours, signed, not N-signed.
    let scenario = Scenario::new(Game::Counter { target: 100 }, 2, 1).byzantine(1, Strategy::Silent);
    let mut sim = scenario.build().unwrap();
    sim.run(5_000).unwrap();
    let me = sim.peer(0).me();
    let mut handler = DisputeHandler::new(me);
    let core = sim.peer_mut(0);
    assert_eq!(core.tip(), 1);
    assert_eq!(core.finalized_height(), 0);
    // Our participant asks to leave now, long before the confirmation deadline.
    handler.request_exit(core);
    assert!(core.signing_stopped(), "nothing more is signed on this fork");
    // An exit from the genesis would leave our height-1 signature to the others, who could
    // defeat the exit with it (and slash us): height 1 goes to the chain first...
    let actions = handler.on_tick(core, 6_000);
    let (transaction, signature) = match actions.as_slice() {
        [
            ChainAction::PostCalldata {
                transaction,
                signature,
                ..
            },
        ] => (transaction.clone(), *signature),
        other => panic!("expected our height 1 posted first, got {other:?}"),
    };
    assert_eq!(transaction.height, 1);
    assert!(
        handler.on_tick(core, 7_000).is_empty(),
        "no exit before the head is our tip"
    );
    handler.on_chain_event(
        core,
        ChainEvent::CalldataPosted {
            transaction,
            signature,
            timestamp: GENESIS_TS + 7,
        },
        8_000,
    );
    // ...and the exit then leaves from it.
    let actions = handler.on_tick(core, 9_000);
    match actions.as_slice() {
        [ChainAction::RequestExit { latest }] => assert_eq!(latest.kind, ProofKind::Posted),
        other => panic!("expected the exit from our tip, got {other:?}"),
    }
    assert!(handler.on_tick(core, 10_000).is_empty(), "asked once");
}
