//! The manager's structs for an approved join or leave.

use entente_contracts::IStateChannelManager;
use entente_types::{Address, B256, Bytes, JoinTicket, MembershipApproval, MembershipChange, Timing, U256};
use serde::{Deserialize, Serialize};

/// What a newcomer agreed to before it waits for a ticket to join a running channel
/// ([`crate::Channel::expect_join`]). A ticket is taken only from the sponsor and only if it
/// matches: the chain and manager the host works with, the machine whose deployed code the host
/// checked, the token, and the deposit the newcomer means to pay. A ticket on other terms (a
/// stranger's, or colluders' who would choose a larger deposit) is refused, and the chain checks
/// the rest (the signatures of the real participants).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinTerms {
    /// The channel.
    pub channel_id: B256,
    /// The participant that invited us: only its tickets are taken.
    pub sponsor: Address,
    /// The chain id of the manager.
    pub chain_id: u64,
    /// The manager.
    pub manager: Address,
    /// The channel's state machine (the host checked its deployed code against ours).
    pub state_machine: Address,
    /// The channel's token (zero: ETH).
    pub token: Address,
    /// The deposit we pay to join.
    pub amount: U256,
    /// The channel's windows, as the manager holds them (a ticket claiming others would have
    /// us believe our windows are other than the chain's).
    #[serde(default)]
    pub timing: Timing,
    /// The machine's gas limit, as the manager holds it.
    #[serde(default)]
    pub machine_gas_limit: u64,
    /// What the machine's join hook gets with our deposit (it may decide what the deposit buys).
    #[serde(default)]
    pub data: Bytes,
}

impl JoinTerms {
    /// The terms to join running channel `channel_id` with a deposit of `amount`, invited by
    /// `sponsor`, from what the manager (`manager` on `chain_id`) shows of it: its machine
    /// address, `machine_gas_limit` and token, and the `deployed` code at that address, which must
    /// be `code`'s.
    #[allow(clippy::too_many_arguments)]
    pub fn from_onchain(
        channel_id: B256,
        sponsor: Address,
        amount: U256,
        chain_id: u64,
        manager: Address,
        onchain: &IStateChannelManager::Channel,
        code: &entente_evm_runtime::MachineCode,
        deployed: &[u8],
    ) -> Result<Self, crate::ProposalRefusal> {
        if onchain.stateMachine == Address::ZERO {
            return Err(crate::ProposalRefusal::NoMachine);
        }
        crate::check_machine_code(
            code,
            onchain.stateMachine,
            u64::from(onchain.machineGasLimit),
            deployed,
        )?;
        Ok(Self {
            channel_id,
            sponsor,
            chain_id,
            manager,
            state_machine: onchain.stateMachine,
            token: onchain.token,
            amount,
            timing: Timing {
                p2p_time: onchain.p2pTime,
                agreement_time: onchain.agreementTime,
                chain_fallback_time: onchain.chainFallbackTime,
                challenge_time: onchain.challengeTime,
            },
            machine_gas_limit: u64::from(onchain.machineGasLimit),
            data: Bytes::new(),
        })
    }
}

/// Why a join ticket was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketRefusal {
    /// Not waiting for one (not joining, or a ticket is being used).
    #[error("no ticket expected now")]
    Unexpected,
    /// It is for another channel, chain, manager, machine or token.
    #[error("the ticket is for other terms: {0}")]
    OtherTerms(&'static str),
    /// It lets someone else join, or with another deposit.
    #[error("the ticket is not ours: {0}")]
    NotOurs(&'static str),
    /// Its state does not hash to the approved state, or the signatures do not add up.
    #[error("the ticket does not hold together: {0}")]
    Malformed(&'static str),
}

/// Checks `ticket` against `terms` for newcomer `me`: everything a ticket carries that the chain
/// would not check for us (the chain checks the signatures against the real participants).
pub fn check_ticket(
    ticket: &JoinTicket,
    from: Address,
    terms: &JoinTerms,
    me: Address,
) -> Result<(), TicketRefusal> {
    let c = &ticket.channel;
    if from != terms.sponsor || !c.participants.contains(&from) {
        return Err(TicketRefusal::NotOurs("not from our sponsor"));
    }
    if ticket.approval.channel_id != terms.channel_id || c.channel_id != terms.channel_id {
        return Err(TicketRefusal::OtherTerms("channel"));
    }
    if c.chain_id != terms.chain_id || c.manager != terms.manager {
        return Err(TicketRefusal::OtherTerms("chain or manager"));
    }
    if c.state_machine != terms.state_machine {
        return Err(TicketRefusal::OtherTerms("state machine"));
    }
    if c.token != terms.token {
        return Err(TicketRefusal::OtherTerms("token"));
    }
    if c.timing != terms.timing || c.machine_gas_limit != terms.machine_gas_limit {
        return Err(TicketRefusal::OtherTerms("windows or gas limit"));
    }
    let MembershipChange::Join {
        participant,
        amount,
        data,
    } = &ticket.approval.change
    else {
        return Err(TicketRefusal::NotOurs("not a join"));
    };
    if *participant != me {
        return Err(TicketRefusal::NotOurs("another newcomer"));
    }
    if *amount != terms.amount {
        return Err(TicketRefusal::NotOurs("another deposit"));
    }
    if *data != terms.data {
        return Err(TicketRefusal::NotOurs("other data for the join hook"));
    }
    if c.participants.is_empty() || c.participants.contains(&me) {
        return Err(TicketRefusal::Malformed("participants"));
    }
    if entente_types::state_hash(&ticket.state) != ticket.approval.state_hash {
        return Err(TicketRefusal::Malformed("state"));
    }
    if ticket.signatures.len() != c.participants.len() {
        return Err(TicketRefusal::Malformed("signature count"));
    }
    let domain = entente_types::Domain::new(c.chain_id, c.manager);
    let digest = ticket.approval.digest(&domain);
    let signed_by_all = c
        .participants
        .iter()
        .zip(&ticket.signatures)
        .all(|(p, s)| entente_types::recover_signer(&digest, s).is_ok_and(|a| a == *p));
    if !signed_by_all {
        return Err(TicketRefusal::Malformed("a signature"));
    }
    Ok(())
}

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
