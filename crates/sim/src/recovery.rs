//! Signature recovery shared by the simulated peers.
//!
//! Every peer of a simulation recovers the signer of every transaction and confirmation it
//! receives, so with N peers in one process each signature is recovered N-1 times: at N = 16 in
//! explicit-confirmation mode that is 240 recoveries per height, almost all of a run's CPU.
//! Recovery is a pure function of (digest, signature), so the peers of one thread share a memo
//! of its results: each distinct signature is still recovered for real (by
//! [`entente_types::recover_signer`], errors included), once. Real nodes, one per process, use
//! the default recovery.

use std::cell::RefCell;
use std::collections::HashMap;

use entente_types::{Address, B256, Signature, TypesError, recover_signer};

/// Entries kept before the memo starts over (a few MB).
const CAPACITY: usize = 1 << 16;

type Memo = HashMap<(B256, [u8; 65]), Result<Address, TypesError>>;

thread_local! {
    static MEMO: RefCell<Memo> = RefCell::new(HashMap::new());
}

/// [`recover_signer`], memoized per thread (see the module docs). Set as the simulated peers'
/// [`entente_state_manager::Config::recover`].
pub fn shared_recover(digest: &B256, signature: &Signature) -> Result<Address, TypesError> {
    let key = (*digest, *signature.as_bytes());
    if let Some(hit) = MEMO.with(|m| m.borrow().get(&key).cloned()) {
        return hit;
    }
    let result = recover_signer(digest, signature);
    MEMO.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() >= CAPACITY {
            m.clear();
        }
        m.insert(key, result.clone());
    });
    result
}

#[cfg(test)]
mod tests {
    use entente_types::{LocalSigner, Signer, keccak256};

    use super::*;

    #[test]
    fn agrees_with_recover_signer_on_hits_and_misses() {
        let key = LocalSigner::from_bytes(&keccak256(b"sim key")).unwrap();
        let digest = keccak256(b"digest");
        let sig = key.sign_digest(&digest);
        for _ in 0..2 {
            assert_eq!(shared_recover(&digest, &sig), Ok(key.address()));
            assert_eq!(shared_recover(&digest, &sig), recover_signer(&digest, &sig));
            let other = keccak256(b"other digest");
            assert_eq!(shared_recover(&other, &sig), recover_signer(&other, &sig));
            assert_ne!(shared_recover(&other, &sig), Ok(key.address()));
        }
    }
}
