//! When an honest participant co-signs a membership approval (docs/security.md, O4): each rule
//! of `StateManager::approval_refusal`, provoked by exactly the approval that breaks it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use alloy_primitives::U256;
use alloy_sol_types::SolCall;
use entente_contracts::TicTacToe;
use entente_state_manager::{
    ApprovalContext, ApprovalRefusal, Config, Effect, StateManager, approval_window,
};
use entente_types::{
    Address, AgreementMode, B256, Bytes, LocalSigner, MembershipApproval, MembershipChange, Message, Signer,
    Timing, state_hash,
};

mod common;
use common::{GENESIS_TS, key, tictactoe, tictactoe_spec};
const TIMING: Timing = Timing {
    p2p_time: 30,
    agreement_time: 10,
    chain_fallback_time: 60,
    challenge_time: 120,
};

/// X (moves first) and O's state managers of one tic-tac-toe channel, and the genesis.
fn channel() -> (StateManager<LocalSigner>, StateManager<LocalSigner>, Bytes) {
    let code = tictactoe();
    let (x, o) = (key(1), key(2));
    let (spec, genesis) = tictactoe_spec(
        &code,
        x.address(),
        o.address(),
        TIMING,
        AgreementMode::ExplicitConfirmations,
    );
    let xm = StateManager::new(spec.clone(), x, &code, Config::default(), 0).unwrap();
    let om = StateManager::new(spec, o, &code, Config::default(), 0).unwrap();
    (xm, om, genesis)
}

/// The messages `sm` sends among its pending effects (its other effects are dropped).
fn outgoing(sm: &mut StateManager<LocalSigner>) -> Vec<Message> {
    sm.drain_effects()
        .filter_map(|e| match e {
            Effect::Broadcast(m) | Effect::Send { message: m, .. } => Some(m),
            _ => None,
        })
        .collect()
}

/// X plays cell 4 at local 1 s; O applies and confirms it; X takes O's confirmation. Both now
/// hold height 1 as final, and O writes next.
fn play_one(x: &mut StateManager<LocalSigner>, o: &mut StateManager<LocalSigner>) {
    x.submit(TicTacToe::playCall { cell: 4 }.abi_encode().into(), 1_000)
        .unwrap();
    let sent = outgoing(x);
    let (xa, oa) = (x.me(), o.me());
    for m in sent {
        o.handle_message(xa, m, 1_100).unwrap();
    }
    let back = outgoing(o);
    for m in back {
        let _ = x.handle_message(oa, m, 1_200);
    }
    assert_eq!(o.finalized_height(), 1);
    assert_eq!(x.finalized_height(), 1);
}

fn leave(sm: &StateManager<LocalSigner>, who: Address, deadline: u64) -> MembershipApproval {
    MembershipApproval {
        channel_id: sm.spec().channel_id,
        fork: sm.fork().fork,
        height: sm.tip(),
        state_hash: state_hash(sm.state_at(sm.tip()).unwrap()),
        change: MembershipChange::Leave { participant: who },
        deadline,
    }
}

fn ctx(chain_now: u64) -> ApprovalContext {
    ApprovalContext {
        chain_now,
        sponsor: false,
        join_allowed: false,
    }
}

#[test]
fn a_leave_of_another_participant_at_our_final_tip_is_signed() {
    let (mut x, mut o, _) = channel();
    let now = GENESIS_TS + 2;
    // At genesis (final by definition), X writes next: O may approve X's leave.
    assert_eq!(
        o.approval_refusal(&leave(&o, x.me(), now + 20), &ctx(now)),
        Ok(())
    );
    play_one(&mut x, &mut o);
    // At height 1, X no longer writes next: X may approve O's leave with any short deadline.
    let far = now + approval_window(&TIMING);
    assert_eq!(x.approval_refusal(&leave(&x, o.me(), far), &ctx(now)), Ok(()));
}

#[test]
fn our_own_removal_only_when_we_asked_for_it() {
    let (_, o, _) = channel();
    let now = GENESIS_TS + 2;
    let approval = leave(&o, o.me(), now + 20);
    assert_eq!(
        o.approval_refusal(&approval, &ctx(now)),
        Err(ApprovalRefusal::OwnRemoval)
    );
    let sponsor = ApprovalContext {
        sponsor: true,
        ..ctx(now)
    };
    assert_eq!(o.approval_refusal(&approval, &sponsor), Ok(()));
}

#[test]
fn an_older_state_a_foreign_state_or_another_fork_is_refused() {
    let (mut x, mut o, genesis) = channel();
    let now = GENESIS_TS + 2;
    let at_genesis = leave(&o, x.me(), now + 20);
    play_one(&mut x, &mut o);
    // An approval of the genesis would roll the channel back by one move.
    assert_eq!(
        x.approval_refusal(&at_genesis, &ctx(now)),
        Err(ApprovalRefusal::NotTheTip { approval: 0, tip: 1 })
    );
    let mut foreign = leave(&x, o.me(), now + 20);
    foreign.state_hash = state_hash(&genesis);
    assert_eq!(
        x.approval_refusal(&foreign, &ctx(now)),
        Err(ApprovalRefusal::StateMismatch)
    );
    let mut other_fork = leave(&x, o.me(), now + 20);
    other_fork.fork = 1;
    assert!(matches!(
        x.approval_refusal(&other_fork, &ctx(now)),
        Err(ApprovalRefusal::WrongFork {
            approval: 1,
            current: 0
        })
    ));
    let mut other_channel = leave(&x, o.me(), now + 20);
    other_channel.channel_id = B256::repeat_byte(0xc2);
    assert!(matches!(
        x.approval_refusal(&other_channel, &ctx(now)),
        Err(ApprovalRefusal::WrongFork { .. })
    ));
}

#[test]
fn a_tip_that_is_not_final_is_refused() {
    let (mut x, _, _) = channel();
    let now = GENESIS_TS + 2;
    x.submit(TicTacToe::playCall { cell: 0 }.abi_encode().into(), 1_000)
        .unwrap();
    let approval = leave(&x, key(2).address(), now + 20);
    assert_eq!(
        x.approval_refusal(&approval, &ctx(now)),
        Err(ApprovalRefusal::NotFinal { height: 1 })
    );
}

#[test]
fn deadlines_past_or_too_far_are_refused() {
    let (x, o, _) = channel();
    let now = GENESIS_TS + 50;
    let past = leave(&o, x.me(), now);
    assert_eq!(
        o.approval_refusal(&past, &ctx(now)),
        Err(ApprovalRefusal::Expired { deadline: now, now })
    );
    let latest = now + 2 * approval_window(&TIMING);
    assert_eq!(o.approval_refusal(&leave(&o, x.me(), latest), &ctx(now)), Ok(()));
    assert_eq!(
        o.approval_refusal(&leave(&o, x.me(), latest + 1), &ctx(now)),
        Err(ApprovalRefusal::DeadlineTooFar {
            deadline: latest + 1,
            latest
        })
    );
}

#[test]
fn the_next_writer_signs_only_what_is_over_before_its_move_is_due() {
    let (x, o, _) = channel();
    // X writes next at genesis: its move is due at the genesis stamp plus p2pTime.
    let now = GENESIS_TS + 2;
    let write_by = GENESIS_TS + TIMING.p2p_time;
    assert_eq!(
        x.approval_refusal(&leave(&x, o.me(), write_by), &ctx(now)),
        Ok(())
    );
    assert_eq!(
        x.approval_refusal(&leave(&x, o.me(), write_by + 1), &ctx(now)),
        Err(ApprovalRefusal::BlocksOurTurn {
            deadline: write_by + 1,
            write_by
        })
    );
}

#[test]
fn joins_only_of_newcomers_the_application_allowed_and_leaves_only_of_participants() {
    let (x, o, _) = channel();
    let now = GENESIS_TS + 2;
    let newcomer = key(9).address();
    let mut join = leave(&o, x.me(), now + 20);
    join.change = MembershipChange::Join {
        participant: newcomer,
        amount: U256::from(5),
        data: Bytes::new(),
    };
    assert_eq!(
        o.approval_refusal(&join, &ctx(now)),
        Err(ApprovalRefusal::JoinNotAllowed(newcomer))
    );
    let allowed = ApprovalContext {
        join_allowed: true,
        ..ctx(now)
    };
    assert_eq!(o.approval_refusal(&join, &allowed), Ok(()));
    assert_eq!(
        o.approval_refusal(&leave(&o, newcomer, now + 20), &ctx(now)),
        Err(ApprovalRefusal::NotAParticipant(newcomer))
    );
}

/// The confirmations `sm` sends among its pending effects.
fn confirmations(sm: &mut StateManager<LocalSigner>) -> usize {
    outgoing(sm)
        .iter()
        .filter(|m| matches!(m, Message::Confirmation(_)))
        .count()
}

#[test]
fn after_a_dispute_nothing_more_is_signed_on_the_fork() {
    // Seed 002: after initiating a dispute the peer stops signing transactions for the fork (O3).
    let (mut x, mut o, _) = channel();
    x.stop_signing();
    assert!(x.signing_stopped());
    let play = TicTacToe::playCall { cell: 4 }.abi_encode();
    assert_eq!(
        x.submit(play.clone().into(), 1_000),
        Err(entente_state_manager::SubmitError::SigningStopped { fork: 0 })
    );
    // O stops too; X (fresh) moves: O applies the move but does not confirm it.
    let (mut x2, _, _) = channel();
    o.stop_signing();
    x2.submit(play.into(), 1_000).unwrap();
    let sent = outgoing(&mut x2);
    for m in sent {
        o.handle_message(x2.me(), m, 1_100).unwrap();
    }
    assert_eq!(o.tip(), 1, "the move is applied");
    assert_eq!(confirmations(&mut o), 0, "but not confirmed");
}

#[test]
fn a_held_signer_signs_nothing_above_the_approved_height_until_released() {
    let (mut x, mut o, _) = channel();
    let play = || TicTacToe::playCall { cell: 4 }.abi_encode().into();
    x.hold_signing_above(0, u64::MAX);
    assert_eq!(
        x.submit(play(), 1_000),
        Err(entente_state_manager::SubmitError::SigningHeld { height: 0 })
    );
    x.release_signing();
    x.submit(play(), 1_000).unwrap();
    // O holds at 0: it applies X's move at height 1 without confirming it.
    o.hold_signing_above(0, u64::MAX);
    let sent = outgoing(&mut x);
    for m in sent {
        o.handle_message(x.me(), m, 1_100).unwrap();
    }
    assert_eq!(o.tip(), 1);
    assert_eq!(confirmations(&mut o), 0, "held above the approved height");
}

#[test]
fn a_hold_ends_when_its_approval_can_no_longer_take_effect() {
    let (mut x, _, _) = channel();
    let play = || TicTacToe::playCall { cell: 4 }.abi_encode().into();
    let deadline = GENESIS_TS + 20;
    x.hold_signing_above(0, deadline);
    // Before its deadline, with the chain's head at the approved height: held.
    x.release_holds(deadline, 0, false);
    assert_eq!(x.signing_held_at(), Some(0));
    // Past its deadline, while the leave it approved runs on chain: still held.
    x.release_holds(deadline + 1, 0, true);
    assert_eq!(x.signing_held_at(), Some(0));
    // Past its deadline otherwise: released.
    x.release_holds(deadline + 1, 0, false);
    assert_eq!(x.signing_held_at(), None);
    x.submit(play(), 1_000).unwrap();

    // The chain's head moved above the approved height (someone posted a move): the chain
    // refuses the approval now, so the hold ends before its deadline, and with it the risk of
    // being timed out in our own turn while held.
    let (mut x, _, _) = channel();
    x.hold_signing_above(0, deadline);
    x.hold_signing_above(3, deadline + 100);
    x.release_holds(GENESIS_TS + 5, 1, false);
    assert_eq!(x.signing_held_at(), Some(3), "only the hold below the head ended");
    x.release_holds(GENESIS_TS + 5, 4, false);
    assert_eq!(x.signing_held_at(), None);
}

#[test]
fn a_refused_dispute_lets_the_peer_sign_again() {
    let (mut x, _, _) = channel();
    x.stop_signing();
    assert!(
        x.submit(TicTacToe::playCall { cell: 4 }.abi_encode().into(), 1_000)
            .is_err()
    );
    x.resume_signing();
    assert!(!x.signing_stopped());
    x.submit(TicTacToe::playCall { cell: 4 }.abi_encode().into(), 1_000)
        .unwrap();
}
