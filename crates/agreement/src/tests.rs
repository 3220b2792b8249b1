use proptest::prelude::*;

use super::*;
use entente_types::{LocalSigner, Signer};

fn signers(n: usize) -> Vec<LocalSigner> {
    (1..=n as u8)
        .map(|i| LocalSigner::from_bytes(&B256::repeat_byte(i)).unwrap())
        .collect()
}

fn tx(height: u64, issuer: Address, salt: u8) -> Transaction {
    Transaction {
        height,
        participant: issuer,
        data: vec![salt].into(),
        ..Default::default()
    }
}

fn digest_of(t: &Transaction) -> B256 {
    entente_types::keccak256(format!("{}:{}:{:?}", t.height, t.participant, t.data))
}

/// A round-robin chain of `len` transactions with only issuer signatures.
fn chain(keys: &[LocalSigner], len: u64) -> AgreementManager {
    let mut m = AgreementManager::new(0, 0, keys.iter().map(|k| k.address()).collect());
    for h in 1..=len {
        let issuer = &keys[(h as usize - 1) % keys.len()];
        let t = tx(h, issuer.address(), 0);
        let d = digest_of(&t);
        m.append(t, d, issuer.sign_digest(&d)).unwrap();
    }
    m
}

#[test]
fn explicit_confirmations_finalize_in_one_round() {
    let keys = signers(4);
    let mut m = chain(&keys, 1);
    let d = m.entry(1).unwrap().digest;
    for k in &keys[1..3] {
        assert_eq!(
            m.add_signature(1, d, k.address(), k.sign_digest(&d))
                .unwrap()
                .finalized,
            None
        );
    }
    let last = &keys[3];
    assert_eq!(
        m.add_signature(1, d, last.address(), last.sign_digest(&d))
            .unwrap()
            .finalized,
        Some(1)
    );
}

#[test]
fn virtual_voting_finalizes_after_n_transactions() {
    let keys = signers(4);
    let m = chain(&keys, 3);
    assert_eq!(m.finalized_height(), 0);
    let m = chain(&keys, 4);
    assert_eq!(
        m.finalized_height(),
        1,
        "the 4th writer's transaction votes for heights 1..=4"
    );
    let m = chain(&keys, 10);
    assert_eq!(m.finalized_height(), 7);
}

#[test]
fn duplicate_signature_changes_nothing() {
    let keys = signers(2);
    let mut m = chain(&keys, 1);
    let d = m.entry(1).unwrap().digest;
    let s = keys[1].sign_digest(&d);
    assert!(m.add_signature(1, d, keys[1].address(), s).unwrap().new);
    assert_eq!(
        m.add_signature(1, d, keys[1].address(), s).unwrap(),
        SignatureOutcome::default()
    );
}

#[test]
fn double_signature_is_recorded_as_evidence() {
    let keys = signers(3);
    let mut m = chain(&keys, 1);
    let other = tx(1, keys[0].address(), 99);
    let od = digest_of(&other);
    let ev = m
        .observe_conflict(&other, od, keys[0].address(), keys[0].sign_digest(&od))
        .unwrap();
    assert_eq!(ev.signer, keys[0].address());
    assert_eq!(ev.height, 1);
    assert_eq!(m.evidence().len(), 1);
    // A confirmer that signed the chain's transaction and then the other one equivocates too.
    let d = m.entry(1).unwrap().digest;
    m.add_signature(1, d, keys[1].address(), keys[1].sign_digest(&d))
        .unwrap();
    let err = m
        .add_signature(1, od, keys[1].address(), keys[1].sign_digest(&od))
        .unwrap_err();
    assert!(matches!(err, AgreementError::Conflicting { .. }));
    assert_eq!(m.evidence().len(), 2);
    // Someone who never signed the chain's transaction does not equivocate by signing the other.
    assert!(
        m.observe_conflict(&other, od, keys[2].address(), keys[2].sign_digest(&od))
            .is_none()
    );
}

#[test]
fn refusals_are_typed() {
    let keys = signers(2);
    let mut m = chain(&keys, 1);
    let stranger = LocalSigner::from_bytes(&B256::repeat_byte(77)).unwrap();
    let d = m.entry(1).unwrap().digest;
    assert_eq!(
        m.add_signature(1, d, stranger.address(), stranger.sign_digest(&d)),
        Err(AgreementError::NotAParticipant(stranger.address()))
    );
    assert_eq!(
        m.add_signature(5, d, keys[1].address(), keys[1].sign_digest(&d)),
        Err(AgreementError::UnknownHeight(5))
    );
    let t = tx(3, keys[0].address(), 0);
    assert_eq!(
        m.append(t.clone(), digest_of(&t), keys[0].sign_digest(&digest_of(&t))),
        Err(AgreementError::NotNextHeight { got: 3, tip: 1 })
    );
    let mut t2 = tx(2, keys[1].address(), 0);
    t2.forkCnt = 1;
    assert!(matches!(
        m.append(t2, d, keys[1].sign_digest(&d)),
        Err(AgreementError::WrongFork { .. })
    ));
}

#[test]
fn old_entries_are_pruned_but_the_tip_stays() {
    let keys = signers(2);
    let m = chain(&keys, 100);
    assert_eq!(m.tip(), 100);
    assert_eq!(m.finalized_height(), 99);
    assert!(m.entry(10).is_none());
    assert!(m.entry(99).is_some());
    assert_eq!(m.entries_from(95).count(), 6);
}

/// An operation a peer may receive: a confirmation by participant `who` of height `height`,
/// possibly on a conflicting transaction.
#[derive(Debug, Clone)]
struct Op {
    who: usize,
    height: u64,
    conflicting: bool,
}

fn ops(n: usize, len: u64) -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(
        (0..n, 1..=len, proptest::bool::weighted(0.1)).prop_map(|(who, height, conflicting)| Op {
            who,
            height,
            conflicting,
        }),
        0..80,
    )
}

fn apply(m: &mut AgreementManager, keys: &[LocalSigner], op: &Op) {
    let Some(entry) = m.entry(op.height) else { return };
    let d = if op.conflicting {
        digest_of(&tx(op.height, keys[0].address(), 7))
    } else {
        entry.digest
    };
    let k = &keys[op.who];
    let _ = m.add_signature(op.height, d, k.address(), k.sign_digest(&d));
}

proptest! {
    #[test]
    fn finality_is_monotonic(n in 2usize..6, len in 1u64..12, ops in ops(5, 12)) {
        let keys = signers(n);
        let mut m = chain(&keys, len);
        let mut last = m.finalized_height();
        for op in ops.iter().filter(|o| o.who < n) {
            apply(&mut m, &keys, op);
            prop_assert!(m.finalized_height() >= last);
            prop_assert!(m.finalized_height() <= m.tip());
            last = m.finalized_height();
        }
    }

    #[test]
    fn conflicting_transactions_never_both_final(n in 2usize..6, len in 1u64..12, ops in ops(5, 12)) {
        let keys = signers(n);
        let mut m = chain(&keys, len);
        let mut final_digests: BTreeMap<u64, B256> = BTreeMap::new();
        for op in ops.iter().filter(|o| o.who < n) {
            apply(&mut m, &keys, op);
            for h in 1..=m.finalized_height() {
                if let Some(e) = m.entry(h) {
                    let known = final_digests.entry(h).or_insert(e.digest);
                    prop_assert_eq!(*known, e.digest, "a final height changed its transaction");
                }
            }
        }
    }

    #[test]
    fn replayed_duplicated_or_reordered_signatures_change_nothing(
        n in 2usize..6, len in 1u64..10, ops in ops(5, 10), seed in any::<u64>(),
    ) {
        let keys = signers(n);
        let ops: Vec<Op> = ops.into_iter().filter(|o| o.who < n).collect();
        let mut a = chain(&keys, len);
        for op in &ops { apply(&mut a, &keys, op); }
        // Same messages, shuffled and each delivered twice.
        let mut shuffled: Vec<Op> = ops.iter().chain(ops.iter()).cloned().collect();
        let mut state = seed;
        for i in (1..shuffled.len()).rev() {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            shuffled.swap(i, (state >> 33) as usize % (i + 1));
        }
        let mut b = chain(&keys, len);
        for op in &shuffled { apply(&mut b, &keys, op); }
        prop_assert_eq!(a.finalized_height(), b.finalized_height());
        for h in 1..=len {
            prop_assert_eq!(a.entry(h).map(|e| &e.signatures), b.entry(h).map(|e| &e.signatures));
        }
        // Equivocations are detected while their height is held (the last 2N finalized
        // transactions and everything after): the same evidence whatever the order.
        let floor = a.entries_from(0).next().map_or(0, |e| e.transaction.height);
        let held = |m: &AgreementManager| {
            let mut ev: Vec<(u64, Address, B256)> =
                m.evidence().iter().filter(|e| e.height >= floor).map(|e| (e.height, e.signer, e.second.1)).collect();
            ev.sort();
            ev
        };
        prop_assert_eq!(held(&a), held(&b));
    }
}
