//! The manager's structs for an approved join or leave.

use entente_contracts::IStateChannelManager;
use entente_types::{Address, Bytes, MembershipApproval, U256};

/// The `JoinApproval` `joinChannel` checks for `approval`.
pub fn to_join(
    approval: &MembershipApproval,
    participant: Address,
    amount: U256,
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

/// The `LeaveApproval` `leaveChannel` checks for `approval`.
pub fn to_leave(approval: &MembershipApproval, participant: Address) -> IStateChannelManager::LeaveApproval {
    IStateChannelManager::LeaveApproval {
        channelId: approval.channel_id,
        forkCnt: approval.fork,
        height: approval.height,
        stateHash: approval.state_hash,
        participant,
        deadline: approval.deadline,
    }
}

#[cfg(test)]
mod tests {
    use alloy_sol_types::SolStruct;
    use entente_types::{B256, MembershipChange};

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
