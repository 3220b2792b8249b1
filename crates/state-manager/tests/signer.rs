//! A signer that is not ready or fails: nothing is signed or sent in its place, the height stays
//! free, and what waited is signed once the signer answers.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use std::cell::Cell;
use std::rc::Rc;

use alloy_sol_types::SolCall;
use entente_contracts::TicTacToe;
use entente_state_manager::{Config, Effect, PersistRecord, StateManager, SubmitError};
use entente_types::{
    Address, AgreementMode, B256, LocalSigner, Message, SignError, Signature, Signer, Timing,
};

/// A key whose signatures are withheld while `open` is false (`Pending`) or `broken` is true.
#[derive(Clone)]
struct Gated {
    key: LocalSigner,
    open: Rc<Cell<bool>>,
    broken: Rc<Cell<bool>>,
}

impl Signer for Gated {
    fn address(&self) -> Address {
        self.key.address()
    }

    fn try_sign_digest(&self, digest: &B256) -> Result<Signature, SignError> {
        if self.broken.get() {
            return Err(SignError::Failed("unplugged".into()));
        }
        if !self.open.get() {
            return Err(SignError::Pending);
        }
        Ok(self.key.sign_digest(digest))
    }
}

mod common;
use common::{key, tictactoe, tictactoe_spec};

fn managers() -> (StateManager<Gated>, StateManager<Gated>, Gated, Gated) {
    let code = tictactoe();
    let gate = |k: LocalSigner| Gated {
        key: k,
        open: Rc::new(Cell::new(true)),
        broken: Rc::new(Cell::new(false)),
    };
    let (x, o) = (gate(key(1)), gate(key(2)));
    let (spec, _) = tictactoe_spec(
        &code,
        x.address(),
        o.address(),
        Timing::default(),
        AgreementMode::ExplicitConfirmations,
    );
    let xm = StateManager::new(spec.clone(), x.clone(), &code, Config::default(), 0).unwrap();
    let om = StateManager::new(spec, o.clone(), &code, Config::default(), 0).unwrap();
    (xm, om, x, o)
}

fn drain(sm: &mut StateManager<Gated>) -> Vec<Effect> {
    sm.drain_effects().collect()
}

fn messages(effects: &[Effect]) -> Vec<Message> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Broadcast(m) | Effect::Send { message: m, .. } => Some(m.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_move_the_signer_cannot_sign_yet_is_refused_and_leaves_the_height_free() {
    let (mut x, _o, xs, _) = managers();
    xs.open.set(false);
    let play = |cell: u8| TicTacToe::playCall { cell }.abi_encode().into();
    let refused = x.submit(play(4), 1_000);
    assert_eq!(refused, Err(SubmitError::Signer(SignError::Pending)));
    assert!(
        drain(&mut x).is_empty(),
        "nothing recorded or sent for an unsigned move"
    );
    xs.open.set(true);
    xs.broken.set(true);
    assert!(matches!(
        x.submit(play(4), 1_100),
        Err(SubmitError::Signer(SignError::Failed(_)))
    ));
    assert_eq!(x.tip(), 0);
    // Once the signer answers, another move at the same height is signed: the height stayed free.
    xs.broken.set(false);
    x.submit(play(0), 1_200).unwrap();
    assert_eq!(x.tip(), 1);
    let effects = drain(&mut x);
    assert!(
        effects
            .iter()
            .any(|e| matches!(e, Effect::Persist(PersistRecord::OwnSignature { height: 1, .. })))
    );
}

#[test]
fn a_confirmation_the_signer_could_not_give_is_given_on_a_later_timeout() {
    let (mut x, mut o, _, os) = managers();
    x.submit(TicTacToe::playCall { cell: 4 }.abi_encode().into(), 1_000)
        .unwrap();
    let sent = messages(&drain(&mut x));
    os.open.set(false);
    for m in sent {
        o.handle_message(x.me(), m, 1_100).unwrap();
    }
    let effects = drain(&mut o);
    assert!(
        !messages(&effects)
            .iter()
            .any(|m| matches!(m, Message::Confirmation(_))),
        "no confirmation without a signature"
    );
    assert!(
        !effects
            .iter()
            .any(|e| matches!(e, Effect::Persist(PersistRecord::OwnSignature { .. }))),
        "no own-signature record for a signature not made"
    );
    // Still not ready at the next timeout: still nothing.
    o.handle_timeout(1_200);
    assert!(
        !messages(&drain(&mut o))
            .iter()
            .any(|m| matches!(m, Message::Confirmation(_)))
    );
    // Ready: the next timeout confirms, after recording the digest.
    os.open.set(true);
    o.handle_timeout(1_300);
    let effects = drain(&mut o);
    let record = effects
        .iter()
        .position(|e| matches!(e, Effect::Persist(PersistRecord::OwnSignature { height: 1, .. })))
        .expect("recorded");
    let confirmation = effects
        .iter()
        .position(|e| matches!(e, Effect::Broadcast(Message::Confirmation(_))))
        .expect("confirmed");
    assert!(
        record < confirmation,
        "the digest is recorded before the signature leaves"
    );
    for m in messages(&effects) {
        let _ = x.handle_message(o.me(), m, 1_400);
    }
    assert_eq!(x.finalized_height(), 1);
}
