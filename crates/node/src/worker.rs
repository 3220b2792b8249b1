//! The chain worker: sends the node's chain calls one at a time from its account (one account
//! cannot have two transactions in flight without nonce races), and reports each outcome.

use std::sync::Arc;

use alloy_sol_types::SolCall;
use entente_chain::ChainClient;
use entente_contracts::IStateChannelManager;
use entente_dispute::ChainAction;
use entente_types::{Address, B256, Bytes, U256};
use tokio::sync::mpsc;

/// A chain call for one channel.
#[derive(Debug)]
pub(crate) enum Job {
    Open {
        channel_id: B256,
        spec: Box<IStateChannelManager::ChannelSpec>,
        genesis_state: Bytes,
    },
    Deposit {
        channel_id: B256,
        index: usize,
        amount: U256,
    },
    Action {
        channel_id: B256,
        action: Box<ChainAction>,
    },
    Withdraw {
        channel_id: B256,
        exits: Vec<IStateChannelManager::Exit>,
        index: usize,
    },
    WithdrawPending {
        channel_id: B256,
        token: Address,
    },
    Reclaim {
        channel_id: B256,
        index: usize,
    },
    Join {
        channel_id: B256,
        approval: Box<IStateChannelManager::JoinApproval>,
        state: Bytes,
        signatures: Vec<Bytes>,
    },
    Leave {
        channel_id: B256,
        approval: Box<IStateChannelManager::LeaveApproval>,
        state: Bytes,
        signatures: Vec<Bytes>,
    },
}

/// How a [`Job`] went.
#[derive(Debug)]
pub(crate) struct Done {
    pub(crate) channel_id: B256,
    pub(crate) what: String,
    pub(crate) outcome: Result<u64, String>,
    /// For withdrawals: how much arrived.
    pub(crate) withdrawn: Option<U256>,
    /// For a dispute handler's call: the call and what became of it, for the handler.
    pub(crate) action: Option<(Box<ChainAction>, entente_dispute::CallOutcome)>,
}

pub(crate) fn spawn(client: Arc<ChainClient>, mut jobs: mpsc::Receiver<Job>, done: mpsc::Sender<Done>) {
    tokio::spawn(async move {
        while let Some(job) = jobs.recv().await {
            let report = run(&client, job).await;
            if done.send(report).await.is_err() {
                break;
            }
        }
    });
}

async fn send_to_manager(
    client: &ChainClient,
    calldata: Bytes,
    value: U256,
) -> Result<u64, entente_chain::ChainError> {
    let manager = client.manager().ok_or(entente_chain::ChainError::NoManager)?;
    client
        .send(manager, calldata, value)
        .await
        .and_then(|r| r.into_result())
        .map(|r| r.gas_used)
}

async fn run(client: &ChainClient, job: Job) -> Done {
    let mut action_sent = None;
    let (channel_id, what, result, amount) = match job {
        Job::Open {
            channel_id,
            spec,
            genesis_state,
        } => {
            let result = client.open(&spec, &genesis_state).await.map(|_| 0);
            (channel_id, "open".to_string(), result, None)
        }
        Job::Deposit {
            channel_id,
            index,
            amount,
        } => {
            let result = client
                .deposit(channel_id, index, amount)
                .await
                .map(|r| r.gas_used);
            (channel_id, "deposit".to_string(), result, None)
        }
        Job::Action { channel_id, action } => {
            let result = client.execute(channel_id, &action).await.map(|r| r.gas_used);
            let name = ChainAction::name(&action).to_string();
            action_sent = Some(action);
            (channel_id, name, result, None)
        }
        Job::Withdraw {
            channel_id,
            exits,
            index,
        } => {
            let amount = exits.get(index).map(|e| e.amount);
            let result = client
                .withdraw(channel_id, &exits, index)
                .await
                .map(|r| r.gas_used);
            (channel_id, "withdraw".to_string(), result, amount)
        }
        Job::WithdrawPending { channel_id, token } => {
            let pending = client.pending_balance(client.address(), token).await;
            match pending {
                Ok(p) if p.is_zero() => {
                    return Done {
                        channel_id,
                        what: "withdrawPending".into(),
                        outcome: Ok(0),
                        withdrawn: Some(U256::ZERO),
                        action: None,
                    };
                }
                Ok(p) => {
                    let result = client.withdraw_pending(token).await.map(|r| r.gas_used);
                    (channel_id, "withdrawPending".to_string(), result, Some(p))
                }
                Err(e) => (channel_id, "withdrawPending".to_string(), Err(e), None),
            }
        }
        Job::Join {
            channel_id,
            approval,
            state,
            signatures,
        } => {
            let amount = approval.amount;
            let call = IStateChannelManager::joinChannelCall {
                approval: *approval,
                state,
                signatures,
            };
            let result = send_to_manager(client, call.abi_encode().into(), amount).await;
            (channel_id, "joinChannel".to_string(), result, None)
        }
        Job::Leave {
            channel_id,
            approval,
            state,
            signatures,
        } => {
            let call = IStateChannelManager::leaveChannelCall {
                approval: *approval,
                state,
                signatures,
            };
            let result = send_to_manager(client, call.abi_encode().into(), U256::ZERO).await;
            (channel_id, "leaveChannel".to_string(), result, None)
        }
        Job::Reclaim { channel_id, index } => {
            let call = IStateChannelManager::reclaimDepositCall {
                channelId: channel_id,
                index: U256::from(index),
            };
            let result = send_to_manager(client, call.abi_encode().into(), U256::ZERO).await;
            (channel_id, "reclaimDeposit".to_string(), result, None)
        }
    };
    match &result {
        Ok(gas) => {
            tracing::info!(target: "entente::node", channel = %channel_id, %what, gas, "chain call done")
        }
        Err(e) => {
            tracing::warn!(target: "entente::node", channel = %channel_id, %what, error = %e, "chain call failed")
        }
    }
    let action = action_sent.map(|action| {
        let outcome = match &result {
            Ok(_) => entente_dispute::CallOutcome::Mined,
            Err(e @ entente_chain::ChainError::Reverted { .. }) => {
                entente_dispute::CallOutcome::Reverted(e.to_string())
            }
            Err(e) => entente_dispute::CallOutcome::NotSent(e.to_string()),
        };
        (action, outcome)
    });
    Done {
        channel_id,
        what,
        withdrawn: if result.is_ok() { amount } else { None },
        outcome: result.map_err(|e| e.to_string()),
        action,
    }
}
