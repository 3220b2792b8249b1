//! Translation between the dispute layer's [`ChainAction`]s / [`ChainEvent`]s and the
//! StateChannelManager's ABI (`IStateChannelManager`). Every chain adapter (the in-process revm
//! chain, the JSON-RPC client) sends exactly these calldata bytes and decodes logs through here.

use alloy_primitives::U256;
use alloy_sol_types::SolCall;
use entente_contracts::{IStateChannelManager as M, ManagerEvent};
use entente_types::{Address, B256, Bytes, Signature, SignedIntent};

use crate::{ChainAction, ChainEvent, DisputeKind, DisputeRecord, FraudKind, StateProof};

fn sig_bytes(s: &Signature) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn proof(p: &StateProof) -> M::StateProof {
    M::StateProof {
        kind: p.kind.into(),
        transaction: p.transaction.clone().into(),
        signatures: p.signatures.iter().map(sig_bytes).collect(),
        state: p.state.clone(),
    }
}

fn intent(i: &SignedIntent) -> M::Intent {
    M::Intent {
        channelId: i.channel_id,
        issuer: i.issuer,
        nonce: i.nonce,
        notAfter: i.not_after,
        data: i.data.clone(),
    }
}

fn from_intent(i: &M::Intent, signature: &Bytes) -> Option<SignedIntent> {
    Some(SignedIntent {
        channel_id: i.channelId,
        issuer: i.issuer,
        nonce: i.nonce,
        not_after: i.notAfter,
        data: i.data.clone(),
        signature: Signature::from_slice(signature).ok()?,
    })
}

fn record(r: &DisputeRecord) -> M::DisputeRecord {
    M::DisputeRecord {
        kind: r.kind.into(),
        challenged: r.challenged,
        slash: r.slash,
        submitter: r.submitter,
        target: r.target,
        forkCnt: r.fork,
        height: r.height,
        stateHash: r.state_hash,
        writerDeadline: r.writer_deadline,
        deadline: r.deadline,
    }
}

fn from_record(r: &M::DisputeRecord) -> Option<DisputeRecord> {
    Some(DisputeRecord {
        kind: DisputeKind::try_from(r.kind).ok()?,
        challenged: r.challenged,
        slash: r.slash,
        submitter: r.submitter,
        target: r.target,
        fork: r.forkCnt,
        height: r.height,
        state_hash: r.stateHash,
        writer_deadline: r.writerDeadline,
        deadline: r.deadline,
    })
}

fn fraud_kind(kind: FraudKind) -> DisputeKind {
    match kind {
        FraudKind::InvalidTransition => DisputeKind::InvalidTransition,
        FraudKind::TimestampOutOfOrder => DisputeKind::TimestampOutOfOrder,
        FraudKind::WrongParent => DisputeKind::WrongParent,
    }
}

/// The calldata of `action` on channel `channel_id`.
pub fn encode_action(channel_id: B256, action: &ChainAction) -> Bytes {
    let data = match action {
        ChainAction::PostCalldata {
            transaction,
            signature,
            parent,
        } => M::postCalldataCall {
            transaction: transaction.clone().into(),
            signature: sig_bytes(signature),
            parent: proof(parent),
        }
        .abi_encode(),
        ChainAction::Checkpoint { proof: p } => M::checkpointCall {
            channelId: channel_id,
            proof: proof(p),
        }
        .abi_encode(),
        ChainAction::DisputeTimeout { latest } => M::disputeTimeoutCall {
            channelId: channel_id,
            latest: proof(latest),
        }
        .abi_encode(),
        ChainAction::ProveDoubleSign { latest, a, b } => M::proveDoubleSignCall {
            channelId: channel_id,
            latest: proof(latest),
            proof: M::DoubleSignProof {
                a: a.0.clone().into(),
                sigA: sig_bytes(&a.1),
                b: b.0.clone().into(),
                sigB: sig_bytes(&b.1),
            },
        }
        .abi_encode(),
        ChainAction::ProveFraud {
            kind,
            prev,
            transaction,
            signature,
        } => M::proveFraudCall {
            channelId: channel_id,
            kind: fraud_kind(*kind).into(),
            prev: proof(prev),
            t: transaction.clone().into(),
            sig: sig_bytes(signature),
        }
        .abi_encode(),
        ChainAction::Challenge { record: r, proof: p } => M::challengeCall {
            channelId: channel_id,
            d: record(r),
            proof: proof(p),
        }
        .abi_encode(),
        ChainAction::FinalizeDispute { record: r, state } => M::finalizeDisputeCall {
            channelId: channel_id,
            d: record(r),
            state: state.clone(),
        }
        .abi_encode(),
        ChainAction::RequestExit { latest } => M::requestExitCall {
            channelId: channel_id,
            latest: proof(latest),
        }
        .abi_encode(),
        ChainAction::Close { proof: p } => M::closeCall {
            channelId: channel_id,
            proof: proof(p),
        }
        .abi_encode(),
        ChainAction::PostIntent { intent: i } => M::postIntentCall {
            intent: intent(i),
            signature: sig_bytes(&i.signature),
        }
        .abi_encode(),
        ChainAction::ForceIntent {
            index,
            intent: i,
            parent,
        } => M::forceIntentCall {
            channelId: channel_id,
            index: U256::from(*index),
            intent: intent(i),
            signature: sig_bytes(&i.signature),
            parent: proof(parent),
        }
        .abi_encode(),
    };
    data.into()
}

/// The channel and dispute-layer event of a decoded manager log at chain time `timestamp`, if
/// the dispute layer cares about it.
pub fn decode_event(event: &ManagerEvent, timestamp: u64) -> Option<(B256, ChainEvent)> {
    use ManagerEvent as E;
    Some(match event {
        E::ChannelOpened(e) => (
            e.channelId,
            ChainEvent::ChannelOpened {
                opener: e.opener,
                genesis_state_hash: entente_types::state_hash(&e.genesisState),
            },
        ),
        E::Deposited(e) => (
            e.channelId,
            ChainEvent::Deposited {
                participant: e.participant,
                amount: e.amount,
            },
        ),
        E::ChannelActivated(e) => (
            e.channelId,
            ChainEvent::ChannelActivated {
                genesis_timestamp: e.genesisTimestamp,
            },
        ),
        E::FundingCancelled(e) => (e.channelId, ChainEvent::FundingCancelled),
        E::CalldataPosted(e) => (
            e.channelId,
            ChainEvent::CalldataPosted {
                transaction: e.transaction.clone().into(),
                signature: Signature::from_slice(&e.signature).ok()?,
                timestamp,
            },
        ),
        E::IntentPosted(e) => (
            e.channelId,
            ChainEvent::IntentPosted {
                fork: e.forkCnt,
                index: u64::try_from(e.index).ok()?,
                intent: Box::new(from_intent(&e.intent, &e.signature)?),
                due_at: e.dueAt,
            },
        ),
        E::IntentForced(e) => (
            e.channelId,
            ChainEvent::IntentForced {
                transaction: e.transaction.clone().into(),
                timestamp,
            },
        ),
        E::IntentVoided(e) => (
            e.channelId,
            ChainEvent::IntentVoided {
                fork: e.forkCnt,
                index: u64::try_from(e.index).ok()?,
                digest: e.digest,
            },
        ),
        E::Checkpointed(e) => (
            e.channelId,
            ChainEvent::Checkpointed {
                fork: e.forkCnt,
                height: e.height,
                state_hash: e.stateHash,
            },
        ),
        E::DisputeStarted(e) => (
            e.channelId,
            ChainEvent::DisputeStarted {
                record: from_record(&e.dispute)?,
                state: e.state.clone(),
            },
        ),
        E::DisputeChallenged(e) => (
            e.channelId,
            ChainEvent::DisputeChallenged {
                challenger: e.challenger,
                record: from_record(&e.dispute)?,
                state: e.state.clone(),
            },
        ),
        E::SetState(e) => (
            e.channelId,
            ChainEvent::SetState {
                fork: e.forkCnt,
                genesis_height: e.genesisHeight,
                genesis_timestamp: e.genesisTimestamp,
                state: e.state.clone(),
                participants: e.participants.clone(),
            },
        ),
        E::ParticipantRemoved(e) => (
            e.channelId,
            ChainEvent::ParticipantRemoved {
                participant: e.participant,
                slashed: e.slashed,
            },
        ),
        E::ChannelClosed(e) => (
            e.channelId,
            ChainEvent::ChannelClosed {
                fork: e.forkCnt,
                height: e.height,
                exits: e
                    .exits
                    .iter()
                    .map(|x| (x.participant, x.amount))
                    .collect::<Vec<(Address, U256)>>(),
            },
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use entente_contracts::IStateChannelManager::CalldataPosted;
    use entente_types::{LocalSigner, Transaction};

    fn posted(signature: Bytes) -> ManagerEvent {
        ManagerEvent::CalldataPosted(CalldataPosted {
            channelId: B256::repeat_byte(1),
            forkCnt: 0,
            height: 1,
            transaction: Transaction {
                height: 1,
                ..Default::default()
            }
            .into(),
            signature,
        })
    }

    #[test]
    fn calldata_post_decodes_with_its_signature() {
        let sig = LocalSigner::from_bytes(&B256::repeat_byte(3))
            .unwrap()
            .sign_digest(&B256::ZERO);
        let (channel, event) = decode_event(&posted(sig_bytes(&sig)), 1_700_000_000).unwrap();
        assert_eq!(channel, B256::repeat_byte(1));
        match event {
            ChainEvent::CalldataPosted {
                transaction,
                signature,
                timestamp,
            } => {
                assert_eq!(transaction.height, 1);
                assert_eq!(signature, sig);
                assert_eq!(timestamp, 1_700_000_000);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_checkpoint_decodes_and_an_action_encodes_to_the_manager_abi() {
        use entente_contracts::IStateChannelManager::Checkpointed;
        let event = ManagerEvent::Checkpointed(Checkpointed {
            channelId: B256::repeat_byte(1),
            forkCnt: 2,
            height: 7,
            stateHash: B256::repeat_byte(9),
        });
        assert_eq!(
            decode_event(&event, 5),
            Some((
                B256::repeat_byte(1),
                ChainEvent::Checkpointed {
                    fork: 2,
                    height: 7,
                    state_hash: B256::repeat_byte(9)
                }
            ))
        );
        let proof = StateProof {
            kind: crate::ProofKind::Genesis,
            transaction: Transaction::default(),
            signatures: vec![],
            state: Bytes::from_static(b"state"),
        };
        let data = encode_action(B256::repeat_byte(1), &ChainAction::Checkpoint { proof });
        let call = M::checkpointCall::abi_decode(&data).unwrap();
        assert_eq!(call.channelId, B256::repeat_byte(1));
        assert_eq!(call.proof.state, Bytes::from_static(b"state"));
    }

    #[test]
    fn a_log_with_a_malformed_signature_is_dropped() {
        assert!(decode_event(&posted(Bytes::from_static(&[1; 64])), 0).is_none());
        let mut high_v = [0u8; 65];
        high_v[64] = 99;
        assert!(decode_event(&posted(Bytes::copy_from_slice(&high_v)), 0).is_none());
    }
}
