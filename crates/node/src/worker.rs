//! The chain worker: sends the node's chain calls one at a time from its account (one account
//! cannot have two transactions in flight without nonce races), and reports each outcome.

use std::sync::Arc;

use entente_chain::{ChainClient, ChainError};
use entente_channel::{CallOutcome, ChainCall};
use entente_types::B256;
use tokio::sync::mpsc;

/// A channel core's chain call.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) channel_id: B256,
    pub(crate) call: ChainCall,
}

/// How a [`Job`] went.
#[derive(Debug)]
pub(crate) struct Done {
    pub(crate) channel_id: B256,
    pub(crate) call: ChainCall,
    pub(crate) outcome: CallOutcome,
    /// Gas used, when mined.
    pub(crate) gas_used: u64,
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

async fn run(client: &ChainClient, job: Job) -> Done {
    let Job { channel_id, call } = job;
    let result = match client.manager() {
        Some(manager) => client
            .send(manager, call.calldata(channel_id), call.value())
            .await
            .and_then(|r| r.into_result()),
        None => Err(ChainError::NoManager),
    };
    let what = call.name();
    let (outcome, gas_used) = match result {
        Ok(receipt) => {
            tracing::info!(target: "entente::node", channel = %channel_id, %what, gas = receipt.gas_used, "chain call done");
            (CallOutcome::Mined, receipt.gas_used)
        }
        Err(e @ ChainError::Reverted { .. }) => {
            tracing::warn!(target: "entente::node", channel = %channel_id, %what, error = %e, "chain call refused");
            (CallOutcome::Reverted(e.to_string()), 0)
        }
        Err(e) => {
            tracing::warn!(target: "entente::node", channel = %channel_id, %what, error = %e, "chain call not sent");
            (CallOutcome::NotSent(e.to_string()), 0)
        }
    };
    Done {
        channel_id,
        call,
        outcome,
        gas_used,
    }
}
