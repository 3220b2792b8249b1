//! The AgreementManager: who signed what, and what is final.
//!
//! It keeps the chain of accepted transactions of the current fork (one per height, each
//! chaining to the previous through `prevStateHash`, checked by the state manager before it
//! appends) and every signature on them. A signature on a transaction is a vote for it and, by
//! virtual voting, for all its ancestors: a transaction is **final** when every participant has
//! signed it or a later transaction of the chain. The finalized height therefore is the smallest,
//! over the participants, of the highest height each has signed; it only grows.
//!
//! Two signatures by one participant on different transactions at the same fork and height are
//! an **equivocation**; the evidence (both transactions and signatures) is kept for the dispute
//! layer. Entries are kept for the last 2N finalized heights and everything after; an
//! equivocation about an older height (already final and built upon) is not looked for. Signatures are verified (recovered) by the caller; this crate only does bookkeeping and
//! never panics on any input.
//!
//! ```
//! use entente_agreement::AgreementManager;
//! use entente_types::{Address, B256, LocalSigner, Signer, Transaction};
//!
//! let a = LocalSigner::from_bytes(&B256::repeat_byte(1)).unwrap();
//! let b = LocalSigner::from_bytes(&B256::repeat_byte(2)).unwrap();
//! let mut agreement = AgreementManager::new(0, 0, vec![a.address(), b.address()]);
//! let tx = Transaction { height: 1, participant: a.address(), ..Default::default() };
//! let digest = B256::repeat_byte(9);
//! agreement.append(tx, digest, a.sign_digest(&digest)).unwrap();
//! assert_eq!(agreement.finalized_height(), 0);
//! let outcome = agreement.add_signature(1, digest, b.address(), b.sign_digest(&digest)).unwrap();
//! assert_eq!(outcome.finalized, Some(1));
//! ```

use std::collections::{BTreeMap, VecDeque};

use entente_types::{Address, B256, Signature, Transaction, TransactionRecord};

/// Why an append or a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgreementError {
    /// The transaction is not for the current fork.
    #[error("transaction is for fork {got}, the current fork is {current}")]
    WrongFork {
        /// Its fork.
        got: u64,
        /// Ours.
        current: u64,
    },
    /// The transaction is not at the next height.
    #[error("transaction at height {got} does not extend the tip {tip}")]
    NotNextHeight {
        /// Its height.
        got: u64,
        /// Our tip.
        tip: u64,
    },
    /// The signer is not a participant of the fork.
    #[error("{0} is not a participant")]
    NotAParticipant(Address),
    /// The issuer is not a participant of the fork.
    #[error("issuer {0} is not a participant")]
    IssuerNotAParticipant(Address),
    /// A signature for a height not (yet) in the chain.
    #[error("no transaction at height {0}")]
    UnknownHeight(u64),
    /// A signature on a transaction other than the one in the chain at that height.
    #[error("signature at height {height} is on digest {digest}, the chain holds {chain_digest}")]
    Conflicting {
        /// Height.
        height: u64,
        /// Signed digest.
        digest: B256,
        /// Digest of the chain's transaction.
        chain_digest: B256,
    },
}

/// Two signatures by one participant on different transactions at one fork and height.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Equivocation {
    /// Who signed twice.
    pub signer: Address,
    /// Fork.
    pub fork: u64,
    /// Height.
    pub height: u64,
    /// The first transaction (the one in our chain) and the signer's signature on it.
    pub first: (Transaction, Signature),
    /// The conflicting transaction, if known, its digest, and the signer's signature on it.
    pub second: (Option<Transaction>, B256, Signature),
}

/// What adding a signature changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SignatureOutcome {
    /// False if the signature was already known (duplicates change nothing).
    pub new: bool,
    /// The new finalized height, if it advanced.
    pub finalized: Option<u64>,
}

/// One transaction of the chain and its signatures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The transaction.
    pub transaction: Transaction,
    /// Its EIP-712 digest.
    pub digest: B256,
    /// Signatures by signer, the issuer's included.
    pub signatures: BTreeMap<Address, Signature>,
}

impl Entry {
    /// True for a transaction the court wrote (a forced intent) that its issuer has not signed
    /// (yet): it cannot be passed on as a signed record.
    pub fn court_written(&self) -> bool {
        !self.signatures.contains_key(&self.transaction.participant)
    }

    /// The entry as a wire record (issuer's signature first).
    pub fn to_record(&self) -> TransactionRecord {
        let issuer = self.transaction.participant;
        let mut signatures: Vec<Signature> = self.signatures.get(&issuer).copied().into_iter().collect();
        signatures.extend(
            self.signatures
                .iter()
                .filter(|(who, _)| **who != issuer)
                .map(|(_, s)| *s),
        );
        TransactionRecord {
            transaction: self.transaction.clone(),
            signatures,
        }
    }
}

/// Signature bookkeeping, virtual voting and finality for one channel's current fork.
#[derive(Debug, Clone)]
pub struct AgreementManager {
    fork: u64,
    genesis_height: u64,
    participants: Vec<Address>,
    /// Entries for heights `first_height ..= tip`, oldest first.
    entries: VecDeque<Entry>,
    /// Height of `entries[0]`.
    first_height: u64,
    /// Per participant (same order): the highest height it signed in this chain.
    votes: Vec<u64>,
    finalized: u64,
    /// How many finalized entries to keep below the tip for proofs and catch-up.
    keep_finalized: usize,
    evidence: Vec<Equivocation>,
    /// Signatures on transactions that conflict with the chain, by a signer that has not (yet)
    /// signed the chain's transaction at that height: evidence as soon as it does. At most one
    /// per height and signer, only for held heights.
    conflicts: BTreeMap<(u64, Address), (Option<Transaction>, B256, Signature)>,
}

impl AgreementManager {
    /// A manager for fork `fork` starting at `genesis_height` (the genesis is final).
    pub fn new(fork: u64, genesis_height: u64, participants: Vec<Address>) -> Self {
        let keep = participants.len().max(1) * 2;
        Self {
            fork,
            genesis_height,
            votes: vec![genesis_height; participants.len()],
            participants,
            entries: VecDeque::new(),
            first_height: genesis_height + 1,
            finalized: genesis_height,
            keep_finalized: keep,
            evidence: Vec::new(),
            conflicts: BTreeMap::new(),
        }
    }

    /// Starts over on a new fork (the chain enforced a new genesis). Evidence is kept.
    pub fn reset_to_fork(&mut self, fork: u64, genesis_height: u64, participants: Vec<Address>) {
        let evidence = std::mem::take(&mut self.evidence);
        *self = Self::new(fork, genesis_height, participants);
        self.evidence = evidence;
    }

    /// The current fork.
    pub fn fork(&self) -> u64 {
        self.fork
    }

    /// Height of the fork's genesis.
    pub fn genesis_height(&self) -> u64 {
        self.genesis_height
    }

    /// The participants of the fork, in order.
    pub fn participants(&self) -> &[Address] {
        &self.participants
    }

    /// Height of the last transaction in the chain (the genesis height if none).
    pub fn tip(&self) -> u64 {
        self.first_height + self.entries.len() as u64 - 1
    }

    /// The highest final height.
    pub fn finalized_height(&self) -> u64 {
        self.finalized
    }

    /// The entry at `height`, if held.
    pub fn entry(&self, height: u64) -> Option<&Entry> {
        let index = height.checked_sub(self.first_height)?;
        self.entries.get(usize::try_from(index).ok()?)
    }

    /// Entries from `height` to the tip that are still held.
    pub fn entries_from(&self, height: u64) -> impl Iterator<Item = &Entry> {
        let skip = height.saturating_sub(self.first_height);
        self.entries
            .iter()
            .skip(usize::try_from(skip).unwrap_or(usize::MAX))
    }

    /// The highest height `who` has signed in this chain (the genesis height if none).
    pub fn highest_vote(&self, who: &Address) -> Option<u64> {
        let i = self.participants.iter().position(|p| p == who)?;
        self.votes.get(i).copied()
    }

    /// Equivocations seen so far.
    pub fn evidence(&self) -> &[Equivocation] {
        &self.evidence
    }

    /// Takes the equivocations seen so far.
    pub fn take_evidence(&mut self) -> Vec<Equivocation> {
        std::mem::take(&mut self.evidence)
    }

    /// Appends a validated transaction at the next height with its issuer's signature (a vote).
    /// Returns the new finalized height if it advanced.
    pub fn append(
        &mut self,
        transaction: Transaction,
        digest: B256,
        issuer_signature: Signature,
    ) -> Result<Option<u64>, AgreementError> {
        self.push_entry(transaction, digest, Some(issuer_signature))
    }

    /// Appends a transaction the court wrote at the next height (a forced intent: see
    /// docs/protocol.md, section 11). Nobody signed it, so it carries no vote; it becomes final
    /// like any other, when every participant signed it or a later transaction.
    pub fn append_unsigned(
        &mut self,
        transaction: Transaction,
        digest: B256,
    ) -> Result<Option<u64>, AgreementError> {
        self.push_entry(transaction, digest, None)
    }

    fn push_entry(
        &mut self,
        transaction: Transaction,
        digest: B256,
        issuer_signature: Option<Signature>,
    ) -> Result<Option<u64>, AgreementError> {
        if transaction.forkCnt != self.fork {
            return Err(AgreementError::WrongFork {
                got: transaction.forkCnt,
                current: self.fork,
            });
        }
        if transaction.height != self.tip() + 1 {
            return Err(AgreementError::NotNextHeight {
                got: transaction.height,
                tip: self.tip(),
            });
        }
        let issuer = transaction.participant;
        let Some(index) = self.index_of(&issuer) else {
            return Err(AgreementError::IssuerNotAParticipant(issuer));
        };
        let height = transaction.height;
        let mut signatures = BTreeMap::new();
        if let Some(signature) = issuer_signature {
            signatures.insert(issuer, signature);
        }
        self.entries.push_back(Entry {
            transaction,
            digest,
            signatures,
        });
        if issuer_signature.is_some() {
            self.vote(index, height);
            self.check_stored_conflict(height, issuer);
        }
        Ok(self.update_finality())
    }

    /// Adds `signer`'s signature on `digest` at `height`. A signature on a different transaction
    /// than the chain's at that height, by a participant who also signed the chain's, is recorded
    /// as an equivocation (and refused).
    pub fn add_signature(
        &mut self,
        height: u64,
        digest: B256,
        signer: Address,
        signature: Signature,
    ) -> Result<SignatureOutcome, AgreementError> {
        let Some(index) = self.index_of(&signer) else {
            return Err(AgreementError::NotAParticipant(signer));
        };
        let fork = self.fork;
        let Some(entry) = self.entry_mut(height) else {
            return Err(AgreementError::UnknownHeight(height));
        };
        if entry.digest != digest {
            let chain_digest = entry.digest;
            match entry.signatures.get(&signer).copied() {
                Some(first) => {
                    let first_tx = entry.transaction.clone();
                    self.record_equivocation(Equivocation {
                        signer,
                        fork,
                        height,
                        first: (first_tx, first),
                        second: (None, digest, signature),
                    });
                }
                None => {
                    self.conflicts
                        .entry((height, signer))
                        .or_insert((None, digest, signature));
                }
            }
            return Err(AgreementError::Conflicting {
                height,
                digest,
                chain_digest,
            });
        }
        if entry.signatures.contains_key(&signer) {
            return Ok(SignatureOutcome {
                new: false,
                finalized: None,
            });
        }
        entry.signatures.insert(signer, signature);
        self.vote(index, height);
        self.check_stored_conflict(height, signer);
        Ok(SignatureOutcome {
            new: true,
            finalized: self.update_finality(),
        })
    }

    /// Reports a transaction that conflicts with the chain at its height, signed by `signer`
    /// (its issuer, or a confirmer). If `signer` signed the chain's transaction at that height
    /// too, the equivocation is recorded and returned.
    pub fn observe_conflict(
        &mut self,
        transaction: &Transaction,
        digest: B256,
        signer: Address,
        signature: Signature,
    ) -> Option<Equivocation> {
        if transaction.forkCnt != self.fork {
            return None;
        }
        let fork = self.fork;
        let entry = self.entry(transaction.height)?;
        if entry.digest == digest || self.index_of(&signer).is_none() {
            return None;
        }
        let Some(first) = entry.signatures.get(&signer).copied() else {
            let stored = (Some(transaction.clone()), digest, signature);
            let slot = self
                .conflicts
                .entry((transaction.height, signer))
                .or_insert(stored.clone());
            if slot.0.is_none() && slot.1 == digest {
                *slot = stored; // now we know the transaction too
            }
            return None;
        };
        let evidence = Equivocation {
            signer,
            fork,
            height: transaction.height,
            first: (entry.transaction.clone(), first),
            second: (Some(transaction.clone()), digest, signature),
        };
        self.record_equivocation(evidence.clone()).then_some(evidence)
    }

    /// `signer` just signed the chain's transaction at `height`: a conflicting signature it gave
    /// earlier is now an equivocation.
    fn check_stored_conflict(&mut self, height: u64, signer: Address) {
        let Some((tx, digest, signature)) = self.conflicts.remove(&(height, signer)) else {
            return;
        };
        let Some(entry) = self.entry(height) else { return };
        let Some(first) = entry.signatures.get(&signer).copied() else {
            return;
        };
        let evidence = Equivocation {
            signer,
            fork: self.fork,
            height,
            first: (entry.transaction.clone(), first),
            second: (tx, digest, signature),
        };
        self.record_equivocation(evidence);
    }

    /// Records `evidence` unless already known; true if it is new.
    fn record_equivocation(&mut self, evidence: Equivocation) -> bool {
        let known = self.evidence.iter().any(|e| {
            e.signer == evidence.signer && e.height == evidence.height && e.second.1 == evidence.second.1
        });
        if !known {
            self.evidence.push(evidence);
        }
        !known
    }

    fn index_of(&self, who: &Address) -> Option<usize> {
        self.participants.iter().position(|p| p == who)
    }

    fn entry_mut(&mut self, height: u64) -> Option<&mut Entry> {
        let index = height.checked_sub(self.first_height)?;
        self.entries.get_mut(usize::try_from(index).ok()?)
    }

    fn vote(&mut self, index: usize, height: u64) {
        if let Some(v) = self.votes.get_mut(index) {
            *v = (*v).max(height);
        }
    }

    fn update_finality(&mut self) -> Option<u64> {
        let candidate = self
            .votes
            .iter()
            .copied()
            .min()
            .unwrap_or(self.genesis_height)
            .min(self.tip());
        if candidate <= self.finalized {
            return None;
        }
        self.finalized = candidate;
        self.prune();
        Some(candidate)
    }

    /// Drops finalized entries beyond the window kept for proofs and catch-up.
    fn prune(&mut self) {
        while self.first_height + (self.keep_finalized as u64) < self.finalized && !self.entries.is_empty() {
            self.entries.pop_front();
            self.first_height += 1;
        }
        let first = self.first_height;
        self.conflicts.retain(|(height, _), _| *height >= first);
    }
}

#[cfg(test)]
mod tests;
