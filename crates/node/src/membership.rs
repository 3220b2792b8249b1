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

use entente_contracts::IStateChannelManager;
use entente_types::{Address, B256, Bytes, Domain, MembershipApproval, Signature};

/// The EIP-712 digest the manager checks for `approval` under `domain`.
pub(crate) fn approval_digest(domain: &Domain, approval: &MembershipApproval) -> B256 {
    approval.digest(domain)
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

#[cfg(test)]
mod tests {
    use alloy_sol_types::SolStruct;
    use entente_types::{MembershipChange, U256};

    use super::*;

    /// The structs sent to `joinChannel` / `leaveChannel` hash to what the participants signed.
    #[test]
    fn the_call_structs_hash_like_the_signed_approvals() {
        let mut approval = MembershipApproval {
            channel_id: B256::repeat_byte(1),
            fork: 2,
            height: 3,
            state_hash: B256::repeat_byte(4),
            change: MembershipChange::Leave {
                participant: Address::repeat_byte(5),
            },
            deadline: 6,
        };
        let leave = to_leave(&approval, Address::repeat_byte(5));
        assert_eq!(leave.eip712_hash_struct(), approval.struct_hash());
        let data = Bytes::from(vec![7u8; 40]);
        approval.change = MembershipChange::Join {
            participant: Address::repeat_byte(8),
            amount: U256::from(9),
            data: data.clone(),
        };
        let join = to_join(&approval, Address::repeat_byte(8), U256::from(9), data);
        assert_eq!(join.eip712_hash_struct(), approval.struct_hash());
    }
}
