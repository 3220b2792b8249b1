//! The conformance suite of `entente-conformance` on a real anvil, through [`ChainClient`]: the
//! same scenarios, with the same verdicts, as on the in-process chain.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout)] // test helpers

use std::collections::{HashMap, HashSet};

use alloy::network::TransactionBuilder;
use alloy::primitives::{Address, Bytes, U256, address};
use alloy::providers::Provider;
use alloy::rpc::types::{Filter, TransactionRequest};
use entente_chain::{Anvil, ChainClient};
use entente_conformance::harness::ether;
use entente_conformance::{Chain, ChainLog, Sent, World};
use entente_devchain::DevChain;
use tokio::runtime::Runtime;

/// Gas limit of every conformance transaction: explicit, so reverting ones are mined.
const GAS: u64 = 15_000_000;

/// Where anvil's first account deploys the manager with its first transaction, as on the
/// devchain.
const MANAGER: Address = address!("9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0");

/// anvil as a conformance [`Chain`]: every method blocks on a current-thread runtime. Senders
/// are impersonated (`eth_sendTransaction`), so any account the scenarios name can send.
struct AnvilChain {
    rt: Runtime,
    client: ChainClient,
    impersonated: HashSet<Address>,
    timestamps: HashMap<u64, u64>,
    // Last: dropped (and anvil killed) after everything that talks to it.
    _anvil: Anvil,
}

impl AnvilChain {
    fn with_manager() -> Self {
        let anvil = Anvil::spawn().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = rt.block_on(async {
            let mut client = ChainClient::connect(&anvil.endpoint(), anvil.signer(0).unwrap())
                .await
                .unwrap();
            assert_eq!(client.address(), DevChain::DEPLOYER);
            client.deploy_manager().await.unwrap();
            client
        });
        assert_eq!(client.manager(), Some(MANAGER), "the devchain's manager address");
        Self {
            rt,
            client,
            impersonated: HashSet::new(),
            timestamps: HashMap::new(),
            _anvil: anvil,
        }
    }

    fn impersonate(&mut self, from: Address) {
        if self.impersonated.insert(from) {
            self.rt.block_on(self.client.dev_impersonate(from)).unwrap();
        }
    }

    fn timestamp(&mut self, block: u64) -> u64 {
        if let Some(t) = self.timestamps.get(&block) {
            return *t;
        }
        let t = self.rt.block_on(self.client.block_timestamp(block)).unwrap();
        self.timestamps.insert(block, t);
        t
    }
}

impl Chain for AnvilChain {
    fn chain_id(&self) -> u64 {
        self.client.chain_id()
    }

    fn manager(&self) -> Address {
        self.client.manager().unwrap()
    }

    fn fund(&mut self, account: Address, wei: U256) {
        let balance = self.balance(account);
        self.rt
            .block_on(self.client.dev_set_balance(account, balance + wei))
            .unwrap();
    }

    fn balance(&mut self, account: Address) -> U256 {
        self.rt.block_on(self.client.balance(account)).unwrap()
    }

    fn deploy(&mut self, from: Address, creation_code: Bytes) -> Address {
        // The devchain's gas is free; here the deployer pays for it.
        if self.balance(from) < ether(1) {
            self.fund(from, ether(10));
        }
        self.impersonate(from);
        let receipt = self
            .rt
            .block_on(
                self.client
                    .send_unsigned(from, None, creation_code, U256::ZERO, GAS),
            )
            .unwrap();
        assert!(receipt.success, "deployment reverted: {:?}", receipt.revert);
        receipt.contract_address.unwrap()
    }

    fn send(&mut self, from: Address, to: Address, calldata: Bytes, value: U256) -> Sent {
        self.impersonate(from);
        let receipt = self
            .rt
            .block_on(
                self.client
                    .send_unsigned(from, Some(to), calldata.clone(), value, GAS),
            )
            .unwrap();
        // The return data (or revert data): the same call at the parent block.
        let replay = TransactionRequest::default()
            .with_from(from)
            .with_to(to)
            .with_input(calldata)
            .with_value(value)
            .with_gas_limit(GAS);
        let output = match self
            .rt
            .block_on(self.client.call_at(replay, Some(receipt.block_number - 1)))
            .unwrap()
        {
            Ok(out) | Err(out) => out,
        };
        if !receipt.success {
            assert!(receipt.revert.is_some(), "a failed receipt carries its revert");
        }
        self.timestamps.insert(receipt.block_number, receipt.timestamp);
        Sent {
            success: receipt.success,
            gas_used: receipt.gas_used,
            fee: receipt.fee(),
            output,
            logs: receipt.logs,
            block_number: receipt.block_number,
            timestamp: receipt.timestamp,
        }
    }

    fn view(&mut self, to: Address, calldata: Bytes) -> Result<Bytes, Bytes> {
        let request = TransactionRequest::default().with_to(to).with_input(calldata);
        self.rt.block_on(self.client.call_at(request, None)).unwrap()
    }

    fn logs_since(&mut self, block: u64) -> Vec<ChainLog> {
        let filter = Filter::new().from_block(block);
        let logs = self
            .rt
            .block_on(self.client.provider().get_logs(&filter))
            .unwrap();
        logs.into_iter()
            .map(|log| {
                let block_number = log.block_number.unwrap();
                ChainLog {
                    block_number,
                    timestamp: self.timestamp(block_number),
                    log: log.inner,
                }
            })
            .collect()
    }

    fn block_number(&mut self) -> u64 {
        self.rt.block_on(self.client.block_number()).unwrap()
    }

    fn now(&mut self) -> u64 {
        self.rt.block_on(self.client.now()).unwrap()
    }

    fn advance(&mut self, seconds: u64) {
        self.rt
            .block_on(async {
                self.client.dev_increase_time(seconds).await?;
                self.client.dev_mine().await
            })
            .unwrap();
    }
}

fn world() -> World<AnvilChain> {
    World::new(AnvilChain::with_manager())
}

/// Every conformance scenario, one test each, on a fresh anvil.
mod scenarios {
    entente_conformance::conformance_tests!(super::world());
}

/// The same operations cost the same gas on anvil as on the in-process chain: the same
/// bytecode at the same addresses runs the same calldata (up to the timestamps in it, which
/// follow each chain's clock).
#[test]
fn gas_matches_the_devchain() {
    let on_anvil = entente_conformance::scenarios::gas_of_operations(&mut world());
    let on_devchain = {
        let mut chain = DevChain::with_manager().unwrap();
        chain.fund(Address::repeat_byte(0xd0), ether(10)).unwrap();
        let mut w = World::new(DevChainAdapter(chain));
        entente_conformance::scenarios::gas_of_operations(&mut w)
    };
    println!("{:<44} {:>10} {:>10}", "operation (N = 2)", "anvil", "devchain");
    for (a, d) in on_anvil.iter().zip(&on_devchain) {
        assert_eq!(a.operation, d.operation);
        println!("{:<44} {:>10} {:>10}", a.operation, a.measured, d.measured);
    }
    for (a, d) in on_anvil.iter().zip(&on_devchain) {
        assert!(
            a.measured.abs_diff(d.measured) <= 100,
            "{}: {} on anvil against {} on the devchain",
            a.operation,
            a.measured,
            d.measured
        );
    }
}

/// Just enough of the devchain as a [`Chain`] for the gas comparison (its full conformance
/// suite lives in `entente-devchain`).
struct DevChainAdapter(DevChain);

impl Chain for DevChainAdapter {
    fn chain_id(&self) -> u64 {
        self.0.chain_id()
    }
    fn manager(&self) -> Address {
        self.0.manager().unwrap()
    }
    fn fund(&mut self, account: Address, wei: U256) {
        self.0.fund(account, wei).unwrap();
    }
    fn balance(&mut self, account: Address) -> U256 {
        self.0.balance(account)
    }
    fn deploy(&mut self, from: Address, creation_code: Bytes) -> Address {
        self.0.deploy(from, creation_code).unwrap()
    }
    fn send(&mut self, from: Address, to: Address, calldata: Bytes, value: U256) -> Sent {
        let r = self.0.send(from, to, calldata, value).unwrap();
        Sent {
            success: r.success,
            gas_used: r.gas_used,
            fee: U256::ZERO,
            output: r.output,
            logs: r.logs.into_iter().map(|l| l.log).collect(),
            block_number: r.block_number,
            timestamp: r.timestamp,
        }
    }
    fn view(&mut self, to: Address, calldata: Bytes) -> Result<Bytes, Bytes> {
        match self.0.view(to, calldata) {
            Ok(out) => Ok(out),
            Err(entente_devchain::DevChainError::Reverted(entente_devchain::Revert::Raw(d))) => Err(d),
            Err(e) => panic!("{e}"),
        }
    }
    fn logs_since(&mut self, block: u64) -> Vec<ChainLog> {
        self.0
            .logs_since(block)
            .into_iter()
            .map(|l| ChainLog {
                block_number: l.block_number,
                timestamp: l.timestamp,
                log: l.log,
            })
            .collect()
    }
    fn block_number(&mut self) -> u64 {
        self.0.block_number()
    }
    fn now(&mut self) -> u64 {
        self.0.timestamp()
    }
    fn advance(&mut self, seconds: u64) {
        self.0.advance(seconds).unwrap();
    }
}
