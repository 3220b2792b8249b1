//! The channel core's lifecycle decisions, driven by hand: what it asks of the chain and what it
//! does with each outcome.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use alloy_primitives::U256;
use alloy_sol_types::SolCall;
use entente_channel::{CallOutcome, ChainCall, Channel, Effect, JoinTerms, Phase, channel_id_of};
use entente_contracts::{TicTacToe, artifacts};
use entente_evm_runtime::{MachineCode, MachineInstance};
use entente_types::{
    Address, AgreementMode, B256, Bytes, ChannelProposal, Domain, JoinTicket, LocalSigner,
    MembershipApproval, MembershipChange, Message, ProposalAnswer, Signer, Timing,
};

fn key(n: u8) -> LocalSigner {
    LocalSigner::from_bytes(&B256::repeat_byte(n)).unwrap()
}

fn proposal(x: &LocalSigner, o: &LocalSigner) -> (MachineCode, ChannelProposal) {
    let code = MachineCode::from_artifact_json(artifacts::TIC_TAC_TOE).unwrap();
    let genesis = MachineInstance::deploy(&code, 5_000_000)
        .unwrap()
        .view_decode(&TicTacToe::initialStateCall {
            x: x.address(),
            o: o.address(),
            stake: U256::from(5),
        })
        .unwrap();
    let mut p = ChannelProposal {
        channel_id: B256::ZERO,
        chain_id: 31337,
        manager: Address::repeat_byte(0x99),
        participants: vec![x.address(), o.address()],
        deposits: vec![U256::from(5); 2],
        state_machine: Address::repeat_byte(0x77),
        token: Address::ZERO,
        timing: Timing::default(),
        funding_period: 600,
        machine_gas_limit: 5_000_000,
        salt: B256::ZERO,
        genesis_state: genesis,
        agreement_mode: AgreementMode::ExplicitConfirmations,
    };
    p.channel_id = channel_id_of(&p);
    (code, p)
}

fn calls(channel: &mut Channel<LocalSigner>) -> Vec<ChainCall> {
    let mut out = Vec::new();
    while let Some(effect) = channel.poll_effect() {
        if let Effect::Call(call) = effect {
            out.push(call);
        }
    }
    out
}

/// The proposer once every invitee accepted: its `open` call.
fn accepted(x: &LocalSigner, o: &LocalSigner) -> (Channel<LocalSigner>, ChainCall) {
    let (code, p) = proposal(x, o);
    let id = p.channel_id;
    let mut channel = Channel::propose(x.clone(), p, code, 1_700_000_000);
    calls(&mut channel);
    channel.handle_message(
        o.address(),
        Message::ProposalAnswer(ProposalAnswer {
            channel_id: id,
            accepted: true,
            reason: String::new(),
        }),
        10,
    );
    let open = calls(&mut channel);
    assert!(matches!(open.as_slice(), [ChainCall::Open { .. }]), "{open:?}");
    (channel, open[0].clone())
}

#[test]
fn an_open_that_was_mined_is_never_given_up() {
    let (x, o) = (key(1), key(2));
    let (mut channel, open) = accepted(&x, &o);
    // The first attempt was mined, but its answer was lost; every retry then meets the channel
    // it opened. Its event is slow to come: the proposal must not be given up.
    let mut now = 100;
    channel.handle_call_outcome(&open, CallOutcome::NotSent("the answer was lost".into()), 0, now);
    for _ in 0..10 {
        now += 70_000;
        channel.handle_timeout(now);
        for call in calls(&mut channel) {
            assert!(matches!(call, ChainCall::Open { .. }), "{call:?}");
            channel.handle_call_outcome(&call, CallOutcome::Reverted("ChannelExists(0x..)".into()), 0, now);
        }
    }
    assert_eq!(
        channel.phase(),
        Phase::Funding,
        "{:?}",
        channel.life().cancel_reason
    );
    assert!(channel.life().open_mined);
    // Long after: retries would have fired by now.
    channel.handle_timeout(10_000_000);
    assert!(
        calls(&mut channel).is_empty(),
        "no more open once the manager says it exists"
    );
}

#[test]
fn an_open_the_manager_keeps_refusing_ends_the_proposal() {
    let (x, o) = (key(1), key(2));
    let (mut channel, open) = accepted(&x, &o);
    let mut now = 100;
    channel.handle_call_outcome(&open, CallOutcome::Reverted("InvalidSpec".into()), 0, now);
    for _ in 0..10 {
        now += 70_000;
        channel.handle_timeout(now);
        for call in calls(&mut channel) {
            channel.handle_call_outcome(&call, CallOutcome::Reverted("InvalidSpec".into()), 0, now);
        }
    }
    assert_eq!(channel.phase(), Phase::Cancelled);
    assert!(
        channel
            .life()
            .cancel_reason
            .as_deref()
            .unwrap_or_default()
            .contains("InvalidSpec")
    );
}

#[test]
fn a_decline_with_a_long_multibyte_reason_cancels_without_panicking() {
    let (x, o) = (key(1), key(2));
    let (code, p) = proposal(&x, &o);
    let id = p.channel_id;
    let mut channel = Channel::propose(x, p, code, 1_700_000_000);
    channel.handle_message(
        o.address(),
        Message::ProposalAnswer(ProposalAnswer {
            channel_id: id,
            accepted: false,
            reason: "é".repeat(10_000),
        }),
        10,
    );
    assert_eq!(channel.phase(), Phase::Cancelled);
}

/// A newcomer `n` expecting to join `p`'s channel with a deposit of 3, invited by `x`.
fn joining(
    p: &ChannelProposal,
    code: &MachineCode,
    x: &LocalSigner,
    n: &LocalSigner,
) -> Channel<LocalSigner> {
    let terms = JoinTerms {
        channel_id: p.channel_id,
        sponsor: x.address(),
        chain_id: p.chain_id,
        manager: p.manager,
        state_machine: p.state_machine,
        token: p.token,
        amount: U256::from(3),
        timing: p.timing,
        machine_gas_limit: p.machine_gas_limit,
        data: Bytes::new(),
    };
    let mut channel = Channel::expect_join(n.clone(), terms, code.clone(), 1_700_000_000);
    calls(&mut channel);
    channel
}

/// A ticket letting `joiner` in with `amount`, signed by `signers` (the channel's participants
/// are `p.participants`).
fn ticket(p: &ChannelProposal, joiner: Address, amount: u64, signers: &[&LocalSigner]) -> Message {
    let state = p.genesis_state.clone();
    let approval = MembershipApproval {
        channel_id: p.channel_id,
        fork: 0,
        height: 0,
        state_hash: entente_types::state_hash(&state),
        change: MembershipChange::Join {
            participant: joiner,
            amount: U256::from(amount),
            data: Bytes::new(),
        },
        deadline: 1_700_000_100,
    };
    let digest = approval.digest(&Domain::new(p.chain_id, p.manager));
    let signatures = signers.iter().map(|s| s.sign_digest(&digest)).collect();
    Message::JoinTicket(Box::new(JoinTicket {
        approval,
        state,
        signatures,
        channel: p.clone(),
    }))
}

#[test]
fn only_a_ticket_from_the_sponsor_on_our_terms_is_used() {
    let (x, o, n, stranger) = (key(1), key(2), key(3), key(4));
    let (code, p) = proposal(&x, &o);
    let mut channel = joining(&p, &code, &x, &n);
    let good = ticket(&p, n.address(), 3, &[&x, &o]);
    // From a stranger (even one that signs a channel of its own), for another deposit, another
    // manager or machine, another newcomer: refused, nothing is paid.
    channel.handle_message(stranger.address(), good.clone(), 10);
    let mut own = p.clone();
    own.participants = vec![stranger.address()];
    channel.handle_message(stranger.address(), ticket(&own, n.address(), 3, &[&stranger]), 10);
    channel.handle_message(x.address(), ticket(&p, n.address(), 300, &[&x, &o]), 10);
    let mut other = p.clone();
    other.manager = Address::repeat_byte(0x98);
    channel.handle_message(x.address(), ticket(&other, n.address(), 3, &[&x, &o]), 10);
    other = p.clone();
    other.state_machine = Address::repeat_byte(0x76);
    channel.handle_message(x.address(), ticket(&other, n.address(), 3, &[&x, &o]), 10);
    other = p.clone();
    other.timing.p2p_time += 60;
    channel.handle_message(x.address(), ticket(&other, n.address(), 3, &[&x, &o]), 10);
    other = p.clone();
    other.machine_gas_limit = 10_000;
    channel.handle_message(x.address(), ticket(&other, n.address(), 3, &[&x, &o]), 10);
    channel.handle_message(x.address(), ticket(&p, stranger.address(), 3, &[&x, &o]), 10);
    channel.handle_message(x.address(), ticket(&p, n.address(), 3, &[&x, &stranger]), 10);
    channel.handle_timeout(1_000_000);
    assert!(calls(&mut channel).is_empty());
    assert_eq!(channel.phase(), Phase::Joining);
    // The sponsor's ticket on our terms: we join, once.
    channel.handle_message(x.address(), good.clone(), 20);
    let join = calls(&mut channel);
    assert!(
        matches!(join.as_slice(), [ChainCall::Join { approval, .. }] if approval.amount == U256::from(3)),
        "{join:?}"
    );
    channel.handle_message(x.address(), good, 30);
    assert!(calls(&mut channel).is_empty(), "one ticket at a time");
}

#[test]
fn a_refused_join_takes_the_next_ticket_and_gives_up_after_three() {
    let (x, o, n) = (key(1), key(2), key(3));
    let (code, p) = proposal(&x, &o);
    let mut channel = joining(&p, &code, &x, &n);
    let good = ticket(&p, n.address(), 3, &[&x, &o]);
    for round in 1..=3u64 {
        channel.handle_message(x.address(), good.clone(), round * 100);
        let join = calls(&mut channel);
        assert_eq!(join.len(), 1, "round {round}: {join:?}");
        assert_eq!(channel.phase(), Phase::Joining);
        channel.handle_call_outcome(
            &join[0],
            CallOutcome::Reverted("Expired()".into()),
            0,
            round * 100 + 1,
        );
    }
    assert_eq!(channel.phase(), Phase::Cancelled);
    assert!(
        channel
            .life()
            .cancel_reason
            .as_deref()
            .is_some_and(|r| r.contains("3 join tickets")),
        "{:?}",
        channel.life().cancel_reason
    );
    channel.handle_message(x.address(), good, 1_000);
    channel.handle_timeout(1_000_000);
    assert!(calls(&mut channel).is_empty());
}

#[test]
fn a_newcomer_without_a_ticket_may_stop_waiting() {
    let (x, o, n) = (key(1), key(2), key(3));
    let (code, p) = proposal(&x, &o);
    let mut channel = joining(&p, &code, &x, &n);
    channel.cancel("changed my mind".into(), 5).unwrap();
    assert_eq!(channel.phase(), Phase::Cancelled);
    let mut channel = joining(&p, &code, &x, &n);
    channel.handle_message(x.address(), ticket(&p, n.address(), 3, &[&x, &o]), 10);
    assert_eq!(calls(&mut channel).len(), 1);
    assert!(
        channel.cancel("too late".into(), 11).is_err(),
        "its join is under way"
    );
}

/// The channel of proposal `p` as opened on chain at `genesis_timestamp`.
fn spec_of(p: &ChannelProposal, genesis_timestamp: u64) -> entente_types::ChannelSpec {
    entente_types::ChannelSpec {
        channel_id: p.channel_id,
        domain: Domain::new(p.chain_id, p.manager),
        participants: p.participants.clone(),
        state_machine: p.state_machine,
        timing: p.timing,
        agreement_mode: p.agreement_mode,
        genesis_state: p.genesis_state.clone(),
        genesis_timestamp,
    }
}

#[test]
fn a_payout_that_reverts_for_another_reason_than_nothing_owed_is_tried_again() {
    let (x, o) = (key(1), key(2));
    let (code, p) = proposal(&x, &o);
    let spec = spec_of(&p, 1_700_000_000);
    let mut channel = Channel::live(
        x.clone(),
        spec,
        code,
        entente_state_manager::Config::default(),
        true,
        0,
    )
    .unwrap();
    calls(&mut channel);
    channel.handle_chain_event(
        entente_dispute::ChainEvent::ChannelClosed {
            fork: 0,
            height: 0,
            exits: vec![(x.address(), U256::from(5)), (o.address(), U256::from(5))],
        },
        10,
    );
    let mut now = 10;
    let mut tries = 0;
    for _ in 0..100 {
        let withdraw: Vec<ChainCall> = calls(&mut channel)
            .into_iter()
            .filter(|c| matches!(c, ChainCall::Withdraw { .. }))
            .collect();
        if withdraw.is_empty() {
            now += 100_000;
            channel.handle_timeout(now);
            if calls_pending(&channel) {
                continue;
            }
            break;
        }
        tries += 1;
        let reason = if tries < 3 {
            "out of gas"
        } else {
            "reverted with AlreadyClaimed(0)"
        };
        channel.handle_call_outcome(&withdraw[0], CallOutcome::Reverted(reason.into()), 0, now);
    }
    assert_eq!(tries, 3, "out of gas twice, then the chain says it was claimed");
    assert!(channel.is_done(), "{:?}", channel.life().duties);
}

fn calls_pending(channel: &Channel<LocalSigner>) -> bool {
    !channel.life().duties.is_empty()
}

#[test]
fn the_host_learns_whom_to_talk_to_before_the_messages_that_need_it() {
    let (x, o) = (key(1), key(2));
    let (code, p) = proposal(&x, &o);
    let mut channel = Channel::propose(x.clone(), p.clone(), code, 1_700_000_000);
    let mut effects = Vec::new();
    while let Some(e) = channel.poll_effect() {
        effects.push(e);
    }
    let peers = effects
        .iter()
        .position(|e| matches!(e, Effect::Peers(v) if *v == p.participants))
        .expect("the participants as peers");
    let proposal_sent = effects
        .iter()
        .position(|e| matches!(e, Effect::Broadcast(Message::Proposal(_))))
        .expect("the proposal broadcast");
    assert!(peers < proposal_sent, "{effects:?}");
    // Over: nobody any more, once.
    channel.cancel("no".into(), 5).unwrap();
    let mut left = 0;
    while let Some(e) = channel.poll_effect() {
        if matches!(&e, Effect::Peers(v) if v.is_empty()) {
            left += 1;
        }
    }
    channel.handle_timeout(10);
    while let Some(e) = channel.poll_effect() {
        assert!(!matches!(e, Effect::Peers(_)), "told once");
    }
    assert_eq!(left, 1);
}

#[test]
fn a_join_that_was_mined_is_never_sent_again_nor_given_up() {
    let (x, o, n) = (key(1), key(2), key(3));
    let (code, p) = proposal(&x, &o);
    let good = ticket(&p, n.address(), 3, &[&x, &o]);
    // Mined: we wait for the fork the chain starts, however long its event takes.
    let mut channel = joining(&p, &code, &x, &n);
    channel.handle_message(x.address(), good.clone(), 10);
    let join = calls(&mut channel);
    assert_eq!(join.len(), 1);
    channel.handle_call_outcome(&join[0], CallOutcome::Mined, 50_000, 20);
    for t in 1..20u64 {
        channel.handle_timeout(20 + t * 60_000);
        assert!(calls(&mut channel).is_empty(), "a mined join is not sent again");
    }
    assert!(channel.life().ticket.is_some(), "the ticket is kept for the fork");
    // Sent again after a restart and refused because it already landed: the same.
    let mut channel = joining(&p, &code, &x, &n);
    channel.handle_message(x.address(), good, 10);
    let join = calls(&mut channel);
    for _ in 0..5 {
        channel.handle_call_outcome(
            &join[0],
            CallOutcome::Reverted("reverted with AlreadyParticipant(0x..)".into()),
            0,
            30,
        );
    }
    assert_eq!(channel.phase(), Phase::Joining);
    assert!(channel.life().ticket.is_some());
    assert_eq!(channel.life().join_reverts, 0);
}

/// Hands `from`'s messages to `to`; keeps its chain calls. True if any message moved.
fn pump(
    from: &mut Channel<LocalSigner>,
    to: &mut Channel<LocalSigner>,
    now: u64,
    calls: &mut Vec<ChainCall>,
) -> bool {
    let sender = from.state_manager().unwrap().me();
    let mut messages = Vec::new();
    while let Some(effect) = from.poll_effect() {
        match effect {
            Effect::Broadcast(m) | Effect::Send { message: m, .. } => messages.push(m),
            Effect::Call(c) => calls.push(c),
            _ => {}
        }
    }
    let moved = !messages.is_empty();
    for m in messages {
        to.handle_message(sender, m, now);
    }
    moved
}

/// Carries every message between two live channels until none is left; returns the chain calls.
fn exchange(a: &mut Channel<LocalSigner>, b: &mut Channel<LocalSigner>, now: u64) -> Vec<ChainCall> {
    let mut calls = Vec::new();
    while pump(a, b, now, &mut calls) | pump(b, a, now, &mut calls) {}
    calls
}

/// X and O live in a tic-tac-toe channel whose genesis is at chain time `GENESIS` (local 0),
/// after X's first move at local 2 s, final on both sides.
const GENESIS: u64 = 1_700_000_000;

fn after_first_move() -> (
    Channel<LocalSigner>,
    Channel<LocalSigner>,
    ChannelProposal,
    LocalSigner,
) {
    let (x, o) = (key(1), key(2));
    let (code, p) = proposal(&x, &o);
    let spec = spec_of(&p, GENESIS);
    let config = entente_state_manager::Config::default;
    let mut cx = Channel::live(x.clone(), spec.clone(), code.clone(), config(), true, 0).unwrap();
    let mut co = Channel::live(o.clone(), spec, code, config(), true, 0).unwrap();
    cx.submit(TicTacToe::playCall { cell: 4 }.abi_encode().into(), 2_000)
        .unwrap();
    assert!(exchange(&mut cx, &mut co, 2_000).is_empty());
    for c in [&cx, &co] {
        let sm = c.state_manager().unwrap();
        assert_eq!((sm.tip(), sm.finalized_height()), (1, 1));
        assert_eq!(sm.obliged_writer(), Some(o.address()));
    }
    (cx, co, p, o)
}

#[test]
fn an_idle_channel_is_ticked_only_at_its_next_deadline_and_lets_its_evm_go() {
    let (mut cx, _co, p, _o) = after_first_move();
    let (genesis_timestamp, played_at) = (GENESIS, 2_000);
    // O stays silent. X's timeout dispute is due once chain time passes O's calldata deadline
    // (the move's timestamp + p2pTime + agreementTime + chainFallbackTime) by the one-second
    // margin; X is the designated sender, so without grace.
    let t = p.timing;
    let due_secs = genesis_timestamp + 2 + t.p2p_time + t.agreement_time + t.chain_fallback_time + 1;
    let due_ms = (due_secs + 1 - genesis_timestamp) * 1_000;
    // Drive X only at the times it asks for.
    let mut now = played_at;
    let mut ticks = Vec::new();
    let mut slept_at = None;
    let dispute = loop {
        let at = cx
            .poll_timeout()
            .expect("a channel with a deadline asks to be woken");
        // (A time already past is due at once.)
        now = now.max(at);
        ticks.push(now);
        cx.handle_timeout(now);
        if cx.state_manager().unwrap().machine_asleep() {
            slept_at.get_or_insert(now);
        }
        let calls = calls(&mut cx);
        if !calls.is_empty() {
            break calls;
        }
        assert!(ticks.len() < 10, "ticked at {ticks:?} without deciding");
        assert!(
            cx.poll_timeout().is_some_and(|t| t > now),
            "after a tick it asks for a time to come"
        );
    };
    assert!(
        matches!(&dispute[..], [ChainCall::Court(a)] if a.name() == "disputeTimeout"),
        "{dispute:?}"
    );
    assert_eq!(now, due_ms, "woken at the deadline itself (ticks at {ticks:?})");
    // One tick soon after the input, one to let the EVM go, then the deadline.
    assert!(ticks.len() <= 4, "ticks at {ticks:?}");
    assert!(
        slept_at.is_some_and(|t| t >= played_at + 10_000 && t < due_ms),
        "it let its EVM go in between: slept at {slept_at:?}, ticks at {ticks:?}"
    );
}

#[test]
fn blocks_neither_keep_a_quiet_channel_ticking_nor_its_evm_awake() {
    // O must move and nothing else is due for it: once quiet, a block every two seconds only
    // moves its clock; one tick lets its EVM go ten seconds after its last input.
    let (_cx, mut co, _p, _o) = after_first_move();
    let mut now = 2_000;
    let mut ticks = Vec::new();
    while let Some(at) = co.poll_timeout().filter(|t| *t <= now + 500) {
        now = now.max(at);
        co.handle_timeout(now);
        ticks.push(now);
        assert!(ticks.len() < 5, "not quiet after ticks at {ticks:?}");
    }
    ticks.clear();
    for k in 1..=30 {
        now = 2_000 + k * 2_000;
        co.handle_chain_event(
            entente_dispute::ChainEvent::Block {
                timestamp: GENESIS + now / 1_000,
            },
            now,
        );
        while co.poll_effect().is_some() {}
        if co.poll_timeout().is_some_and(|t| t <= now + 1_999) {
            let at = co.poll_timeout().unwrap().max(now);
            co.handle_timeout(at);
            ticks.push(at);
        }
    }
    // The first block changes the dispute handler's stored view (it keeps the chain head's
    // state, which the state manager no longer holds once height 1 is final): an input like
    // any other, one tick after it. The others change nothing.
    assert_eq!(
        ticks,
        vec![4_500, 12_000],
        "one tick after the first block, one to let the EVM go"
    );
    assert!(co.state_manager().unwrap().machine_asleep());
}

#[test]
fn a_block_that_changes_nothing_is_skipped_and_one_that_moves_the_clock_is_not() {
    // X moved and waits for O, with a timeout dispute due at O's calldata deadline. Once quiet,
    // blocks stamped as its clock reads are skipped (`handle_block` is false, no effect, the
    // same wake); a block stamped ahead of its clock (a chain warped forward) brings that
    // deadline closer and is handled.
    let (mut cx, _co, _p, _o) = after_first_move();
    let mut now = 2_000;
    let settle = |c: &mut Channel<LocalSigner>, now: &mut u64| {
        let mut ticks = 0;
        while let Some(at) = c.poll_timeout().filter(|t| *t <= *now + 500) {
            *now = (*now).max(at);
            c.handle_timeout(*now);
            while c.poll_effect().is_some() {}
            ticks += 1;
            assert!(ticks < 5, "not quiet");
        }
    };
    settle(&mut cx, &mut now);
    // A first block through the full path (which checks, in debug builds, that a block
    // `handle_block` would skip changes nothing), then quiet again.
    now += 2_000;
    cx.handle_chain_event(
        entente_dispute::ChainEvent::Block {
            timestamp: GENESIS + now / 1_000,
        },
        now,
    );
    while cx.poll_effect().is_some() {}
    settle(&mut cx, &mut now);
    let mut skipped = 0;
    for _ in 0..3 {
        now += 2_000;
        let wake = cx.poll_timeout();
        if wake.is_some_and(|t| t <= now) {
            break;
        }
        assert!(
            !cx.handle_block(GENESIS + now / 1_000, now),
            "a block stamped as the clock reads changes nothing here"
        );
        assert!(cx.poll_effect().is_none());
        assert_eq!(cx.poll_timeout(), wake, "the wake stays where it was");
        skipped += 1;
    }
    assert!(skipped > 0, "no block was skipped");
    // The chain jumps an hour ahead of X's clock: O's deadline comes an hour sooner.
    let wake = cx.poll_timeout().expect("X waits for O's deadline");
    assert!(
        cx.handle_block(GENESIS + now / 1_000 + 3_600, now),
        "a block that moves the clock is handled"
    );
    while cx.poll_effect().is_some() {}
    let after = cx.poll_timeout().expect("X still waits for O's deadline");
    assert!(after < wake, "the wake came sooner: {wake} -> {after}");
}

/// O asks `cx` to approve O's leave at height 1 with `deadline`, signed by O, at `at_ms`.
fn o_asks_to_leave(
    cx: &mut Channel<LocalSigner>,
    p: &ChannelProposal,
    o: &LocalSigner,
    deadline: u64,
    at_ms: u64,
) {
    let sm = cx.state_manager().unwrap();
    let approval = MembershipApproval {
        channel_id: p.channel_id,
        fork: 0,
        height: 1,
        state_hash: entente_types::state_hash(sm.state_at(1).unwrap()),
        change: MembershipChange::Leave {
            participant: o.address(),
        },
        deadline,
    };
    let digest = approval.digest(&Domain::new(p.chain_id, p.manager));
    let signature = o.sign_digest(&digest);
    cx.handle_message(
        o.address(),
        Message::Approval(Box::new(entente_types::ApprovalSignature { approval, signature })),
        at_ms,
    );
}

#[test]
fn a_refused_approval_that_chain_time_makes_signable_is_signed_after_a_block() {
    // O asks X to approve O's leave with a deadline 250 s after genesis: too far for X while
    // the chain time it knows is near genesis (at most twice the approval window, 200 s, ahead).
    // X hears no block for a while (its chain endpoint was down); then a block stamped as its
    // clock reads arrives: it does not move the clock, but it brings X's chain time to 60 s
    // after genesis, and the approval becomes signable. That block is no block to skip.
    let (mut cx, _co, p, o) = after_first_move();
    o_asks_to_leave(&mut cx, &p, &o, GENESIS + 250, 3_000);
    let me = cx.state_manager().unwrap().me();
    let signed = |c: &Channel<LocalSigner>| c.life().approvals.iter().any(|a| a.signatures.contains_key(&me));
    assert!(!signed(&cx), "refused at first");
    // Quiet until O's timeout deadline, its EVM let go.
    let mut now = 3_000;
    while let Some(at) = cx.poll_timeout().filter(|t| *t <= 55_000) {
        now = now.max(at);
        cx.handle_timeout(now);
        while cx.poll_effect().is_some() {}
    }
    assert!(!signed(&cx), "still refused");
    assert!(cx.poll_timeout().is_some_and(|t| t > 60_000), "quiet past 60 s");
    now = 60_000;
    assert!(
        cx.handle_block(GENESIS + now / 1_000, now),
        "a block that makes a kept approval signable is handled"
    );
    while cx.poll_effect().is_some() {}
    for _ in 0..4 {
        let Some(at) = cx.poll_timeout().filter(|t| *t <= now + 500) else {
            break;
        };
        now = now.max(at);
        cx.handle_timeout(now);
        while cx.poll_effect().is_some() {}
    }
    assert!(signed(&cx), "X signs the approval once chain time allows it");
}

#[test]
fn a_view_that_builds_a_quiet_channels_evm_again_is_let_go_after_a_block() {
    // A quiet channel whose EVM was let go: the application's `view` builds it again without
    // an input. The next block is not skipped, so a tick lets the EVM go again.
    let (_cx, mut co, _p, _o) = after_first_move();
    let mut now = 2_000;
    while let Some(at) = co.poll_timeout().filter(|t| *t <= now + 20_000) {
        now = now.max(at);
        co.handle_timeout(now);
        while co.poll_effect().is_some() {}
    }
    assert!(co.state_manager().unwrap().machine_asleep(), "let go while quiet");
    co.view(TicTacToe::getGameCall {}.abi_encode().into()).unwrap();
    assert!(
        !co.state_manager().unwrap().machine_asleep(),
        "built again by the view"
    );
    now += 2_000;
    assert!(
        co.handle_block(GENESIS + now / 1_000, now),
        "a block reaching an awake EVM that nothing will let go is handled"
    );
    while co.poll_effect().is_some() {}
    while let Some(at) = co.poll_timeout().filter(|t| *t <= now + 20_000) {
        now = now.max(at);
        co.handle_timeout(now);
        while co.poll_effect().is_some() {}
    }
    assert!(co.state_manager().unwrap().machine_asleep(), "let go again");
}

#[test]
fn an_approval_we_refuse_does_not_keep_a_channel_ticking() {
    // O asks X to approve O's leave with a deadline further than X accepts: X refuses it and
    // waits for an input that could change that; it does not look at it again every 500 ms.
    let (mut cx, _co, p, o) = after_first_move();
    o_asks_to_leave(&mut cx, &p, &o, GENESIS + 1_000_000, 3_000);
    assert_eq!(cx.life().approvals.len(), 1, "kept, with O's signature");
    assert!(
        !cx.life().approvals[0]
            .signatures
            .contains_key(&cx.state_manager().unwrap().me()),
        "not signed by X"
    );
    let mut now = 3_000;
    let mut ticks = Vec::new();
    while let Some(at) = cx.poll_timeout().filter(|t| *t <= now + 500) {
        now = now.max(at);
        cx.handle_timeout(now);
        while cx.poll_effect().is_some() {}
        ticks.push(now);
        assert!(ticks.len() < 5, "still ticking at the cadence: {ticks:?}");
    }
    // The next wake is X's own (letting its EVM go ten seconds after the input), not the
    // approval's.
    assert!(
        cx.poll_timeout().is_some_and(|t| t >= 13_000),
        "quiet after ticks at {ticks:?}, next {:?}",
        cx.poll_timeout()
    );
}

#[test]
fn an_invitee_that_accepted_before_seeing_a_block_waits_for_the_open_from_its_first_block() {
    // A node that had just started accepts before its first block: chain time 0.
    let (x, o) = (key(1), key(2));
    let (code, p) = proposal(&x, &o);
    let wait = 2 * p.funding_period;
    let mut invitee = Channel::accept(o.clone(), x.address(), p, code, 0);
    calls(&mut invitee);
    let first = 1_700_000_000;
    invitee.handle_block(first, 1_000);
    assert_eq!(invitee.phase(), Phase::Funding, "given up at the first block");
    invitee.handle_block(first + wait, 2_000);
    assert_eq!(invitee.phase(), Phase::Funding);
    // The proposer never opens it: given up once the wait has passed since the first block.
    invitee.handle_block(first + wait + 1, 3_000);
    assert_eq!(invitee.phase(), Phase::Cancelled);
}
