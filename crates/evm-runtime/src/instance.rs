use std::sync::{Arc, OnceLock};

use alloy_json_abi::JsonAbi;
use alloy_primitives::{Address, B256, Bytes, TxKind, U256, keccak256};
use alloy_sol_types::{SolCall, SolValue};
use entente_types::Transaction;
use revm::context::result::{ExecutionResult, Output};
use revm::context::{BlockEnv, CfgEnv, Context, TxEnv};
use revm::database::{CacheDB, EmptyDB};
use revm::handler::{MainBuilder, MainnetContext, MainnetEvm};
use revm::primitives::hardfork::SpecId;
use revm::{ExecuteCommitEvm, ExecuteEvm, MainContext};

use crate::{EvmError, Revert};

alloy_sol_types::sol! {
    /// What leaves the channel with whom (`Exit` of `contracts/src/ChannelTypes.sol`).
    #[derive(Debug, PartialEq, Eq)]
    struct Exit {
        address participant;
        uint256 amount;
    }

    /// The calls the runtime makes on any machine (`IStateMachine`).
    interface IStateMachine {
        function setState(bytes state) external;
        function getState() external view returns (bytes);
        function getParticipants() external view returns (address[]);
        function getNextToWrite() external view returns (address);
        function isGameOver() external view returns (bool);
        function nextToWriteOf(bytes state) external view returns (address);
        function participantsOf(bytes state) external view returns (address[]);
        function exitsOf(bytes state) external view returns (Exit[]);
        function isGameOverOf(bytes state) external view returns (bool);
        function getExits() external view returns (Exit[]);
        function joinParticipant(address participant, uint256 amount, bytes data) external returns (Exit[]);
        function removeParticipant(address participant) external returns (Exit[]);
        function slashParticipant(address participant) external returns (Exit[]);
    }

    /// `Intent` of `contracts/src/AIntentMachine.sol`.
    #[derive(Debug, PartialEq, Eq)]
    struct IntentCall {
        bytes32 channelId;
        address issuer;
        uint64 nonce;
        uint64 notAfter;
        bytes data;
    }

    /// The calls of a machine in which anyone may write (`AIntentMachine`).
    interface IIntentMachine {
        function applyIntents(IntentCall[] intents, bytes[] signatures) external;
        function intentNonceOf(address issuer) external view returns (uint64);
    }
}

/// The calldata of a sequencer's move: `applyIntents(intents, signatures)`.
pub fn apply_intents_calldata(intents: &[entente_types::SignedIntent]) -> Bytes {
    IIntentMachine::applyIntentsCall {
        intents: intents
            .iter()
            .map(|i| IntentCall {
                channelId: i.channel_id,
                issuer: i.issuer,
                nonce: i.nonce,
                notAfter: i.not_after,
                data: i.data.clone(),
            })
            .collect(),
        signatures: intents
            .iter()
            .map(|i| Bytes::copy_from_slice(i.signature.as_bytes()))
            .collect(),
    }
    .abi_encode()
    .into()
}

/// The account that deploys and calls the machine inside the runtime.
const CALLER: Address = Address::new([0xe7; 20]);

/// `stateTransition((bytes32,uint64,uint64,address,uint64,bytes32,bytes32,bytes))`.
fn state_transition_selector() -> [u8; 4] {
    let hash =
        keccak256("stateTransition((bytes32,uint64,uint64,address,uint64,bytes32,bytes32,bytes))".as_bytes());
    [hash[0], hash[1], hash[2], hash[3]]
}

/// A state machine's compiled code and ABI, loaded once and shared by every channel that runs it.
#[derive(Debug, Clone)]
pub struct MachineCode {
    creation: Bytes,
    abi: Option<Arc<JsonAbi>>,
    /// The machine deployed once, shared by the clones of this code: every instance starts
    /// from a copy of its database, whose runtime code is shared rather than copied.
    template: Arc<OnceLock<Result<Template, EvmError>>>,
}

/// The database right after the machine's deployment (the deployer's account and the machine's,
/// with its runtime code and the storage its constructor wrote).
#[derive(Debug, Clone)]
struct Template {
    db: CacheDB<EmptyDB>,
    machine: Address,
}

impl MachineCode {
    /// From creation bytecode, with the ABI used to decode custom errors (optional).
    pub fn new(creation: Bytes, abi: Option<JsonAbi>) -> Self {
        Self {
            creation,
            abi: abi.map(Arc::new),
            template: Arc::new(OnceLock::new()),
        }
    }

    /// The machine deployed into an empty database, once for every clone of this code.
    fn template(&self) -> Result<&Template, EvmError> {
        self.template
            .get_or_init(|| Template::deploy(self))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// From an exported artifact (`{"abi": [...], "bytecode": "0x..."}`).
    pub fn from_artifact_json(json: &str) -> Result<Self, EvmError> {
        #[derive(serde::Deserialize)]
        struct Artifact {
            abi: JsonAbi,
            bytecode: Bytes,
        }
        let artifact: Artifact = serde_json::from_str(json).map_err(|e| EvmError::Artifact(e.to_string()))?;
        if artifact.bytecode.is_empty() {
            return Err(EvmError::Artifact(
                "no creation bytecode (abstract contract or interface?)".into(),
            ));
        }
        Ok(Self::new(artifact.bytecode, Some(artifact.abi)))
    }

    /// The code hash of the creation bytecode (identifies the machine).
    pub fn creation_hash(&self) -> B256 {
        keccak256(&self.creation)
    }
}

/// What a successful [`MachineInstance::apply`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyOutcome {
    /// The encoded state after the transition.
    pub state: Bytes,
    /// Its hash (keccak256).
    pub state_hash: B256,
    /// Gas the transition used.
    pub gas_used: u64,
}

type Evm = MainnetEvm<MainnetContext<CacheDB<EmptyDB>>>;

/// An EVM over `db`, configured as every instance is.
fn build_evm(db: CacheDB<EmptyDB>) -> Evm {
    let mut cfg = CfgEnv::new_with_spec(SpecId::CANCUN);
    cfg.disable_nonce_check = true;
    cfg.limit_contract_code_size = Some(usize::MAX);
    let block = BlockEnv {
        gas_limit: u64::MAX,
        basefee: 0,
        ..Default::default()
    };
    Context::mainnet()
        .with_db(db)
        .with_cfg(cfg)
        .with_block(block)
        .build_mainnet()
}

impl Template {
    /// Runs the creation code in a fresh EVM.
    fn deploy(code: &MachineCode) -> Result<Self, EvmError> {
        let mut evm = build_evm(CacheDB::new(EmptyDB::default()));
        let tx = TxEnv::builder()
            .caller(CALLER)
            .kind(TxKind::Create)
            .data(code.creation.clone())
            .gas_limit(30_000_000)
            .gas_price(0)
            .nonce(0)
            .build()
            .map_err(|e| EvmError::Internal(format!("{e:?}")))?;
        let result = evm
            .transact_commit(tx)
            .map_err(|e| EvmError::Deploy(format!("{e:?}")))?;
        let machine = match result {
            ExecutionResult::Success {
                output: Output::Create(_, Some(address)),
                ..
            } => address,
            ExecutionResult::Success { .. } => return Err(EvmError::Deploy("no contract created".into())),
            ExecutionResult::Revert { output, .. } => {
                return Err(EvmError::Deploy(
                    Revert::decode(&output, code.abi.as_deref()).to_string(),
                ));
            }
            ExecutionResult::Halt { reason, .. } => return Err(EvmError::Deploy(format!("{reason:?}"))),
        };
        Ok(Self {
            db: std::mem::take(&mut evm.ctx.journaled_state.database),
            machine,
        })
    }
}

/// One channel's state machine: deployed once, one EVM reused for every call. An instance can
/// [`sleep`](Self::sleep): it keeps only its database (the machine's storage; the code is
/// shared) and builds its EVM again on its next call, so that a node holding many idle
/// channels does not hold an EVM for each.
pub struct MachineInstance {
    /// The EVM, `None` while the instance sleeps.
    evm: Option<Box<Evm>>,
    /// The database while the instance sleeps (empty while it is awake).
    parked: CacheDB<EmptyDB>,
    machine: Address,
    gas_limit: u64,
    abi: Option<Arc<JsonAbi>>,
    selector: [u8; 4],
    /// Counts committed changes, to catch a stale [`Pending`].
    generation: u64,
}

/// A transition executed but not committed (see [`MachineInstance::execute`]).
#[derive(Debug)]
pub struct Pending {
    outcome: ApplyOutcome,
    changes: revm::state::EvmState,
    generation: u64,
}

impl Pending {
    /// What the transition produced.
    pub fn outcome(&self) -> &ApplyOutcome {
        &self.outcome
    }
}

impl std::fmt::Debug for MachineInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MachineInstance")
            .field("machine", &self.machine)
            .field("gas_limit", &self.gas_limit)
            .finish_non_exhaustive()
    }
}

impl MachineInstance {
    /// Deploys `code` into a fresh in-memory EVM. `gas_limit` bounds every later call. The
    /// creation code runs once for all the instances of a [`MachineCode`] (and its clones);
    /// each instance starts from a copy of that deployment.
    pub fn deploy(code: &MachineCode, gas_limit: u64) -> Result<Self, EvmError> {
        let template = code.template()?;
        Ok(Self {
            evm: Some(Box::new(build_evm(template.db.clone()))),
            parked: CacheDB::default(),
            machine: template.machine,
            gas_limit,
            abi: code.abi.clone(),
            selector: state_transition_selector(),
            generation: 0,
        })
    }

    /// Drops the EVM and keeps only the database; the next call builds the EVM again. Calls
    /// give the same results either way. Between [`Self::execute`] and [`Self::commit`] the
    /// instance may sleep too: the pending changes apply to the same database.
    pub fn sleep(&mut self) {
        if let Some(mut evm) = self.evm.take() {
            self.parked = std::mem::take(&mut evm.ctx.journaled_state.database);
        }
    }

    /// True while the instance sleeps (see [`Self::sleep`]).
    pub fn is_asleep(&self) -> bool {
        self.evm.is_none()
    }

    /// The EVM, built again if the instance sleeps.
    fn evm(&mut self) -> &mut Evm {
        self.evm
            .get_or_insert_with(|| Box::new(build_evm(std::mem::take(&mut self.parked))))
    }

    /// The database, awake or asleep.
    fn db(&self) -> &CacheDB<EmptyDB> {
        self.evm
            .as_ref()
            .map_or(&self.parked, |evm| &evm.ctx.journaled_state.database)
    }

    /// The gas limit of every call.
    pub fn gas_limit(&self) -> u64 {
        self.gas_limit
    }

    /// Address of the machine inside this runtime.
    pub fn address(&self) -> Address {
        self.machine
    }

    /// The machine's runtime code as its deployment left it (what `eth_getCode` returns for a
    /// deployment of the same creation code with no constructor arguments).
    pub fn runtime_code(&self) -> Bytes {
        self.db()
            .cache
            .accounts
            .get(&self.machine)
            .and_then(|a| a.info.code.as_ref())
            .map(|c| c.original_bytes())
            .unwrap_or_default()
    }

    fn tx_env(&self, data: Bytes) -> Result<TxEnv, EvmError> {
        TxEnv::builder()
            .caller(CALLER)
            .kind(TxKind::Call(self.machine))
            .data(data)
            .gas_limit(self.gas_limit)
            .gas_price(0)
            .nonce(0)
            .build()
            .map_err(|e| EvmError::Internal(format!("{e:?}")))
    }

    /// Runs one call inside the current journal; the caller finalizes (commits or drops).
    fn run(&mut self, data: Bytes) -> Result<(Bytes, u64), EvmError> {
        let tx = self.tx_env(data)?;
        let result = self
            .evm()
            .transact_one(tx)
            .map_err(|e| EvmError::Internal(format!("{e:?}")))?;
        match result {
            ExecutionResult::Success { output, gas, .. } => Ok((output.into_data(), gas.tx_gas_used())),
            ExecutionResult::Revert { output, .. } => {
                Err(EvmError::Reverted(Revert::decode(&output, self.abi.as_deref())))
            }
            ExecutionResult::Halt { reason, .. } => Err(EvmError::Halted {
                reason: format!("{reason:?}"),
                gas_limit: self.gas_limit,
            }),
        }
    }

    /// A read-only call: its effects are discarded.
    pub fn view(&mut self, data: Bytes) -> Result<Bytes, EvmError> {
        let result = self.run(data);
        let _discard = self.evm().finalize();
        result.map(|(out, _)| out)
    }

    /// A state-changing call whose effects are kept when it succeeds.
    fn mutate(&mut self, data: Bytes) -> Result<Bytes, EvmError> {
        match self.run(data) {
            Ok((out, _)) => {
                let state = self.evm().finalize();
                self.evm().commit(state);
                self.generation += 1;
                Ok(out)
            }
            Err(e) => {
                let _discard = self.evm().finalize();
                Err(e)
            }
        }
    }

    /// A typed read-only call.
    pub fn view_decode<C: SolCall>(&mut self, call: &C) -> Result<C::Return, EvmError> {
        let out = self.view(call.abi_encode().into())?;
        C::abi_decode_returns(&out).map_err(|e| EvmError::BadReturn {
            call: C::SIGNATURE,
            reason: e.to_string(),
        })
    }

    /// Replaces the machine's state (`setState`).
    pub fn set_state(&mut self, state: &[u8]) -> Result<(), EvmError> {
        let call = IStateMachine::setStateCall {
            state: Bytes::copy_from_slice(state),
        };
        self.mutate(call.abi_encode().into()).map(|_| ())
    }

    /// The encoded current state (`getState`).
    pub fn state(&mut self) -> Result<Bytes, EvmError> {
        self.view_decode(&IStateMachine::getStateCall {})
    }

    /// Participants of the current state.
    pub fn participants(&mut self) -> Result<Vec<Address>, EvmError> {
        self.view_decode(&IStateMachine::getParticipantsCall {})
    }

    /// Who writes next (`Address::ZERO` if nobody).
    pub fn next_to_write(&mut self) -> Result<Address, EvmError> {
        self.view_decode(&IStateMachine::getNextToWriteCall {})
    }

    /// The nonce `issuer`'s next intent must carry (a machine where anyone may write), or an
    /// error for a machine without intents.
    pub fn intent_nonce_of(&mut self, issuer: Address) -> Result<u64, EvmError> {
        self.view_decode(&IIntentMachine::intentNonceOfCall { issuer })
    }

    /// True when no further transition is possible.
    pub fn is_game_over(&mut self) -> Result<bool, EvmError> {
        self.view_decode(&IStateMachine::isGameOverCall {})
    }

    /// Who writes next after `state` (`Address::ZERO` if nobody), asked as the court asks it
    /// (`nextToWriteOf(state)`): what the chain will hold a participant to, even if the machine's
    /// `getNextToWrite()` said otherwise.
    pub fn next_to_write_of(&mut self, state: &Bytes) -> Result<Address, EvmError> {
        self.view_decode(&IStateMachine::nextToWriteOfCall { state: state.clone() })
    }

    /// True when no further transition is possible after `state`, asked as the court asks it
    /// (`isGameOverOf(state)`).
    pub fn is_game_over_of(&mut self, state: &Bytes) -> Result<bool, EvmError> {
        self.view_decode(&IStateMachine::isGameOverOfCall { state: state.clone() })
    }

    /// The participants `state` names, asked as the court asks it (`participantsOf(state)`).
    pub fn participants_of(&mut self, state: &Bytes) -> Result<Vec<Address>, EvmError> {
        self.view_decode(&IStateMachine::participantsOfCall { state: state.clone() })
    }

    /// The payouts if the channel settled at `state`, asked as the court asks it
    /// (`exitsOf(state)`).
    pub fn exits_of(&mut self, state: &Bytes) -> Result<Vec<Exit>, EvmError> {
        self.view_decode(&IStateMachine::exitsOfCall { state: state.clone() })
    }

    /// Payouts if the channel settled now.
    pub fn exits(&mut self) -> Result<Vec<Exit>, EvmError> {
        self.view_decode(&IStateMachine::getExitsCall {})
    }

    /// Applies `tx` to the current state. When `expected` is given, the result is committed only
    /// if the produced state hashes to it; otherwise (and on any revert) the state is unchanged.
    pub fn apply(&mut self, tx: &Transaction, expected: Option<B256>) -> Result<ApplyOutcome, EvmError> {
        let pending = self.execute(tx, expected)?;
        Ok(self.commit(pending))
    }

    /// Executes `tx` on the current state without committing: the result is kept aside until
    /// [`Self::commit`] (or dropped, leaving the state unchanged). No other call may run on this
    /// instance in between; [`Pending`] borrows nothing, so the caller must keep to that.
    pub fn execute(&mut self, tx: &Transaction, expected: Option<B256>) -> Result<Pending, EvmError> {
        let mut data = Vec::with_capacity(4 + 32 * 10 + tx.data.len());
        data.extend_from_slice(&self.selector);
        data.extend_from_slice(&(tx.clone(),).abi_encode_params());
        let gas_used = match self.run(data.into()) {
            Ok((_, gas)) => gas,
            Err(e) => {
                let _discard = self.evm().finalize();
                return Err(e);
            }
        };
        // Read the resulting state inside the same journal, before deciding to commit.
        let state = match self.run(IStateMachine::getStateCall {}.abi_encode().into()) {
            Ok((out, _)) => {
                IStateMachine::getStateCall::abi_decode_returns(&out).map_err(|e| EvmError::BadReturn {
                    call: "getState()",
                    reason: e.to_string(),
                })
            }
            Err(e) => Err(e),
        };
        let changes = self.evm().finalize();
        let state = state?;
        let state_hash = keccak256(&state);
        if let Some(claimed) = expected
            && claimed != state_hash
        {
            return Err(EvmError::StateHashMismatch {
                claimed,
                actual: state_hash,
            });
        }
        Ok(Pending {
            outcome: ApplyOutcome {
                state,
                state_hash,
                gas_used,
            },
            changes,
            generation: self.generation,
        })
    }

    /// Commits a transition prepared by [`Self::execute`], which must be the last call made on
    /// this instance (checked in debug builds).
    pub fn commit(&mut self, pending: Pending) -> ApplyOutcome {
        debug_assert_eq!(pending.generation, self.generation, "stale pending transition");
        self.evm().commit(pending.changes);
        self.generation += 1;
        pending.outcome
    }

    /// Runs the machine's remove hook on the current state, keeping the result.
    pub fn remove_participant(&mut self, participant: Address) -> Result<Vec<Exit>, EvmError> {
        let out = self.mutate(
            IStateMachine::removeParticipantCall { participant }
                .abi_encode()
                .into(),
        )?;
        IStateMachine::removeParticipantCall::abi_decode_returns(&out).map_err(|e| EvmError::BadReturn {
            call: "removeParticipant(address)",
            reason: e.to_string(),
        })
    }

    /// Runs the machine's slash hook on the current state, keeping the result.
    pub fn slash_participant(&mut self, participant: Address) -> Result<Vec<Exit>, EvmError> {
        let out = self.mutate(
            IStateMachine::slashParticipantCall { participant }
                .abi_encode()
                .into(),
        )?;
        IStateMachine::slashParticipantCall::abi_decode_returns(&out).map_err(|e| EvmError::BadReturn {
            call: "slashParticipant(address)",
            reason: e.to_string(),
        })
    }

    /// Runs the machine's join hook on the current state, keeping the result.
    pub fn join_participant(
        &mut self,
        participant: Address,
        amount: U256,
        data: Bytes,
    ) -> Result<Vec<Exit>, EvmError> {
        let call = IStateMachine::joinParticipantCall {
            participant,
            amount,
            data,
        };
        let out = self.mutate(call.abi_encode().into())?;
        IStateMachine::joinParticipantCall::abi_decode_returns(&out).map_err(|e| EvmError::BadReturn {
            call: "joinParticipant(address,uint256,bytes)",
            reason: e.to_string(),
        })
    }
}
