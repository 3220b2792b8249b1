//! The chain worker: sends the node's chain calls one at a time from its account (one account
//! cannot have two transactions in flight without nonce races), and reports each outcome.

use std::sync::Arc;

use entente_channel::{CallOutcome, ChainCall};
use entente_types::B256;
use tokio::sync::mpsc;

use crate::parts::Chain;

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

pub(crate) fn spawn(chain: Arc<dyn Chain>, mut jobs: mpsc::Receiver<Job>, done: mpsc::Sender<Done>) {
    tokio::spawn(async move {
        while let Some(job) = jobs.recv().await {
            let report = run(chain.as_ref(), job).await;
            if done.send(report).await.is_err() {
                break;
            }
        }
    });
}

async fn run(chain: &dyn Chain, job: Job) -> Done {
    let Job { channel_id, call } = job;
    let report = chain.send(channel_id, call.clone()).await;
    let what = call.name();
    match &report.outcome {
        CallOutcome::Mined => {
            tracing::info!(target: "entente::node", channel = %channel_id, %what, gas = report.gas_used, "chain call done");
        }
        CallOutcome::Reverted(reason) => {
            tracing::warn!(target: "entente::node", channel = %channel_id, %what, %reason, "chain call refused");
        }
        CallOutcome::NotSent(reason) => {
            tracing::warn!(target: "entente::node", channel = %channel_id, %what, %reason, "chain call not sent");
        }
    }
    Done {
        channel_id,
        call,
        outcome: report.outcome,
        gas_used: report.gas_used,
    }
}
