//! The Rust EIP-712 hashing and signing agree byte for byte with the contracts: the vectors in
//! `contracts/test/vectors/eip712.json` are checked by a forge test against the real
//! StateChannelManager and here against `entente-types`: the transactions, and the membership
//! approvals (`JoinApproval` / `LeaveApproval`, hashed by [`MembershipApproval::digest`]).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers

use entente_types::{
    Address, B256, Bytes, Domain, JoinApproval, LeaveApproval, LocalSigner, MembershipApproval,
    MembershipChange, Signature, Signer, Transaction, U256, keccak256, recover_signer,
};
use serde_json::Value;

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../contracts/test/vectors/eip712.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn b256(v: &Value) -> B256 {
    v.as_str().unwrap().parse().unwrap()
}

#[test]
fn typehash_matches() {
    let v = vectors();
    assert_eq!(keccak256(Transaction::type_string()), b256(&v["typehash"]));
    assert_eq!(keccak256(JoinApproval::type_string()), b256(&v["joinTypehash"]));
    assert_eq!(keccak256(LeaveApproval::type_string()), b256(&v["leaveTypehash"]));
}

fn manager(v: &Value) -> Address {
    v["domain"]["verifyingContract"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn u64_of(v: &Value) -> u64 {
    v.as_u64().unwrap()
}

/// The vector's signer signs `digest` to exactly the expected bytes (RFC 6979), which recover to it.
fn check_signature(vec: &Value, digest: &B256, what: &str) {
    let signer = LocalSigner::from_bytes(&b256(&vec["signerKey"])).unwrap();
    let expected: Bytes = vec["signature"].as_str().unwrap().parse().unwrap();
    let signature = signer.sign_digest(digest);
    assert_eq!(
        signature.as_bytes().as_slice(),
        expected.as_ref(),
        "signature of {what}"
    );
    let parsed = Signature::from_slice(&expected).unwrap();
    assert_eq!(
        recover_signer(digest, &parsed).unwrap(),
        signer.address(),
        "recovery of {what}"
    );
}

/// The approval of a vector, with the given change.
fn approval(a: &Value, change: MembershipChange) -> MembershipApproval {
    MembershipApproval {
        channel_id: b256(&a["channelId"]),
        fork: u64_of(&a["forkCnt"]),
        height: u64_of(&a["height"]),
        state_hash: b256(&a["stateHash"]),
        change,
        deadline: u64_of(&a["deadline"]),
    }
}

/// Checks every vector of `list` (`joinApprovals` or `leaveApprovals`) against the production
/// approval hashing.
fn check_approvals(v: &Value, list: &str, min: usize, change: impl Fn(&Value) -> MembershipChange) {
    let manager = manager(v);
    let vectors = v[list].as_array().unwrap();
    assert!(vectors.len() >= min, "expected at least {min} {list}");
    for (i, vec) in vectors.iter().enumerate() {
        let a = &vec["approval"];
        let approval = approval(a, change(a));
        assert_eq!(
            approval.struct_hash(),
            b256(&vec["structHash"]),
            "structHash of {list}[{i}]"
        );
        let digest = approval.digest(&Domain::new(u64_of(&vec["chainId"]), manager));
        assert_eq!(digest, b256(&vec["digest"]), "digest of {list}[{i}]");
        check_signature(vec, &digest, &format!("{list}[{i}]"));
    }
}

#[test]
fn every_join_approval_matches_the_contracts() {
    let v = vectors();
    check_approvals(&v, "joinApprovals", 4, |a| MembershipChange::Join {
        participant: a["participant"].as_str().unwrap().parse().unwrap(),
        // a decimal string: a JSON number would lose the digits of a large uint256
        amount: a["amount"].as_str().unwrap().parse::<U256>().unwrap(),
        data: a["data"].as_str().unwrap().parse::<Bytes>().unwrap(),
    });
}

#[test]
fn every_leave_approval_matches_the_contracts() {
    let v = vectors();
    check_approvals(&v, "leaveApprovals", 3, |a| MembershipChange::Leave {
        participant: a["participant"].as_str().unwrap().parse().unwrap(),
    });
}

#[test]
fn every_vector_matches_the_contracts() {
    let v = vectors();
    let manager: Address = v["domain"]["verifyingContract"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let default_chain = v["domain"]["chainId"].as_u64().unwrap();
    assert_eq!(
        Domain::new(default_chain, manager).separator(),
        b256(&v["domainSeparator"])
    );

    let list = v["vectors"].as_array().unwrap();
    assert!(list.len() >= 4, "expected at least 4 vectors");
    for (i, vec) in list.iter().enumerate() {
        let t = &vec["transaction"];
        let tx = Transaction {
            channelId: b256(&t["channelId"]),
            forkCnt: t["forkCnt"].as_u64().unwrap(),
            height: t["height"].as_u64().unwrap(),
            participant: t["participant"].as_str().unwrap().parse().unwrap(),
            timestamp: t["timestamp"].as_u64().unwrap(),
            prevStateHash: b256(&t["prevStateHash"]),
            stateHash: b256(&t["stateHash"]),
            data: t["data"].as_str().unwrap().parse::<Bytes>().unwrap(),
        };
        let chain_id = vec["chainId"].as_u64().unwrap_or(default_chain);
        let domain = Domain::new(chain_id, manager);
        assert_eq!(
            tx.struct_hash(),
            b256(&vec["structHash"]),
            "structHash of vector {i}"
        );
        let digest = domain.digest(&tx);
        assert_eq!(digest, b256(&vec["digest"]), "digest of vector {i}");

        let signer = LocalSigner::from_bytes(&b256(&vec["signerKey"])).unwrap();
        let expected: Bytes = vec["signature"].as_str().unwrap().parse().unwrap();
        let signature = signer.sign_digest(&digest);
        assert_eq!(
            signature.as_bytes().as_slice(),
            expected.as_ref(),
            "signature of vector {i}"
        );
        let parsed = Signature::from_slice(&expected).unwrap();
        assert_eq!(
            recover_signer(&digest, &parsed).unwrap(),
            signer.address(),
            "recovery of vector {i}"
        );
    }
}
