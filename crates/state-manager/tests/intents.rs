//! Machines where anyone may write (the `Payments` machine): participants pay whenever they want,
//! concurrently; each payment is a signed intent and the height's sequencer writes every intent
//! it holds in one transaction. Nobody is ever obliged to write, every payment becomes final, the
//! balances are the payments' sum, and forged or replayed intents are refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout)] // test code

mod common;

use std::collections::VecDeque;

use alloy_primitives::U256;
use alloy_sol_types::SolCall;
use common::{GENESIS_TS, key};
use entente_contracts::{Payments, artifacts};
use entente_evm_runtime::{MachineCode, MachineInstance};
use entente_state_manager::{Config, Effect, Event, Rejection, StateManager, SubmitError};
use entente_types::{
    Address, AgreementMode, B256, Bytes, ChannelSpec, Domain, LocalSigner, Message, SignedIntent, Signer,
    Timing,
};

const N: usize = 3;
const DEPOSIT: u64 = 100;

fn code() -> MachineCode {
    MachineCode::from_artifact_json(artifacts::PAYMENTS).unwrap()
}

/// Three peers of one payment channel.
struct Net {
    peers: Vec<StateManager<LocalSigner>>,
    keys: Vec<LocalSigner>,
    queue: VecDeque<(usize, usize, Message)>,
    rng: u64,
    now_ms: u64,
    dropped: Vec<(Address, u64, String)>,
}

impl Net {
    fn new(mode: AgreementMode) -> Self {
        let code = code();
        let keys: Vec<LocalSigner> = (1..=N as u8).map(key).collect();
        let who: Vec<Address> = keys.iter().map(Signer::address).collect();
        let genesis = MachineInstance::deploy(&code, 5_000_000)
            .unwrap()
            .view_decode(&Payments::initialStateCall {
                participants: who.clone(),
                deposits: vec![U256::from(DEPOSIT); N],
            })
            .unwrap();
        let spec = ChannelSpec {
            channel_id: B256::repeat_byte(0xc3),
            domain: Domain::new(31337, Address::repeat_byte(0x99)),
            participants: who,
            state_machine: Address::ZERO,
            timing: Timing::default(),
            agreement_mode: mode,
            genesis_state: genesis,
            genesis_timestamp: GENESIS_TS,
        };
        let peers = keys
            .iter()
            .map(|k| StateManager::new(spec.clone(), k.clone(), &code, Config::default(), 0).unwrap())
            .collect();
        Self {
            peers,
            keys,
            queue: VecDeque::new(),
            rng: 0x5eed,
            now_ms: 0,
            dropped: Vec::new(),
        }
    }

    fn address(&self, i: usize) -> Address {
        self.keys[i].address()
    }

    fn random(&mut self, below: u64) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % below.max(1)
    }

    fn collect(&mut self) {
        for i in 0..N {
            while let Some(effect) = self.peers[i].poll_effect() {
                match effect {
                    Effect::Broadcast(m) => {
                        for j in (0..N).filter(|j| *j != i) {
                            self.queue.push_back((i, j, m.clone()));
                        }
                    }
                    Effect::Send { to, message } => {
                        let j = (0..N).find(|j| self.address(*j) == to).unwrap();
                        self.queue.push_back((i, j, message));
                    }
                    Effect::Notify(Event::IntentDropped {
                        issuer,
                        nonce,
                        reason,
                        ..
                    }) => {
                        self.dropped.push((issuer, nonce, reason));
                    }
                    Effect::Notify(_) | Effect::Persist(_) => {}
                }
            }
        }
    }

    /// Delivers every message in a seeded random order until nothing is left; checks on every
    /// step that nobody is obliged to write.
    fn run(&mut self) {
        loop {
            self.collect();
            if self.queue.is_empty() {
                return;
            }
            let k = self.random(self.queue.len() as u64) as usize;
            let (from, to, message) = self.queue.remove(k).unwrap();
            self.now_ms += 1;
            let sender = self.address(from);
            let _ = self.peers[to].handle_message(sender, message, self.now_ms);
            for p in &self.peers {
                assert_eq!(p.obliged_writer(), None, "nobody is ever obliged to write");
                assert!(p.is_open());
            }
        }
    }

    fn balances(&self, i: usize) -> Vec<U256> {
        let mut machine = MachineInstance::deploy(&code(), 5_000_000).unwrap();
        let state = self.peers[i].state_at(self.peers[i].tip()).unwrap();
        machine.set_state(state).unwrap();
        machine
            .view_decode(&Payments::getPaymentStateCall {})
            .unwrap()
            .balances
    }
}

fn pay(to: Address, amount: u64) -> Bytes {
    Payments::payCall {
        to,
        amount: U256::from(amount),
    }
    .abi_encode()
    .into()
}

fn concurrent_payments_all_become_final(mode: AgreementMode) {
    let mut net = Net::new(mode);
    let mut expected = [DEPOSIT as i64; N];
    let mut sent = 0;
    for _round in 0..30 {
        // One, two or three payers at once, each submitting before anyone hears of the others.
        let payers = 1 + net.random(3) as usize;
        let first = net.random(N as u64) as usize;
        for k in 0..payers {
            let from = (first + k) % N;
            let to = (from + 1 + net.random(N as u64 - 1) as usize) % N;
            let amount = 1 + net.random(3);
            let data = pay(net.address(to), amount);
            net.now_ms += 1;
            let now = net.now_ms;
            net.peers[from].submit(data, now).unwrap();
            expected[from] -= amount as i64;
            expected[to] += amount as i64;
            sent += 1;
        }
        net.run();
    }
    assert!(
        net.dropped.is_empty(),
        "no payment was dropped: {:?}",
        net.dropped
    );
    let tip = net.peers[0].tip();
    assert!(tip > 0 && tip <= sent, "{sent} payments in {tip} heights");
    for i in 0..N {
        assert_eq!(net.peers[i].tip(), tip, "peer {i} has every height");
        assert_eq!(
            net.peers[i].finalized_height(),
            tip,
            "peer {i}: every payment is final"
        );
        assert_eq!(
            net.peers[i].pending_intents().count(),
            0,
            "peer {i} holds no intent"
        );
        let want: Vec<U256> = expected.iter().map(|b| U256::from(*b as u64)).collect();
        assert_eq!(net.balances(i), want, "peer {i}'s balances are the payments' sum");
    }
    // Each height was written by its sequencer.
    for h in 1..=tip {
        let writer = net.peers[0]
            .agreement()
            .entry(h)
            .map(|e| e.transaction.participant);
        if let Some(writer) = writer {
            assert_eq!(writer, net.address(h as usize % N), "height {h}'s writer");
        }
    }
    println!("{sent} payments from concurrent payers in {tip} heights ({mode:?})");
}

#[test]
fn concurrent_payments_all_become_final_with_explicit_confirmations() {
    concurrent_payments_all_become_final(AgreementMode::ExplicitConfirmations);
}

#[test]
fn concurrent_payments_all_become_final_with_virtual_voting() {
    concurrent_payments_all_become_final(AgreementMode::VirtualVotingOnly);
}

#[test]
fn forged_replayed_and_unpayable_intents_are_refused() {
    let mut net = Net::new(AgreementMode::ExplicitConfirmations);
    let (a, b, c) = (net.address(0), net.address(1), net.address(2));
    // More than the balance: refused before it is sent.
    let refused = net.peers[1].submit(pay(a, DEPOSIT + 1), 1).unwrap_err();
    assert!(
        matches!(&refused, SubmitError::InvalidMove(e) if e.to_string().contains("InsufficientBalance")),
        "{refused}"
    );
    // Peer 0 signs an intent in peer 1's name: refused, and it proves misbehaviour.
    let mut forged = SignedIntent::sign(
        &net.keys[0],
        B256::repeat_byte(0xc3),
        0,
        GENESIS_TS + 999,
        pay(a, 50),
    )
    .unwrap();
    forged.issuer = b;
    let rejection = net.peers[2]
        .handle_message(a, Message::Intent(Box::new(forged)), 2)
        .unwrap_err();
    assert!(
        matches!(rejection, Rejection::IntentSignature { .. }),
        "{rejection}"
    );
    assert!(rejection.is_misbehaviour());
    // A real payment goes through; sent again afterwards, it is stale.
    net.peers[1].submit(pay(c, 7), 3).unwrap();
    net.collect();
    let sent = net
        .queue
        .iter()
        .find_map(|(_, _, m)| match m {
            Message::Intent(i) => Some((**i).clone()),
            _ => None,
        })
        .expect("the intent went out");
    net.run();
    assert_eq!(net.peers[2].finalized_height(), 1);
    let stale = net.peers[2]
        .handle_message(b, Message::Intent(Box::new(sent)), 10)
        .unwrap_err();
    assert!(
        matches!(
            stale,
            Rejection::StaleIntent {
                nonce: 0,
                next: 1,
                ..
            }
        ),
        "{stale}"
    );
    // An outsider's intent: refused.
    let outsider = key(9);
    let intent =
        SignedIntent::sign(&outsider, B256::repeat_byte(0xc3), 0, GENESIS_TS + 999, pay(a, 1)).unwrap();
    let rejection = net.peers[0]
        .handle_message(outsider.address(), Message::Intent(Box::new(intent)), 11)
        .unwrap_err();
    assert!(matches!(rejection, Rejection::NotAParticipant(_)), "{rejection}");
    assert_eq!(
        net.balances(2),
        [DEPOSIT, DEPOSIT - 7, DEPOSIT + 7].map(U256::from).to_vec()
    );
}

#[test]
fn a_payment_after_a_long_idle_spell_is_not_late() {
    // Nobody writes for far longer than p2pTime + agreementTime: the next payment is still
    // taken by everyone (nobody was obliged to write, so nothing came late).
    let mut net = Net::new(AgreementMode::ExplicitConfirmations);
    let b = net.address(1);
    net.now_ms = 600_000;
    let now = net.now_ms;
    net.peers[0].submit(pay(b, 3), now).unwrap();
    net.run();
    for i in 0..N {
        assert_eq!(net.peers[i].finalized_height(), 1, "peer {i} took the payment");
        assert!(net.peers[i].written_open(1));
    }
}

#[test]
fn a_payment_posted_on_chain_by_any_participant_is_taken() {
    // The chain lets any participant write in an open state (the machine's `_mayWrite`); a
    // transaction posted there by one who is not the height's sequencer is followed by all.
    let mut net = Net::new(AgreementMode::ExplicitConfirmations);
    let (a, b) = (net.address(0), net.address(1));
    assert_ne!(
        net.peers[2].next_writer(),
        net.address(2),
        "peer 2 is not height 1's sequencer"
    );
    let spec_domain = Domain::new(31337, Address::repeat_byte(0x99));
    let prev = net.peers[2].tip_state_hash();
    let mut transaction = entente_types::Transaction {
        channelId: B256::repeat_byte(0xc3),
        forkCnt: 0,
        height: 1,
        participant: net.address(2),
        timestamp: GENESIS_TS + 5,
        prevStateHash: prev,
        stateHash: B256::ZERO,
        data: pay(a, 9),
    };
    let mut machine = MachineInstance::deploy(&code(), 5_000_000).unwrap();
    machine.set_state(net.peers[2].state_at(0).unwrap()).unwrap();
    transaction.stateHash = machine.apply(&transaction, None).unwrap().state_hash;
    let signature = net.keys[2].sign_digest(&spec_domain.digest(&transaction));
    let posted = entente_types::SignedTransaction {
        transaction,
        signature,
    };
    let writer = net.address(2);
    for i in 0..N {
        net.peers[i]
            .apply_posted(writer, posted.clone(), 10_000)
            .unwrap_or_else(|e| panic!("peer {i} refused the posted payment: {e}"));
        assert_eq!(net.peers[i].tip(), 1);
    }
    // ... but the same transaction sent over the network by a non-sequencer is refused.
    let mut fresh = Net::new(AgreementMode::ExplicitConfirmations);
    let refused = fresh.peers[0]
        .handle_message(b, Message::Transaction(posted), 10_000)
        .unwrap_err();
    assert!(matches!(refused, Rejection::NotYourTurn { .. }), "{refused}");
}

#[test]
fn intents_are_bounded_in_size_nonce_lifetime_and_number() {
    let mut net = Net::new(AgreementMode::ExplicitConfirmations);
    let (a, c) = (net.address(0), net.address(2));
    let channel = B256::repeat_byte(0xc3);
    // Too large, submitted or received.
    let mut big = pay(a, 1).to_vec();
    big.resize(entente_state_manager::MAX_INTENT_DATA + 1, 0);
    let refused = net.peers[1].submit(big.clone().into(), 1).unwrap_err();
    assert!(matches!(refused, SubmitError::IntentTooLarge { .. }), "{refused}");
    let intent = SignedIntent::sign(&net.keys[2], channel, 0, GENESIS_TS + 60, big.into()).unwrap();
    let refused = net.peers[0]
        .handle_message(c, Message::Intent(Box::new(intent)), 2)
        .unwrap_err();
    assert!(matches!(refused, Rejection::IntentTooLarge { .. }), "{refused}");
    // Far ahead of the next nonce, or living too long.
    let ahead = SignedIntent::sign(&net.keys[2], channel, 500, GENESIS_TS + 60, pay(a, 1)).unwrap();
    let refused = net.peers[0]
        .handle_message(c, Message::Intent(Box::new(ahead)), 3)
        .unwrap_err();
    assert!(
        matches!(refused, Rejection::IntentOutOfBounds { .. }),
        "{refused}"
    );
    let forever = SignedIntent::sign(&net.keys[2], channel, 0, u64::MAX, pay(a, 1)).unwrap();
    let refused = net.peers[0]
        .handle_message(c, Message::Intent(Box::new(forever)), 4)
        .unwrap_err();
    assert!(
        matches!(refused, Rejection::IntentOutOfBounds { .. }),
        "{refused}"
    );
    // One issuer holds at most its nonce window in the pool (of peer 0, which is not the
    // sequencer of height 1 and so only keeps them).
    for nonce in 0..64 {
        let intent = SignedIntent::sign(&net.keys[2], channel, nonce, GENESIS_TS + 60, pay(a, 1)).unwrap();
        net.peers[0]
            .handle_message(c, Message::Intent(Box::new(intent)), 5)
            .unwrap();
    }
    let beyond = SignedIntent::sign(&net.keys[2], channel, 64, GENESIS_TS + 60, pay(a, 1)).unwrap();
    let refused = net.peers[0]
        .handle_message(c, Message::Intent(Box::new(beyond)), 6)
        .unwrap_err();
    assert!(
        matches!(refused, Rejection::IntentOutOfBounds { .. }),
        "{refused}"
    );
    assert_eq!(net.peers[0].pending_intents().count(), 64);
}

#[test]
fn an_intent_the_sequencers_leave_out_waits_for_the_court_and_its_forced_transaction_is_taken() {
    let mut net = Net::new(AgreementMode::ExplicitConfirmations);
    let (a, b, c) = (net.address(0), net.address(1), net.address(2));
    // Height 1's sequencer is peer 1; peer 0's intent reaches nobody.
    assert_eq!(net.peers[0].next_writer(), b);
    net.peers[0].submit(pay(c, 4), 1_000).unwrap();
    net.collect();
    net.queue.retain(|(from, _, _)| *from != 0);
    net.run();
    assert_eq!(net.peers[0].tip(), 0, "nothing written yet");
    // Before p2pTime it is not left out; after it, it is (for the dispute layer to post).
    assert!(net.peers[0].left_out_intent(20_000).is_none());
    let intent = net.peers[0]
        .left_out_intent(40_000)
        .expect("left out after p2pTime");
    assert_eq!(intent.issuer, a);
    // Peer 2 pays too; the sequencer writes peer 2's payment and leaves peer 0's out. Peer 0
    // confirms nothing that leaves its intent out; peer 2 (who never held it) takes it.
    net.peers[2].submit(pay(a, 7), 40_000).unwrap();
    net.collect();
    net.queue.retain(|(_, to, _)| *to != 0);
    let mut censored = None;
    while let Some((from, to, message)) = net.queue.pop_front() {
        let _ = net.peers[to].handle_message(net.keys[from].address(), message, 40_100);
        net.collect();
        net.queue.retain(|(_, to, _)| *to != 0);
        if censored.is_none()
            && let Some(entry) = net.peers[1].agreement().entry(1)
        {
            censored = Some(entente_types::SignedTransaction {
                transaction: entry.transaction.clone(),
                signature: entry.signatures[&b],
            });
        }
    }
    let censored = censored.expect("the sequencer wrote height 1");
    let refused = net.peers[0]
        .handle_message(b, Message::Transaction(censored.clone()), 40_200)
        .unwrap_err();
    assert!(
        matches!(refused, Rejection::LeavesOutIntent { nonce: 0 }),
        "{refused}"
    );
    assert_eq!(net.peers[0].tip(), 0);
    // From the chain peer 0 takes it (the chain's head is what the chain took).
    net.peers[0].apply_posted(b, censored, 40_300).unwrap();
    assert_eq!(net.peers[0].tip(), 1);
    // The court forces the intent on the head: its transaction (writer peer 0, the head's stamp,
    // the one intent), signed by nobody. Every peer at the head takes it and confirms it.
    let head = net.peers[0].agreement().entry(1).unwrap().transaction.clone();
    let mut forced = entente_types::Transaction {
        channelId: head.channelId,
        forkCnt: head.forkCnt,
        height: 2,
        participant: a,
        timestamp: head.timestamp,
        prevStateHash: head.stateHash,
        stateHash: B256::ZERO,
        data: entente_evm_runtime::apply_intents_calldata(std::slice::from_ref(&intent)),
    };
    let state = net.peers[0].state_at(1).unwrap().clone();
    forced.stateHash = entente_types::state_hash(&net.peers[0].run_on(&state, &forced).unwrap());
    // A forged one (another state) is refused.
    let mut forged = forced.clone();
    forged.stateHash = B256::repeat_byte(1);
    assert!(net.peers[2].apply_forced(forged, 50_000).is_err());
    for i in [0, 2] {
        net.peers[i].apply_forced(forced.clone(), 50_000).unwrap();
        assert_eq!(net.peers[i].tip(), 2);
        let entry = net.peers[i].agreement().entry(2).unwrap();
        assert!(entry.signatures.contains_key(&net.address(i)), "confirmed");
        assert_eq!(
            net.balances(i),
            [DEPOSIT + 7 - 4, DEPOSIT, DEPOSIT - 7 + 4]
                .map(U256::from)
                .to_vec()
        );
    }
    assert!(net.peers[0].left_out_intent(50_000).is_none(), "applied");
}

#[test]
fn no_membership_approval_is_co_signed_while_our_intents_are_under_way() {
    // A co-signed approval holds our signatures: it would keep us from sequencing our intents or
    // taking them to the chain.
    let mut net = Net::new(AgreementMode::ExplicitConfirmations);
    let c = net.address(2);
    let approval = |sm: &StateManager<LocalSigner>| entente_types::MembershipApproval {
        channel_id: sm.spec().channel_id,
        fork: sm.fork().fork,
        height: sm.tip(),
        state_hash: entente_types::state_hash(sm.state_at(sm.tip()).unwrap()),
        change: entente_types::MembershipChange::Leave { participant: c },
        deadline: GENESIS_TS + 20,
    };
    let context = entente_state_manager::ApprovalContext {
        chain_now: GENESIS_TS + 1,
        sponsor: false,
        join_allowed: false,
    };
    assert_eq!(
        net.peers[0].approval_refusal(&approval(&net.peers[0]), &context),
        Ok(())
    );
    // Peer 0 pays; height 1 is peer 1's to sequence, so the intent waits in peer 0's pool.
    net.peers[0].submit(pay(c, 1), 1).unwrap();
    assert_eq!(
        net.peers[0].approval_refusal(&approval(&net.peers[0]), &context),
        Err(entente_state_manager::ApprovalRefusal::IntentsUnderWay)
    );
    net.run();
    assert_eq!(net.peers[0].finalized_height(), 1);
    assert_eq!(
        net.peers[0].approval_refusal(&approval(&net.peers[0]), &context),
        Ok(()),
        "once applied, nothing holds it"
    );
}

#[test]
fn an_intent_that_expires_unapplied_is_reported_to_its_issuer() {
    let mut net = Net::new(AgreementMode::ExplicitConfirmations);
    let (a, c) = (net.address(0), net.address(2));
    net.peers[0].submit(pay(c, 1), 1_000).unwrap();
    // Nothing is delivered, and peer 0 next looks long after the intent's expiry.
    net.peers[0].handle_timeout(1_000_000);
    net.collect();
    assert!(
        net.dropped
            .iter()
            .any(|(issuer, nonce, reason)| *issuer == a && *nonce == 0 && reason.contains("expired")),
        "{:?}",
        net.dropped
    );
    assert_eq!(net.peers[0].pending_intents().count(), 0);
}

/// Delivers, until none is left, the queued messages `pass` lets through (the others stay queued).
fn deliver(net: &mut Net, pass: impl Fn(usize, usize, &Message) -> bool, now_ms: u64) {
    loop {
        net.collect();
        let Some(k) = net.queue.iter().position(|(f, t, m)| pass(*f, *t, m)) else {
            return;
        };
        let (from, to, message) = net.queue.remove(k).unwrap();
        let sender = net.address(from);
        let _ = net.peers[to].handle_message(sender, message, now_ms);
    }
}

#[test]
fn open_heights_are_signed_in_step_and_not_at_all_while_the_court_holds_an_intent() {
    let mut net = Net::new(AgreementMode::ExplicitConfirmations);
    let (a, b, c) = (net.address(0), net.address(1), net.address(2));
    // Height 1 (peer 1 sequences) applies peer 0's payment; everyone has it, peer 0 confirms it,
    // but the others' confirmations do not reach peer 0: height 1 is final for peers 1 and 2 only.
    net.peers[0].submit(pay(c, 4), 1_000).unwrap();
    deliver(
        &mut net,
        |_, to, m| to != 0 || matches!(m, Message::Transaction(_)),
        1_100,
    );
    assert_eq!(net.peers[0].tip(), 1);
    assert_eq!(net.peers[0].finalized_height(), 0);
    assert_eq!(net.peers[2].finalized_height(), 1);
    // Peer 1 pays; height 2's sequencer (peer 2) writes it. Peer 0's tip is not final: the
    // transaction at height 2 waits rather than be confirmed beside an unproven height 1.
    net.peers[1].submit(pay(a, 2), 1_200).unwrap();
    deliver(
        &mut net,
        |_, to, m| to != 0 || matches!(m, Message::Transaction(_)),
        1_300,
    );
    assert_eq!(net.peers[2].tip(), 2);
    assert_eq!(net.peers[0].tip(), 1, "height 2 waits for height 1 to be final");
    // Height 1's confirmations arrive: it is final, and height 2 goes in.
    deliver(&mut net, |_, _, _| true, 1_400);
    assert_eq!(net.peers[0].tip(), 2);
    assert_eq!(net.peers[0].finalized_height(), 2);

    // The court holds an intent: peer 0 applies, confirms and writes nothing from its peers.
    net.peers[0].set_court_hold(true);
    net.peers[2].submit(pay(b, 3), 2_000).unwrap();
    net.collect();
    // Height 3's sequencer is peer 0: it writes nothing while the court holds an intent.
    net.peers[0].handle_timeout(2_100);
    net.collect();
    assert_eq!(net.peers[0].tip(), 2);
    assert!(
        !net.queue
            .iter()
            .any(|(from, _, m)| *from == 0 && matches!(m, Message::Transaction(_))),
        "nothing written"
    );
    // And a transaction from a peer is refused meanwhile (the chain alone moves the channel).
    let mut other = net.peers[1].agreement().entry(2).unwrap().clone().transaction;
    other.height = 3;
    other.participant = b;
    let sig = net.keys[1].sign_digest(&net.peers[1].spec().domain.digest(&other));
    let refused = net.peers[0]
        .handle_message(
            b,
            Message::Transaction(entente_types::SignedTransaction {
                transaction: other,
                signature: sig,
            }),
            2_200,
        )
        .unwrap_err();
    assert!(matches!(refused, Rejection::CourtHoldsIntent), "{refused}");
    // Once the hold ends, peer 0 sequences again.
    net.peers[0].set_court_hold(false);
    net.peers[0].handle_timeout(2_300);
    net.run();
    assert_eq!(net.peers[0].tip(), 3);
    assert_eq!(net.peers[1].tip(), 3);
}
