//! The chain calls a channel asks for, typed, with their calldata for the StateChannelManager.

use alloy_sol_types::SolCall;
use entente_contracts::IStateChannelManager;
use entente_dispute::{ChainAction, encode_action};
use entente_types::{Address, B256, Bytes, ChannelProposal, U256};

alloy_sol_types::sol! {
    /// The one ERC20 call a channel makes.
    interface IErc20 {
        function approve(address spender, uint256 amount) external returns (bool);
    }
}

/// A call to the StateChannelManager (or, to let it take a token deposit, to the token) that a
/// channel asks its host to send from its account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainCall {
    /// Open the channel with our deposit (the proposer).
    Open {
        /// The manager's spec of the proposal.
        spec: Box<IStateChannelManager::ChannelSpec>,
        /// The genesis state.
        genesis_state: Bytes,
        /// Our deposit, sent with the call.
        value: U256,
    },
    /// Pay our deposit into an opened channel.
    Deposit {
        /// Our index.
        index: usize,
        /// Ether sent with the call: the deposit in a channel in ether, nothing in a token
        /// (the manager takes it by the allowance given with [`ChainCall::Approve`]).
        amount: U256,
    },
    /// Let the manager take our deposit in the channel's token (ERC20 `approve`): sent to the
    /// token, before the call that pays the deposit.
    Approve {
        /// The token.
        token: Address,
        /// The manager.
        spender: Address,
        /// The allowance.
        amount: U256,
    },
    /// End a funding period that passed without every deposit.
    CancelFunding,
    /// Take our deposit back from a cancelled channel.
    Reclaim {
        /// Our index.
        index: usize,
    },
    /// Claim our exit of a settled channel.
    Withdraw {
        /// The exits as the `ChannelClosed` log gave them.
        exits: Vec<(Address, U256)>,
        /// Ours.
        index: usize,
    },
    /// Take what the manager credited our account (a removal, a leave, a slash's share).
    WithdrawPending {
        /// The asset (zero: ether).
        token: Address,
    },
    /// Join a running channel with a ticket every participant signed.
    Join {
        /// Ether sent with the call: the deposit in a channel in ether, nothing in a token.
        value: U256,
        /// The approval.
        approval: Box<IStateChannelManager::JoinApproval>,
        /// The approved state.
        state: Bytes,
        /// One signature per participant, in participant order.
        signatures: Vec<Bytes>,
    },
    /// Leave a running channel with an approval every participant signed.
    Leave {
        /// The approval.
        approval: Box<IStateChannelManager::LeaveApproval>,
        /// The approved state.
        state: Bytes,
        /// One signature per participant, in participant order.
        signatures: Vec<Bytes>,
    },
    /// A call of the dispute layer (posts, disputes, challenges, settlement).
    Court(Box<ChainAction>),
}

impl ChainCall {
    /// The manager function it calls.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Open { .. } => "open",
            Self::Deposit { .. } => "deposit",
            Self::Approve { .. } => "approve",
            Self::CancelFunding => "cancelFunding",
            Self::Reclaim { .. } => "reclaimDeposit",
            Self::Withdraw { .. } => "withdraw",
            Self::WithdrawPending { .. } => "withdrawPending",
            Self::Join { .. } => "joinChannel",
            Self::Leave { .. } => "leaveChannel",
            Self::Court(action) => action.name(),
        }
    }

    /// Wei sent with the call.
    pub fn value(&self) -> U256 {
        match self {
            Self::Open { value, .. } => *value,
            Self::Deposit { amount, .. } => *amount,
            Self::Join { value, .. } => *value,
            _ => U256::ZERO,
        }
    }

    /// The contract it calls: the token for [`ChainCall::Approve`], else the manager.
    pub fn target(&self, manager: Address) -> Address {
        match self {
            Self::Approve { token, .. } => *token,
            _ => manager,
        }
    }

    /// The calldata for the manager, for channel `channel_id`.
    pub fn calldata(&self, channel_id: B256) -> Bytes {
        match self {
            Self::Open {
                spec, genesis_state, ..
            } => IStateChannelManager::openCall {
                spec: (**spec).clone(),
                genesisState: genesis_state.clone(),
            }
            .abi_encode()
            .into(),
            Self::Deposit { index, .. } => IStateChannelManager::depositCall {
                channelId: channel_id,
                index: U256::from(*index),
            }
            .abi_encode()
            .into(),
            Self::Approve { spender, amount, .. } => IErc20::approveCall {
                spender: *spender,
                amount: *amount,
            }
            .abi_encode()
            .into(),
            Self::CancelFunding => IStateChannelManager::cancelFundingCall {
                channelId: channel_id,
            }
            .abi_encode()
            .into(),
            Self::Reclaim { index } => IStateChannelManager::reclaimDepositCall {
                channelId: channel_id,
                index: U256::from(*index),
            }
            .abi_encode()
            .into(),
            Self::Withdraw { exits, index } => IStateChannelManager::withdrawCall {
                channelId: channel_id,
                exits: exits
                    .iter()
                    .map(|(participant, amount)| IStateChannelManager::Exit {
                        participant: *participant,
                        amount: *amount,
                    })
                    .collect(),
                index: U256::from(*index),
            }
            .abi_encode()
            .into(),
            Self::WithdrawPending { token } => IStateChannelManager::withdrawPendingCall { token: *token }
                .abi_encode()
                .into(),
            Self::Join {
                value: _,
                approval,
                state,
                signatures,
            } => IStateChannelManager::joinChannelCall {
                approval: (**approval).clone(),
                state: state.clone(),
                signatures: signatures.clone(),
            }
            .abi_encode()
            .into(),
            Self::Leave {
                approval,
                state,
                signatures,
            } => IStateChannelManager::leaveChannelCall {
                approval: (**approval).clone(),
                state: state.clone(),
                signatures: signatures.clone(),
            }
            .abi_encode()
            .into(),
            Self::Court(action) => encode_action(channel_id, action),
        }
    }
}

/// The manager's `ChannelSpec` of a proposal.
pub fn onchain_spec(p: &ChannelProposal) -> IStateChannelManager::ChannelSpec {
    IStateChannelManager::ChannelSpec {
        participants: p.participants.clone(),
        deposits: p.deposits.clone(),
        stateMachine: p.state_machine,
        token: p.token,
        p2pTime: p.timing.p2p_time,
        agreementTime: p.timing.agreement_time,
        chainFallbackTime: p.timing.chain_fallback_time,
        challengeTime: p.timing.challenge_time,
        fundingPeriod: p.funding_period,
        machineGasLimit: p.machine_gas_limit,
        salt: p.salt,
    }
}
