//! Joining and leaving a running channel: the approvals every current participant signs
//! (EIP-712 `JoinApproval` / `LeaveApproval`, checked by the manager's `joinChannel` and
//! `leaveChannel`), and the messages that collect them.

use alloy_primitives::{Address, B256, Bytes, U256};
use alloy_sol_types::SolStruct;
use serde::{Deserialize, Serialize};

use crate::{ChannelProposal, Domain, Signature};

alloy_sol_types::sol! {
    /// The EIP-712 struct `JoinApproval` of `contracts/src/ChannelTypes.sol`, field for field.
    #[derive(Debug, Default, PartialEq, Eq)]
    struct JoinApproval {
        bytes32 channelId;
        uint64 forkCnt;
        uint64 height;
        bytes32 stateHash;
        address participant;
        uint256 amount;
        bytes data;
        uint64 deadline;
    }

    /// The EIP-712 struct `LeaveApproval` of `contracts/src/ChannelTypes.sol`, field for field.
    #[derive(Debug, Default, PartialEq, Eq)]
    struct LeaveApproval {
        bytes32 channelId;
        uint64 forkCnt;
        uint64 height;
        bytes32 stateHash;
        address participant;
        uint64 deadline;
    }
}

impl JoinApproval {
    /// The EIP-712 type string.
    pub fn type_string() -> String {
        <Self as SolStruct>::eip712_encode_type().into_owned()
    }
}

impl LeaveApproval {
    /// The EIP-712 type string.
    pub fn type_string() -> String {
        <Self as SolStruct>::eip712_encode_type().into_owned()
    }
}

/// Who joins or leaves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MembershipChange {
    /// `participant` joins with a deposit of `amount`; `data` goes to the machine's join hook.
    Join {
        /// The newcomer.
        participant: Address,
        /// Its deposit.
        amount: U256,
        /// For the machine's join hook.
        data: Bytes,
    },
    /// `participant` leaves with its share.
    Leave {
        /// The leaver.
        participant: Address,
    },
}

impl MembershipChange {
    /// The participant that joins or leaves.
    pub fn participant(&self) -> Address {
        match self {
            Self::Join { participant, .. } | Self::Leave { participant } => *participant,
        }
    }
}

/// What every current participant signs to let someone join or leave at the state `state_hash`
/// of height `height` of fork `fork`, before chain time `deadline`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipApproval {
    /// The channel.
    pub channel_id: B256,
    /// The fork of the approved state.
    pub fork: u64,
    /// Its height.
    pub height: u64,
    /// Its hash.
    pub state_hash: B256,
    /// The change.
    pub change: MembershipChange,
    /// Chain time after which the approval is void.
    pub deadline: u64,
}

impl MembershipApproval {
    /// EIP-712 `hashStruct` of the `JoinApproval` or `LeaveApproval` this approval stands for.
    pub fn struct_hash(&self) -> B256 {
        match &self.change {
            MembershipChange::Join {
                participant,
                amount,
                data,
            } => JoinApproval {
                channelId: self.channel_id,
                forkCnt: self.fork,
                height: self.height,
                stateHash: self.state_hash,
                participant: *participant,
                amount: *amount,
                data: data.clone(),
                deadline: self.deadline,
            }
            .eip712_hash_struct(),
            MembershipChange::Leave { participant } => LeaveApproval {
                channelId: self.channel_id,
                forkCnt: self.fork,
                height: self.height,
                stateHash: self.state_hash,
                participant: *participant,
                deadline: self.deadline,
            }
            .eip712_hash_struct(),
        }
    }

    /// The digest every current participant signs, the one the manager's `joinApprovalDigest` /
    /// `leaveApprovalDigest` (and `joinChannel` / `leaveChannel`) compute under `domain`.
    pub fn digest(&self, domain: &Domain) -> B256 {
        domain.typed_digest(self.struct_hash())
    }
}

/// One participant's signature on a [`MembershipApproval`], sent to the other participants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalSignature {
    /// The approval.
    pub approval: MembershipApproval,
    /// The sender's signature over its EIP-712 digest.
    pub signature: Signature,
}

/// Everything a newcomer needs to join: the approval with every current participant's
/// signature (in participant order), the approved state, and the channel's parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinTicket {
    /// The approval.
    pub approval: MembershipApproval,
    /// The approved state (hashes to `approval.state_hash`).
    pub state: Bytes,
    /// Every current participant's signature, in participant order.
    pub signatures: Vec<Signature>,
    /// The channel's parameters, with its current participants.
    pub channel: ChannelProposal,
}
