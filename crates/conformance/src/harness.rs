//! The chain interface the conformance scenarios run against, and the fixtures they share.
//!
//! A scenario is a generic function over [`Chain`]: it sends transactions, runs read-only calls,
//! reads logs and moves time, and checks everything through the raw bytes a real chain returns
//! (revert data, log topics and data), decoded here with `entente-contracts`. Nothing in a
//! scenario knows which chain it runs on.
//!
//! # Plugging in anvil
//!
//! The anvil backend (`entente-chain`'s tests, over its JSON-RPC `ChainClient`) implements
//! [`Chain`] over JSON-RPC, each method blocking on a small current-thread tokio runtime:
//!
//! - `fund`: `anvil_setBalance(account, balance + wei)`; `balance`: `eth_getBalance`.
//! - `send`: `anvil_impersonateAccount(from)` then `eth_sendTransaction` with an explicit gas limit
//!   (so that anvil mines a reverting transaction instead of refusing it at gas estimation), then
//!   the receipt (`status`, `gasUsed`, `logs`, `blockNumber`, the block's `timestamp`). A receipt
//!   carries no revert data: the adapter gets it by replaying the call with `eth_call` at the
//!   parent block (or `debug_traceTransaction`).
//! - `view`: `eth_call` at `latest`; revert data from the JSON-RPC error's `data`.
//! - `logs_since`: `eth_getLogs { fromBlock }` with each block's timestamp.
//! - `now`: the latest block's timestamp; `advance`: `evm_increaseTime(seconds)` + `evm_mine`.
//! - `fee`: `gasUsed × effectiveGasPrice` of the receipt (the scenarios check balances net of fees).
//! - `chain_id`: 31337; `manager`: deployed by anvil's first account at nonce 0, it gets the same
//!   address as on the devchain (`DevChain::DEPLOYER`), so even the EIP-712 domains coincide.
//!
//! Anvil gives every block a timestamp above its parent's, the devchain lets blocks share one
//! (time moves only when told): the scenarios keep a margin of several seconds around every
//! deadline they test, so both chains must give the same verdicts.

use alloy_primitives::{Address, B256, Bytes, Log, U256, keccak256};
use alloy_sol_types::{SolCall, SolValue};
use entente_contracts::IStateChannelManager::{self, ChannelSpec, StateProof};
use entente_contracts::{
    ManagerError, ManagerEvent, Payments, ProofKind, RoundRobinCounter, TicTacToe, artifacts,
    decode_manager_error,
};
use entente_evm_runtime::{MachineCode, MachineInstance};
use entente_types::{Domain, LocalSigner, Signer, Transaction};

/// What the conformance scenarios need from a chain. Infrastructure failures panic (tests only);
/// everything the contracts decide comes back as data.
pub trait Chain {
    /// The chain id (`block.chainid`).
    fn chain_id(&self) -> u64;
    /// The StateChannelManager under test.
    fn manager(&self) -> Address;
    /// Adds `wei` to `account`'s balance.
    fn fund(&mut self, account: Address, wei: U256);
    /// `account`'s balance.
    fn balance(&mut self, account: Address) -> U256;
    /// Deploys `creation_code` from `from`.
    fn deploy(&mut self, from: Address, creation_code: Bytes) -> Address;
    /// Mines one transaction; a revert is an outcome, not a panic.
    fn send(&mut self, from: Address, to: Address, calldata: Bytes, value: U256) -> Sent;
    /// `eth_call`: the return data, or the revert data.
    fn view(&mut self, to: Address, calldata: Bytes) -> Result<Bytes, Bytes>;
    /// Every log of blocks `block` and above.
    fn logs_since(&mut self, block: u64) -> Vec<ChainLog>;
    /// The latest block's number.
    fn block_number(&mut self) -> u64;
    /// Chain time: the next transaction sees at least this timestamp.
    fn now(&mut self) -> u64;
    /// Moves chain time forward.
    fn advance(&mut self, seconds: u64);
}

/// A mined transaction, as any chain reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The transaction succeeded (receipt status 1).
    pub success: bool,
    /// Gas the transaction used (the transaction gas: 21,000 + calldata + execution).
    pub gas_used: u64,
    /// What the sender paid for gas (0 on a chain whose gas is free).
    pub fee: U256,
    /// Return data on success, revert data on failure.
    pub output: Bytes,
    /// Every log it emitted (none when it reverted).
    pub logs: Vec<Log>,
    /// The block that holds it.
    pub block_number: u64,
    /// That block's timestamp.
    pub timestamp: u64,
}

impl Sent {
    /// The manager's custom error this transaction reverted with.
    pub fn error(&self) -> Option<ManagerError> {
        if self.success {
            None
        } else {
            decode_manager_error(&self.output)
        }
    }

    /// The manager events it emitted.
    pub fn events(&self) -> Vec<ManagerEvent> {
        self.logs
            .iter()
            .filter_map(|l| entente_contracts::decode_manager_log(l.topics(), &l.data.data))
            .collect()
    }
}

/// A log with the block that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainLog {
    /// The block that holds it.
    pub block_number: u64,
    /// That block's timestamp.
    pub timestamp: u64,
    /// The log.
    pub log: Log,
}

/// One ether in wei.
pub const ETHER: u64 = 1_000_000_000_000_000_000;
/// `p2pTime` of every spec the fixtures build (seconds).
pub const P2P: u64 = 30;
/// `agreementTime` of the fixtures' specs (seconds).
pub const AGREE: u64 = 10;
/// `chainFallbackTime` of the fixtures' specs (seconds).
pub const FALLBACK: u64 = 60;
/// `challengeTime` of the fixtures' specs (seconds).
pub const CHALLENGE: u64 = 3600;
/// `fundingPeriod` of the fixtures' specs (seconds).
pub const FUNDING: u64 = 86_400;
/// `machineGasLimit` of the fixtures' specs, also the scratch machines' gas limit.
pub const MACHINE_GAS: u64 = 5_000_000;

/// `n` ether in wei.
pub fn ether(n: u64) -> U256 {
    U256::from(n) * U256::from(ETHER)
}

/// The keys of the forge tests (`ChannelTestBase`): `keccak256(abi.encode("entente key", i)) %
/// (n - 1) + 1`, so that the devchain sends byte-for-byte the calldata `test/Gas.t.sol` measures.
pub fn forge_key(i: u64) -> LocalSigner {
    const SECP256K1_N: U256 =
        alloy_primitives::uint!(0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141_U256);
    let encoded = ("entente key".to_string(), U256::from(i)).abi_encode_params();
    let k = U256::from_be_bytes(keccak256(encoded).0) % (SECP256K1_N - U256::from(1u8)) + U256::from(1u8);
    LocalSigner::from_bytes(&B256::from(k.to_be_bytes::<32>())).unwrap()
}

/// A chain with the manager, the two example machines, eight funded participants, and scratch
/// machines (the off-chain runtime, same bytecode) that compute every transition's state.
pub struct World<C: Chain> {
    /// The chain under test.
    pub chain: C,
    /// The eight participants' keys ([`forge_key`] 0..8), each funded with 100 ether.
    pub keys: Vec<LocalSigner>,
    /// The manager's EIP-712 domain on this chain.
    pub domain: Domain,
    /// The deployed TicTacToe machine.
    pub ttt: Address,
    /// The deployed RoundRobinCounter machine.
    pub rr: Address,
    /// The deployed Payments machine (anyone may write, by signed intents).
    pub payments: Address,
    ttt_scratch: MachineInstance,
    rr_scratch: MachineInstance,
}

impl<C: Chain> World<C> {
    /// Deploys the two machines on `chain` (from `0xd0…d0`), funds the eight participants and
    /// prepares the scratch machines. The chain must already have its manager.
    pub fn new(mut chain: C) -> Self {
        let deployer = Address::repeat_byte(0xd0);
        let ttt_code = MachineCode::from_artifact_json(artifacts::TIC_TAC_TOE).unwrap();
        let rr_code = MachineCode::from_artifact_json(artifacts::ROUND_ROBIN_COUNTER).unwrap();
        let ttt = chain.deploy(deployer, TicTacToe::BYTECODE.clone());
        let rr = chain.deploy(deployer, RoundRobinCounter::BYTECODE.clone());
        let payments = chain.deploy(deployer, Payments::BYTECODE.clone());
        let keys: Vec<LocalSigner> = (0..8).map(forge_key).collect();
        for k in &keys {
            chain.fund(k.address(), ether(100));
        }
        let domain = Domain::new(chain.chain_id(), chain.manager());
        Self {
            chain,
            keys,
            domain,
            ttt,
            rr,
            payments,
            ttt_scratch: MachineInstance::deploy(&ttt_code, MACHINE_GAS).unwrap(),
            rr_scratch: MachineInstance::deploy(&rr_code, MACHINE_GAS).unwrap(),
        }
    }

    /// Participant `i`'s address.
    pub fn addr(&self, i: usize) -> Address {
        self.keys[i].address()
    }

    /// The first `n` participants' addresses.
    pub fn addrs(&self, n: usize) -> Vec<Address> {
        (0..n).map(|i| self.addr(i)).collect()
    }

    // ------------------------------------------------------------------ specs

    /// A spec over `machine` for the first `n` participants: 1 ether each, ETH, the fixture times.
    pub fn spec(&self, machine: Address, n: usize) -> ChannelSpec {
        ChannelSpec {
            participants: self.addrs(n),
            deposits: vec![ether(1); n],
            stateMachine: machine,
            token: Address::ZERO,
            p2pTime: P2P,
            agreementTime: AGREE,
            chainFallbackTime: FALLBACK,
            challengeTime: CHALLENGE,
            fundingPeriod: FUNDING,
            machineGasLimit: MACHINE_GAS,
            salt: keccak256("salt"),
        }
    }

    /// A 2-party TicTacToe spec (participants 0 and 1) and its genesis state.
    pub fn ttt_spec(&mut self) -> (ChannelSpec, Bytes) {
        let spec = self.spec(self.ttt, 2);
        let call = TicTacToe::initialStateCall {
            x: self.addr(0),
            o: self.addr(1),
            stake: ether(1),
        };
        let genesis = self.view_typed(self.ttt, &call).unwrap();
        (spec, genesis)
    }

    /// An `n`-party RoundRobinCounter spec counting to `target`, and its genesis state.
    pub fn rr_spec(&mut self, n: usize, target: u64) -> (ChannelSpec, Bytes) {
        let spec = self.spec(self.rr, n);
        let call = RoundRobinCounter::initialStateCall {
            participants: spec.participants.clone(),
            deposits: spec.deposits.clone(),
            target,
        };
        let genesis = self.view_typed(self.rr, &call).unwrap();
        (spec, genesis)
    }

    /// An `n`-party Payments spec and its genesis state (every balance its deposit).
    pub fn payments_spec(&mut self, n: usize) -> (ChannelSpec, Bytes) {
        let spec = self.spec(self.payments, n);
        let call = Payments::initialStateCall {
            participants: spec.participants.clone(),
            deposits: spec.deposits.clone(),
        };
        let genesis = self.view_typed(self.payments, &call).unwrap();
        (spec, genesis)
    }

    /// Opens by participant 0, then every other participant deposits: the ids and receipts.
    pub fn open_funded(&mut self, spec: &ChannelSpec, genesis: &Bytes) -> (B256, Vec<Sent>) {
        let open = IStateChannelManager::openCall {
            spec: spec.clone(),
            genesisState: genesis.clone(),
        };
        let sent = self.send(0, &open, spec.deposits[0]);
        assert!(sent.success, "open: {:?}", sent.error());
        let id = IStateChannelManager::openCall::abi_decode_returns(&sent.output).unwrap();
        let mut receipts = vec![sent];
        for i in 1..spec.participants.len() {
            let deposit = IStateChannelManager::depositCall {
                channelId: id,
                index: U256::from(i),
            };
            let sent = self.send(i, &deposit, spec.deposits[i]);
            assert!(sent.success, "deposit {i}: {:?}", sent.error());
            receipts.push(sent);
        }
        (id, receipts)
    }

    // ------------------------------------------------------------------ transactions

    fn transition(
        &mut self,
        rr: bool,
        mut tx: Transaction,
        prev: &Bytes,
    ) -> Result<(Transaction, Bytes), entente_evm_runtime::EvmError> {
        let machine = if rr {
            &mut self.rr_scratch
        } else {
            &mut self.ttt_scratch
        };
        machine.set_state(prev)?;
        let outcome = machine.apply(&tx, None)?;
        tx.stateHash = outcome.state_hash;
        Ok((tx, outcome.state))
    }

    #[allow(clippy::too_many_arguments)]
    fn tx(
        &self,
        id: B256,
        fork: u64,
        height: u64,
        issuer: usize,
        ts: u64,
        prev: &Bytes,
        data: Vec<u8>,
    ) -> Transaction {
        Transaction {
            channelId: id,
            forkCnt: fork,
            height,
            participant: self.addr(issuer),
            timestamp: ts,
            prevStateHash: keccak256(prev),
            stateHash: B256::ZERO,
            data: data.into(),
        }
    }

    /// A tic-tac-toe move by `issuer` on `prev`, with the state it produces.
    #[allow(clippy::too_many_arguments)]
    pub fn ttt_move(
        &mut self,
        id: B256,
        fork: u64,
        height: u64,
        issuer: usize,
        ts: u64,
        prev: &Bytes,
        cell: u8,
    ) -> (Transaction, Bytes) {
        let tx = self.tx(
            id,
            fork,
            height,
            issuer,
            ts,
            prev,
            TicTacToe::playCall { cell }.abi_encode(),
        );
        self.transition(false, tx, prev).unwrap()
    }

    /// A round-robin `add(step)` by `issuer` on `prev`, with the state it produces.
    #[allow(clippy::too_many_arguments)]
    pub fn rr_add(
        &mut self,
        id: B256,
        fork: u64,
        height: u64,
        issuer: usize,
        ts: u64,
        prev: &Bytes,
        step: u64,
    ) -> (Transaction, Bytes) {
        let tx = self.tx(
            id,
            fork,
            height,
            issuer,
            ts,
            prev,
            RoundRobinCounter::addCall { step }.abi_encode(),
        );
        self.transition(true, tx, prev).unwrap()
    }

    /// Who writes after `state` (RoundRobinCounter), by the off-chain runtime.
    pub fn rr_next(&mut self, state: &Bytes) -> Address {
        self.rr_scratch.set_state(state).unwrap();
        self.rr_scratch.next_to_write().unwrap()
    }

    // ------------------------------------------------------------------ signatures and proofs

    /// Participant `i`'s signature of `tx` under `domain`.
    pub fn sign_in(&self, domain: &Domain, i: usize, tx: &Transaction) -> Bytes {
        Bytes::copy_from_slice(self.keys[i].sign_digest(&domain.digest(tx)).as_bytes())
    }

    /// Participant `i`'s signature of `tx` under the manager's domain.
    pub fn sign(&self, i: usize, tx: &Transaction) -> Bytes {
        self.sign_in(&self.domain, i, tx)
    }

    /// The signatures of `signers` (participant indices, in that order) of `tx`.
    pub fn sign_with(&self, signers: &[usize], tx: &Transaction) -> Vec<Bytes> {
        signers.iter().map(|&i| self.sign(i, tx)).collect()
    }

    /// A `Signed` state proof of `tx` producing `state`, signed by `signers`.
    pub fn signed_proof(&self, tx: &Transaction, state: &Bytes, signers: &[usize]) -> StateProof {
        StateProof {
            kind: ProofKind::Signed as u8,
            transaction: tx.clone().into(),
            signatures: self.sign_with(signers, tx),
            state: state.clone(),
        }
    }

    /// A `Posted` state proof of `tx` (posted as calldata) producing `state`.
    pub fn posted_proof(&self, tx: &Transaction, state: &Bytes) -> StateProof {
        StateProof {
            kind: ProofKind::Posted as u8,
            transaction: tx.clone().into(),
            signatures: vec![],
            state: state.clone(),
        }
    }

    /// A `Genesis` state proof of the current fork's genesis `state`.
    pub fn genesis_proof(&self, state: &Bytes) -> StateProof {
        StateProof {
            kind: ProofKind::Genesis as u8,
            transaction: IStateChannelManager::Transaction::default(),
            signatures: vec![],
            state: state.clone(),
        }
    }

    // ------------------------------------------------------------------ calls

    /// Participant `from` calls the manager.
    pub fn send<T: SolCall>(&mut self, from: usize, call: &T, value: U256) -> Sent {
        let from = self.addr(from);
        self.send_from(from, call, value)
    }

    /// Any account `from` calls the manager.
    pub fn send_from<T: SolCall>(&mut self, from: Address, call: &T, value: U256) -> Sent {
        let manager = self.chain.manager();
        self.chain.send(from, manager, call.abi_encode().into(), value)
    }

    /// A read-only call of the manager.
    pub fn view<T: SolCall>(&mut self, call: &T) -> T::Return {
        let manager = self.chain.manager();
        self.view_typed(manager, call).unwrap()
    }

    /// A typed read-only call of `to`: the decoded return, or the revert data.
    pub fn view_typed<T: SolCall>(&mut self, to: Address, call: &T) -> Result<T::Return, Bytes> {
        let out = self.chain.view(to, call.abi_encode().into())?;
        Ok(T::abi_decode_returns(&out).unwrap())
    }

    /// The manager's record of channel `id` (`getChannel`).
    pub fn channel(&mut self, id: B256) -> IStateChannelManager::Channel {
        self.view(&IStateChannelManager::getChannelCall { channelId: id })
    }

    /// Chain time ([`Chain::now`]).
    pub fn now(&mut self) -> u64 {
        self.chain.now()
    }

    /// Advances chain time to at least `t`.
    pub fn warp_past(&mut self, t: u64) {
        let now = self.chain.now();
        if t > now {
            self.chain.advance(t - now);
        }
    }

    /// The manager's events since `block`, with their logs.
    pub fn events_since(&mut self, block: u64) -> Vec<(ChainLog, ManagerEvent)> {
        let manager = self.chain.manager();
        self.chain
            .logs_since(block)
            .into_iter()
            .filter(|l| l.log.address == manager)
            .filter_map(|l| {
                let event = entente_contracts::decode_manager_log(l.log.topics(), &l.log.data.data)?;
                Some((l, event))
            })
            .collect()
    }
}

/// Asserts that `sent` reverted with the manager error `expected`.
#[track_caller]
pub fn assert_refused(sent: &Sent, expected: ManagerError) {
    assert!(!sent.success, "expected {expected:?}, the transaction succeeded");
    assert_eq!(sent.error(), Some(expected));
}

/// `keccak256(abi.encodePacked(participants))`: each address as a 32-byte word.
pub fn participants_hash(participants: &[Address]) -> B256 {
    let mut buf = Vec::with_capacity(32 * participants.len());
    for p in participants {
        buf.extend_from_slice(&[0u8; 12]);
        buf.extend_from_slice(p.as_slice());
    }
    keccak256(buf)
}
