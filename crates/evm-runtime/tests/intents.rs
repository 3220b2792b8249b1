//! The payment machine's intents through revm, signed in Rust: the Rust digest is the
//! machine's, a sequencer applies several issuers' intents in one transaction, and a forged or
//! replayed intent is refused with the machine's decoded error.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use alloy_primitives::{Address, B256, Bytes, U256};
use alloy_sol_types::SolCall;
use entente_contracts::{Payments, artifacts};
use entente_evm_runtime::{MachineCode, MachineInstance, apply_intents_calldata};
use entente_types::{LocalSigner, SignedIntent, Signer, Transaction, state_hash};

const GAS: u64 = 5_000_000;
const CHANNEL: B256 = B256::repeat_byte(7);
const T0: u64 = 1_700_000_000;

fn keys() -> Vec<LocalSigner> {
    (1..=3u8)
        .map(|k| LocalSigner::from_bytes(&B256::repeat_byte(k)).unwrap())
        .collect()
}

fn payments(who: &[Address]) -> MachineInstance {
    let code = MachineCode::from_artifact_json(artifacts::PAYMENTS).unwrap();
    let mut m = MachineInstance::deploy(&code, GAS).unwrap();
    let genesis = m
        .view_decode(&Payments::initialStateCall {
            participants: who.to_vec(),
            deposits: vec![U256::from(100u64); who.len()],
        })
        .unwrap();
    m.set_state(&genesis).unwrap();
    m
}

/// The sequencer's calldata, as the runtime builds it for the state manager.
fn as_call(intents: &[SignedIntent]) -> Bytes {
    apply_intents_calldata(intents)
}

fn pay(to: Address, amount: u64) -> Bytes {
    Payments::payCall {
        to,
        amount: U256::from(amount),
    }
    .abi_encode()
    .into()
}

fn transaction(m: &mut MachineInstance, height: u64, writer: Address, data: Bytes) -> Transaction {
    Transaction {
        channelId: CHANNEL,
        forkCnt: 0,
        height,
        participant: writer,
        timestamp: T0 + height,
        prevStateHash: state_hash(&m.state().unwrap()),
        stateHash: B256::ZERO,
        data,
    }
}

fn balances(m: &mut MachineInstance) -> Vec<U256> {
    m.view_decode(&Payments::getPaymentStateCall {}).unwrap().balances
}

#[test]
fn the_rust_digest_is_the_machines() {
    let k = keys();
    let mut m = payments(&[k[0].address(), k[1].address()]);
    let signed = SignedIntent::sign(&k[1], CHANNEL, 3, T0 + 99, pay(k[0].address(), 5)).unwrap();
    let on_machine = m
        .view_decode(&Payments::intentDigestCall {
            intent: Payments::Intent {
                channelId: signed.channel_id,
                issuer: signed.issuer,
                nonce: signed.nonce,
                notAfter: signed.not_after,
                data: signed.data.clone(),
            },
        })
        .unwrap();
    assert_eq!(on_machine, signed.intent().digest());
    signed.verify().unwrap();
    let mut forged = signed.clone();
    forged.issuer = k[0].address();
    assert!(forged.verify().is_err());
}

#[test]
fn a_sequencer_applies_several_issuers_intents_once_each() {
    let k = keys();
    let who: Vec<Address> = k.iter().map(Signer::address).collect();
    let mut m = payments(&who);
    assert_eq!(
        m.next_to_write().unwrap(),
        Address::ZERO,
        "nobody is obliged to write"
    );
    let intents = vec![
        SignedIntent::sign(&k[1], CHANNEL, 0, T0 + 60, pay(who[0], 30)).unwrap(),
        SignedIntent::sign(&k[2], CHANNEL, 0, T0 + 60, pay(who[1], 20)).unwrap(),
        SignedIntent::sign(&k[1], CHANNEL, 1, T0 + 60, pay(who[2], 5)).unwrap(),
    ];
    let tx = transaction(&mut m, 1, who[0], as_call(&intents));
    m.apply(&tx, None).unwrap();
    assert_eq!(
        balances(&mut m),
        [130u64, 85, 85].map(U256::from).to_vec(),
        "30 and 5 from 1, 20 from 2"
    );
    // The same intents again: refused (their nonces are used), nothing changes.
    let again = transaction(&mut m, 2, who[2], as_call(&intents[..1]));
    let refused = m.apply(&again, None).unwrap_err();
    assert!(refused.to_string().contains("IntentNonce"), "{refused}");
    // An intent signed by the sequencer for another issuer: refused.
    let mut forged = SignedIntent::sign(&k[0], CHANNEL, 2, T0 + 60, pay(who[0], 50)).unwrap();
    forged.issuer = who[1];
    let tx = transaction(&mut m, 2, who[0], as_call(&[forged]));
    let refused = m.apply(&tx, None).unwrap_err();
    assert!(refused.to_string().contains("IntentBadSignature"), "{refused}");
    assert_eq!(balances(&mut m), [130u64, 85, 85].map(U256::from).to_vec());
}
