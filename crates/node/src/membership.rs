//! Joining and leaving a running channel.
//!
//! A participant (the sponsor) proposes a newcomer with [`crate::Channel::propose_join`] at its
//! final tip; every other participant co-signs if its application allowed that newcomer
//! ([`crate::Channel::allow_join`]) and holds the same final state. With every signature, the
//! sponsor sends the newcomer a [`JoinTicket`]; the newcomer (which called
//! [`crate::Node::expect_join`]) pays its deposit through `joinChannel`, and the chain's
//! `SetState` starts a new fork with it. A participant leaves with
//! [`crate::Channel::leave`]: the others co-sign, the leaver submits `leaveChannel` and its
//! share is credited to it on chain.

use std::collections::BTreeMap;

use alloy_sol_types::SolStruct;
use entente_contracts::IStateChannelManager;
use entente_types::{Address, B256, Bytes, Domain, MembershipApproval, MembershipChange, Signature};

/// The EIP-712 digest the manager checks for `approval` under `domain`.
pub(crate) fn approval_digest(domain: &Domain, approval: &MembershipApproval) -> B256 {
    let struct_hash = match &approval.change {
        MembershipChange::Join {
            participant,
            amount,
            data,
        } => to_join(approval, *participant, *amount, data.clone()).eip712_hash_struct(),
        MembershipChange::Leave { participant } => to_leave(approval, *participant).eip712_hash_struct(),
    };
    let mut buf = [0u8; 66];
    buf[0] = 0x19;
    buf[1] = 0x01;
    buf[2..34].copy_from_slice(domain.separator().as_slice());
    buf[34..66].copy_from_slice(struct_hash.as_slice());
    entente_types::keccak256(buf)
}

pub(crate) fn to_join(
    approval: &MembershipApproval,
    participant: Address,
    amount: entente_types::U256,
    data: Bytes,
) -> IStateChannelManager::JoinApproval {
    IStateChannelManager::JoinApproval {
        channelId: approval.channel_id,
        forkCnt: approval.fork,
        height: approval.height,
        stateHash: approval.state_hash,
        participant,
        amount,
        data,
        deadline: approval.deadline,
    }
}

pub(crate) fn to_leave(
    approval: &MembershipApproval,
    participant: Address,
) -> IStateChannelManager::LeaveApproval {
    IStateChannelManager::LeaveApproval {
        channelId: approval.channel_id,
        forkCnt: approval.fork,
        height: approval.height,
        stateHash: approval.state_hash,
        participant,
        deadline: approval.deadline,
    }
}

/// An approval being signed by the participants.
pub(crate) struct Collecting {
    pub(crate) approval: MembershipApproval,
    pub(crate) signatures: BTreeMap<Address, Signature>,
    /// We proposed it (and send the ticket once complete).
    pub(crate) sponsor: bool,
    /// Done: ticket sent or leave submitted.
    pub(crate) done: bool,
}
