//! A live TicTacToe channel on a fresh anvil, shared by the client and listener tests.

#![allow(dead_code, unreachable_pub)] // each test binary uses a part

use std::time::Duration;

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::sol_types::SolCall;
use entente_chain::{Anvil, ChainClient, Receipt};
use entente_contracts::IStateChannelManager::ChannelSpec;
use entente_contracts::{TicTacToe, artifacts};
use entente_dispute::{ChainAction, ProofKind, StateProof};
use entente_evm_runtime::{MachineCode, MachineInstance};
use entente_types::{Domain, LocalSigner, Signature, Signer, Transaction};

/// Every wait in these tests is bounded by this.
pub const WAIT: Duration = Duration::from_secs(20);

pub struct Live {
    pub anvil: Anvil,
    /// Participant 0 (anvil account 1), who opened the channel.
    pub x: ChainClient,
    /// Participant 1 (anvil account 2).
    pub o: ChainClient,
    pub x_key: LocalSigner,
    pub o_key: LocalSigner,
    pub domain: Domain,
    pub channel_id: B256,
    pub genesis: Bytes,
    /// The TicTacToe machine.
    pub game: Address,
    /// The block of the last deposit (the channel went live).
    pub opened_at: u64,
    /// Its timestamp: fork 0's genesis time.
    pub genesis_time: u64,
    /// X and O's first moves (cells 0, 3, 1, 4: nobody wins), computed by the real machine in
    /// revm: each transaction with its issuer's signature and the state it produces.
    pub moves: Vec<(Transaction, Signature, Bytes)>,
}

pub async fn live_channel() -> Live {
    live_channel_on(Anvil::spawn().unwrap()).await
}

pub async fn live_channel_on(anvil: Anvil) -> Live {
    let url = anvil.endpoint();
    let mut deployer = ChainClient::connect(&url, anvil.signer(0).unwrap())
        .await
        .unwrap();
    let manager = deployer.deploy_manager().await.unwrap();
    let game = deployer.deploy(TicTacToe::BYTECODE.clone()).await.unwrap();
    let x = ChainClient::connect(&url, anvil.signer(1).unwrap())
        .await
        .unwrap()
        .with_manager(manager);
    let o = ChainClient::connect(&url, anvil.signer(2).unwrap())
        .await
        .unwrap()
        .with_manager(manager);
    let stake = U256::from(10u64).pow(U256::from(18u64));
    let genesis = x
        .view(
            game,
            &TicTacToe::initialStateCall {
                x: x.address(),
                o: o.address(),
                stake,
            },
        )
        .await
        .unwrap();
    let spec = ChannelSpec {
        participants: vec![x.address(), o.address()],
        deposits: vec![stake, stake],
        stateMachine: game,
        token: Address::ZERO,
        p2pTime: 30,
        agreementTime: 10,
        chainFallbackTime: 60,
        challengeTime: 3600,
        fundingPeriod: 86_400,
        machineGasLimit: 5_000_000,
        salt: B256::repeat_byte(7),
    };
    let channel_id = x.open(&spec, &genesis).await.unwrap();
    let activated = o.deposit(channel_id, 1, stake).await.unwrap();
    let x_key = LocalSigner::from_bytes(&anvil.keys()[1]).unwrap();
    let o_key = LocalSigner::from_bytes(&anvil.keys()[2]).unwrap();
    let domain = Domain::new(x.chain_id(), manager);
    let moves = play(
        &genesis,
        channel_id,
        &domain,
        [&x_key, &o_key],
        activated.timestamp,
    );
    Live {
        anvil,
        x,
        o,
        x_key,
        o_key,
        domain,
        channel_id,
        genesis,
        game,
        opened_at: activated.block_number,
        genesis_time: activated.timestamp,
        moves,
    }
}

/// X plays 0, O plays 3, X plays 1, O plays 4, each stamped `ts`, run in revm on the real machine.
fn play(
    genesis: &Bytes,
    channel_id: B256,
    domain: &Domain,
    keys: [&LocalSigner; 2],
    ts: u64,
) -> Vec<(Transaction, Signature, Bytes)> {
    let code = MachineCode::from_artifact_json(artifacts::TIC_TAC_TOE).unwrap();
    let mut machine = MachineInstance::deploy(&code, 5_000_000).unwrap();
    machine.set_state(genesis).unwrap();
    let mut prev = entente_types::state_hash(genesis);
    let mut out = Vec::new();
    for (i, cell) in [0u8, 3, 1, 4].into_iter().enumerate() {
        let key = keys[i % 2];
        let mut transaction = Transaction {
            channelId: channel_id,
            forkCnt: 0,
            height: i as u64 + 1,
            participant: key.address(),
            timestamp: ts,
            prevStateHash: prev,
            stateHash: B256::ZERO,
            data: TicTacToe::playCall { cell }.abi_encode().into(),
        };
        let outcome = machine.apply(&transaction, None).unwrap();
        transaction.stateHash = outcome.state_hash;
        prev = outcome.state_hash;
        let signature = key.sign_digest(&domain.digest(&transaction));
        out.push((transaction, signature, outcome.state));
    }
    out
}

impl Live {
    /// The move at `height` (1..=4) of fork 0.
    pub fn x_tx(&self, height: u64) -> Transaction {
        self.moves[height as usize - 1].0.clone()
    }

    /// Posts the move at `height` as calldata, on the head the previous post made.
    pub fn post_action(&self, height: u64) -> ChainAction {
        let (transaction, signature, _) = self.moves[height as usize - 1].clone();
        let parent = if height == 1 {
            StateProof {
                kind: ProofKind::Genesis,
                transaction: Transaction::default(),
                signatures: vec![],
                state: self.genesis.clone(),
            }
        } else {
            StateProof {
                kind: ProofKind::Posted,
                transaction: Transaction::default(),
                signatures: vec![],
                state: self.moves[height as usize - 2].2.clone(),
            }
        };
        ChainAction::PostCalldata {
            transaction,
            signature,
            parent,
        }
    }

    pub async fn post(&self, height: u64) -> Receipt {
        self.x
            .execute(self.channel_id, &self.post_action(height))
            .await
            .unwrap()
    }
}
