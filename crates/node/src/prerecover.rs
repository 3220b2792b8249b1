//! Signers recovered as messages arrive, off the event loop.
//!
//! Every transaction and confirmation a peer sends costs its receiver one signature recovery
//! (about 30 µs), the largest piece of the protocol's own work on a message. The event loop is
//! one thread per node; the libp2p task runs on the runtime's worker threads. So the node asks
//! the libp2p task to recover the signers of each accepted transaction and confirmation
//! ([`entente_p2p::P2pConfig::inbound_hook`]) and keeps the results here, keyed by digest and
//! signature; the channels' state managers look here first ([`Prerecovered::recover`]) and
//! recover themselves what they do not find. The results are those of
//! [`entente_types::recover_signer`] on the same inputs (only successful recoveries are kept),
//! so the cores decide exactly as before: this moves work, it decides nothing. A peer cannot
//! plant a wrong answer (the key is the exact digest and signature, the value what recovery
//! gives), and what it makes the task recover is bounded by the messages it may send at all.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use entente_p2p::InboundHook;
use entente_state_manager::Recover;
use entente_types::{Address, B256, Domain, Envelope, Message, Signature, TypesError, recover_signer};

/// Results kept at most; once full the memo starts over (a result not taken by then belongs to a
/// message the cores did not need to check: a duplicate, a stale fork).
const CAPACITY: usize = 4_096;

type Key = (B256, [u8; 65]);

/// The signers recovered ahead of the event loop.
#[derive(Debug)]
pub(crate) struct Prerecovered {
    /// The node's EIP-712 domain: the digest of a transaction from a peer.
    domain: Domain,
    memo: Mutex<HashMap<Key, Address>>,
}

impl Prerecovered {
    pub(crate) fn new(domain: Domain) -> Arc<Self> {
        Arc::new(Self {
            domain,
            memo: Mutex::new(HashMap::new()),
        })
    }

    fn memo(&self) -> MutexGuard<'_, HashMap<Key, Address>> {
        // A panic while holding the lock leaves a map that is still valid.
        self.memo.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Recovers the signers of `message` (its transaction's or confirmation's) and keeps them.
    fn note(&self, message: &Message) {
        let (digest, signature) = match message {
            Message::Transaction(st) => (self.domain.digest(&st.transaction), &st.signature),
            Message::Confirmation(c) => (c.digest, &c.signature),
            _ => return,
        };
        if let Ok(signer) = recover_signer(&digest, signature) {
            let mut memo = self.memo();
            if memo.len() >= CAPACITY {
                memo.clear();
            }
            memo.insert((digest, *signature.as_bytes()), signer);
        }
    }

    /// The signer recovered ahead for `digest` and `signature`, taken out of the memo.
    fn take(&self, digest: &B256, signature: &Signature) -> Option<Address> {
        self.memo().remove(&(*digest, *signature.as_bytes()))
    }

    /// The hook the libp2p task calls on every accepted message.
    pub(crate) fn hook(self: &Arc<Self>) -> InboundHook {
        let me = Arc::clone(self);
        Arc::new(move |_from: Address, envelope: &Envelope| me.note(&envelope.message))
    }

    /// The state managers' recovery: what was recovered ahead, or [`recover_signer`].
    pub(crate) fn recover(self: &Arc<Self>) -> Recover {
        let me = Arc::clone(self);
        Arc::new(
            move |digest: &B256, signature: &Signature| -> Result<Address, TypesError> {
                match me.take(digest, signature) {
                    Some(signer) => Ok(signer),
                    None => recover_signer(digest, signature),
                }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use entente_types::{Confirmation, LocalSigner, SignedTransaction, Signer, Transaction, keccak256};

    use super::*;

    fn key(n: u8) -> LocalSigner {
        LocalSigner::from_bytes(&B256::repeat_byte(n)).unwrap()
    }

    #[test]
    fn answers_what_recovery_answers_whether_recovered_ahead_or_not() {
        let domain = Domain::new(31337, Address::repeat_byte(9));
        let pre = Prerecovered::new(domain.clone());
        let recover = pre.recover();
        let signer = key(1);
        let tx = Transaction {
            channelId: B256::repeat_byte(1),
            forkCnt: 0,
            height: 1,
            participant: signer.address(),
            timestamp: 5,
            prevStateHash: B256::ZERO,
            stateHash: B256::ZERO,
            data: Default::default(),
        };
        let digest = domain.digest(&tx);
        let signature = signer.sign_digest(&digest);
        let message = Message::Transaction(SignedTransaction {
            transaction: tx,
            signature,
        });
        // Noted ahead: taken from the memo, once.
        (pre.hook())(signer.address(), &Envelope::new(message.clone()));
        assert_eq!(pre.memo().len(), 1);
        assert_eq!(recover(&digest, &signature), Ok(signer.address()));
        assert!(pre.memo().is_empty());
        // Not noted: recovered on the spot, with the same answer.
        assert_eq!(recover(&digest, &signature), recover_signer(&digest, &signature));
        // Another digest with the same signature is another key: recovered, not taken.
        (pre.hook())(signer.address(), &Envelope::new(message));
        let other = keccak256(b"other");
        assert_eq!(recover(&other, &signature), recover_signer(&other, &signature));
        assert_ne!(recover(&other, &signature), Ok(signer.address()));
        // A confirmation carries its digest; a signature that does not recover is not kept.
        // Well formed, recovers nothing: an `r` that is no point's x coordinate.
        let bad = (1u8..=255)
            .find_map(|r| {
                let mut bytes = [0u8; 65];
                bytes[31] = r;
                bytes[63] = 1;
                bytes[64] = 27;
                let s = Signature::from_slice(&bytes).ok()?;
                recover_signer(&digest, &s).is_err().then_some(s)
            })
            .unwrap();
        let confirmation = Message::Confirmation(Confirmation {
            channel_id: B256::repeat_byte(1),
            fork: 0,
            height: 1,
            digest,
            signature: bad,
        });
        let before = pre.memo().len();
        (pre.hook())(signer.address(), &Envelope::new(confirmation));
        assert_eq!(pre.memo().len(), before);
        assert_eq!(recover(&digest, &bad), recover_signer(&digest, &bad));
        assert!(recover(&digest, &bad).is_err());
    }

    #[test]
    fn the_memo_is_bounded() {
        let pre = Prerecovered::new(Domain::new(1, Address::ZERO));
        let signer = key(2);
        for i in 0..(CAPACITY as u64 + 10) {
            let digest = keccak256(i.to_be_bytes());
            let message = Message::Confirmation(Confirmation {
                channel_id: B256::ZERO,
                fork: 0,
                height: i,
                digest,
                signature: signer.sign_digest(&digest),
            });
            pre.note(&message);
            assert!(pre.memo().len() <= CAPACITY);
        }
    }
}
