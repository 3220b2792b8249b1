//! Nitro's comparable operations (`@statechannels/nitro-protocol`, its compiled
//! `NitroAdjudicator` and `CountingApp` from `node_modules`) on the same anvil.
//!
//! States, outcomes and signatures are built here, following Nitro's contracts:
//! - channel id `keccak256(abi.encode(chainId, participants, channelNonce))`;
//! - state hash `keccak256(abi.encode(State(turnNum, isFinal, channelId, appPartHash,
//!   outcomeHash)))` with `appPartHash = keccak256(abi.encode(challengeDuration, appDefinition,
//!   appData))` and `outcomeHash = keccak256(outcome)`;
//! - outcome `abi.encode(OutcomeItem[])`, each item's `assetOutcomeBytes` an
//!   `abi.encode(AssetOutcome(Allocation, abi.encode(AllocationItem[])))`;
//! - signatures: `eth_sign` (EIP-191, "\x19Ethereum Signed Message:\n32") of the state hash, as
//!   `(v, r, s)`; a challenger also signs `keccak256(abi.encode(stateHash, "forceMove"))`.
//!
//! Every state is supported by all N signatures on the one state (`whoSignedWhat` all zero), so
//! each operation carries N signatures, as Entente's N-of-N proofs do.

use std::path::Path;

use alloy::primitives::aliases::U48;
use alloy::primitives::{Address, B256, Bytes, U256, keccak256};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{SolCall, SolValue};
use anyhow::{Context, Result, anyhow, bail};
use entente_chain::{ChainClient, Receipt};

use crate::chain::{BenchChain, node_modules};
use crate::{Framework, Measured};

/// Nitro's ABI, the parts used here (`contracts/` of the npm package).
#[allow(missing_docs)]
pub mod abi {
    alloy::sol! {
        struct Signature {
            uint8 v;
            bytes32 r;
            bytes32 s;
        }

        struct FixedPart {
            uint256 chainId;
            address[] participants;
            uint48 channelNonce;
            address appDefinition;
            uint48 challengeDuration;
        }

        struct VariablePart {
            bytes outcome;
            bytes appData;
        }

        struct State {
            uint48 turnNum;
            bool isFinal;
            bytes32 channelId;
            bytes32 appPartHash;
            bytes32 outcomeHash;
        }

        struct OutcomeItem {
            address asset;
            bytes assetOutcomeBytes;
        }

        struct AssetOutcome {
            uint8 assetOutcomeType;
            bytes allocationOrGuaranteeBytes;
        }

        struct AllocationItem {
            bytes32 destination;
            uint256 amount;
        }

        interface NitroAdjudicator {
            function deposit(address asset, bytes32 channelId, uint256 expectedHeld, uint256 amount) external payable;
            function challenge(
                FixedPart fixedPart,
                uint48 largestTurnNum,
                VariablePart[] variableParts,
                uint8 isFinalCount,
                Signature[] sigs,
                uint8[] whoSignedWhat,
                Signature challengerSig
            ) external;
            function respond(bool[2] isFinalAB, FixedPart fixedPart, VariablePart[2] variablePartAB, Signature sig) external;
            function checkpoint(
                FixedPart fixedPart,
                uint48 largestTurnNum,
                VariablePart[] variableParts,
                uint8 isFinalCount,
                Signature[] sigs,
                uint8[] whoSignedWhat
            ) external;
            function conclude(
                uint48 largestTurnNum,
                FixedPart fixedPart,
                bytes32 appPartHash,
                bytes32 outcomeHash,
                uint8 numStates,
                uint8[] whoSignedWhat,
                Signature[] sigs
            ) external;
            function concludeAndTransferAllAssets(
                uint48 largestTurnNum,
                FixedPart fixedPart,
                bytes32 appPartHash,
                bytes outcomeBytes,
                uint8 numStates,
                uint8[] whoSignedWhat,
                Signature[] sigs
            ) external;
            function transferAllAssets(bytes32 channelId, bytes outcomeBytes, bytes32 stateHash) external;
            function transfer(
                uint256 assetIndex,
                bytes32 fromChannelId,
                bytes outcomeBytes,
                bytes32 stateHash,
                uint256[] indices
            ) external;
            function holdings(address asset, bytes32 channelId) external view returns (uint256);
        }
    }
}

use abi::{
    AllocationItem, AssetOutcome, FixedPart, NitroAdjudicator as Nitro, OutcomeItem, State, VariablePart,
};

/// Operation names, shared with the report.
pub mod op {
    /// The first deposit into a channel's holdings.
    pub const DEPOSIT_FIRST: &str = "deposit (first)";
    /// A later deposit.
    pub const DEPOSIT_LATER: &str = "deposit (later)";
    /// Every participant's deposit.
    pub const FUND_TOTAL: &str = "fund a channel (all deposits)";
    /// `checkpoint` with an N-signed state on an open channel.
    pub const CHECKPOINT: &str = "checkpoint (N-signed)";
    /// `challenge` with an N-signed state.
    pub const CHALLENGE: &str = "challenge (N-signed)";
    /// `respond`: the next mover's state answers the challenge.
    pub const RESPOND: &str = "respond (challenge response)";
    /// `checkpoint` with a later N-signed state during a challenge.
    pub const CHECKPOINT_CLEARS: &str = "checkpoint (clears a challenge)";
    /// `transferAllAssets` once an unanswered challenge has timed out.
    pub const TRANSFER_AFTER_TIMEOUT: &str = "transferAllAssets (after a challenge times out)";
    /// `conclude` with an N-signed final state.
    pub const CONCLUDE: &str = "conclude";
    /// `concludeAndTransferAllAssets`: Nitro's happy exit.
    pub const HAPPY_EXIT: &str = "concludeAndTransferAllAssets (happy exit)";
    /// `transfer` of the first allocation item after `conclude`.
    pub const TRANSFER_FIRST: &str = "transfer (first claim)";
    /// `transfer` of the second allocation item.
    pub const TRANSFER_SECOND: &str = "transfer (second claim)";
}

/// Every Nitro operation measured, in report order.
pub fn operations() -> Vec<&'static str> {
    vec![
        op::DEPOSIT_FIRST,
        op::DEPOSIT_LATER,
        op::FUND_TOTAL,
        op::CHECKPOINT,
        op::CHALLENGE,
        op::RESPOND,
        op::CHECKPOINT_CLEARS,
        op::TRANSFER_AFTER_TIMEOUT,
        op::CONCLUDE,
        op::HAPPY_EXIT,
        op::TRANSFER_FIRST,
        op::TRANSFER_SECOND,
    ]
}

const NITRO_PACKAGE: &str = "@statechannels/nitro-protocol";
const ARTIFACTS: &str = "lib/artifacts/contracts";
/// Challenge duration of every Nitro channel here (Entente's fixtures use the same 3,600 s).
const CHALLENGE_DURATION: u64 = 3600;
/// A `uint48` (turn numbers, nonces, durations; all far below 2^48 here).
fn u48(x: u64) -> U48 {
    U48::saturating_from(x)
}

/// One ether: every participant's deposit, as in Entente's fixtures.
const STAKE: u64 = 1_000_000_000_000_000_000;

/// The version of `@statechannels/nitro-protocol` in `node_modules`.
pub fn package_version() -> Result<String> {
    let path = node_modules()?.join(NITRO_PACKAGE).join("package.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)?;
    json["version"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("{} has no version", path.display()))
}

/// The creation code of a compiled Nitro contract (a hardhat artifact). Nitro 0.17's
/// `NitroAdjudicator` and `CountingApp` link no libraries (`linkReferences` is empty); one that
/// did would be refused here rather than deployed with placeholders.
fn creation_code(artifact: &Path) -> Result<Bytes> {
    let text =
        std::fs::read_to_string(artifact).with_context(|| format!("reading {}", artifact.display()))?;
    let json: serde_json::Value = serde_json::from_str(&text)?;
    let links = &json["linkReferences"];
    if links.as_object().is_some_and(|l| !l.is_empty()) {
        bail!("{} needs linked libraries: {links}", artifact.display());
    }
    let hex = json["bytecode"]
        .as_str()
        .ok_or_else(|| anyhow!("{} has no bytecode", artifact.display()))?;
    Ok(hex.parse::<Bytes>()?)
}

/// Nitro deployed on the benchmark's anvil, with up to nine participants (anvil's dev accounts
/// 1..=9).
struct Deployment<'c> {
    chain: &'c BenchChain,
    adjudicator: Address,
    app: Address,
    chain_id: u64,
    keys: Vec<PrivateKeySigner>,
    clients: Vec<ChainClient>,
    next_nonce: u64,
}

/// One Nitro channel: its fixed part and id.
struct Channel {
    fixed: FixedPart,
    id: B256,
}

impl<'c> Deployment<'c> {
    fn new(chain: &'c BenchChain, n: usize) -> Result<Self> {
        let artifacts = node_modules()?.join(NITRO_PACKAGE).join(ARTIFACTS);
        let adjudicator = chain.deploy_code(creation_code(
            &artifacts.join("NitroAdjudicator.sol/NitroAdjudicator.json"),
        )?)?;
        let app = chain.deploy_code(creation_code(
            &artifacts.join("CountingApp.sol/CountingApp.json"),
        )?)?;
        let keys = (1..=n)
            .map(|i| chain.anvil().signer(i))
            .collect::<Result<Vec<_>, _>>()?;
        let clients = (1..=n).map(|i| chain.client_of(i)).collect::<Result<Vec<_>>>()?;
        Ok(Self {
            chain,
            adjudicator,
            app,
            chain_id: chain.anvil().chain_id(),
            keys,
            clients,
            next_nonce: 1,
        })
    }

    fn n(&self) -> usize {
        self.keys.len()
    }

    fn send<C: SolCall>(&self, from: usize, call: &C, value: U256) -> Result<Receipt> {
        let client = self
            .clients
            .get(from)
            .ok_or_else(|| anyhow!("no participant {from}"))?;
        self.chain
            .send_from(client, self.adjudicator, call.abi_encode().into(), value)
            .with_context(|| format!("Nitro N={}: {}", self.n(), C::SIGNATURE))
    }

    /// A fresh channel (a new nonce).
    fn channel(&mut self) -> Channel {
        let participants: Vec<Address> = self.keys.iter().map(|k| k.address()).collect();
        let nonce = self.next_nonce;
        self.next_nonce += 1;
        let id = keccak256((U256::from(self.chain_id), participants.clone(), nonce).abi_encode_params());
        Channel {
            fixed: FixedPart {
                chainId: U256::from(self.chain_id),
                participants,
                channelNonce: u48(nonce),
                appDefinition: self.app,
                challengeDuration: u48(CHALLENGE_DURATION),
            },
            id,
        }
    }

    /// Every participant deposits its stake; returns the receipts.
    fn fund(&self, ch: &Channel) -> Result<Vec<Receipt>> {
        let stake = U256::from(STAKE);
        (0..self.n())
            .map(|i| {
                let call = Nitro::depositCall {
                    asset: Address::ZERO,
                    channelId: ch.id,
                    expectedHeld: stake * U256::from(i),
                    amount: stake,
                };
                self.send(i, &call, stake)
            })
            .collect()
    }

    /// The outcome paying `amounts[i]` wei of ETH to participant `i`.
    fn outcome(&self, ch: &Channel, amounts: &[U256]) -> Bytes {
        let allocation: Vec<AllocationItem> = ch
            .fixed
            .participants
            .iter()
            .zip(amounts)
            .map(|(p, amount)| AllocationItem {
                destination: p.into_word(),
                amount: *amount,
            })
            .collect();
        let asset_outcome = AssetOutcome {
            assetOutcomeType: 0, // Allocation
            allocationOrGuaranteeBytes: allocation.abi_encode().into(),
        };
        vec![OutcomeItem {
            asset: Address::ZERO,
            assetOutcomeBytes: asset_outcome.abi_encode().into(),
        }]
        .abi_encode()
        .into()
    }

    /// The outcome giving every participant its stake back.
    fn even_outcome(&self, ch: &Channel) -> Bytes {
        self.outcome(ch, &vec![U256::from(STAKE); self.n()])
    }

    /// A state's variable part: `outcome` and CountingApp's `abi.encode(counter)`.
    fn variable(outcome: &Bytes, counter: u64) -> VariablePart {
        VariablePart {
            outcome: outcome.clone(),
            appData: U256::from(counter).abi_encode().into(),
        }
    }

    fn app_part_hash(&self, ch: &Channel, app_data: &Bytes) -> B256 {
        keccak256(
            (
                U256::from(CHALLENGE_DURATION),
                ch.fixed.appDefinition,
                app_data.clone(),
            )
                .abi_encode_params(),
        )
    }

    fn state_hash(&self, ch: &Channel, turn: u64, is_final: bool, vp: &VariablePart) -> B256 {
        keccak256(
            State {
                turnNum: u48(turn),
                isFinal: is_final,
                channelId: ch.id,
                appPartHash: self.app_part_hash(ch, &vp.appData),
                outcomeHash: keccak256(&vp.outcome),
            }
            .abi_encode(),
        )
    }

    /// Participant `i`'s `eth_sign` signature of `hash`.
    fn sign(&self, i: usize, hash: B256) -> Result<abi::Signature> {
        let key = self.keys.get(i).ok_or_else(|| anyhow!("no participant {i}"))?;
        let sig = key.sign_message_sync(hash.as_slice())?;
        Ok(abi::Signature {
            v: 27 + u8::from(sig.v()),
            r: sig.r().into(),
            s: sig.s().into(),
        })
    }

    fn sign_all(&self, hash: B256) -> Result<Vec<abi::Signature>> {
        (0..self.n()).map(|i| self.sign(i, hash)).collect()
    }

    /// `challenge` with the N-signed state `turn` (counter `turn`), by participant 0.
    fn challenge(&self, ch: &Channel, turn: u64, outcome: &Bytes) -> Result<(Receipt, B256)> {
        let vp = Self::variable(outcome, turn);
        let hash = self.state_hash(ch, turn, false, &vp);
        let challenger = keccak256((hash, "forceMove".to_string()).abi_encode_params());
        let call = Nitro::challengeCall {
            fixedPart: ch.fixed.clone(),
            largestTurnNum: u48(turn),
            variableParts: vec![vp],
            isFinalCount: 0,
            sigs: self.sign_all(hash)?,
            whoSignedWhat: vec![0; self.n()],
            challengerSig: self.sign(0, challenger)?,
        };
        Ok((self.send(0, &call, U256::ZERO)?, hash))
    }

    /// `checkpoint` with the N-signed state `turn`, by participant 0.
    fn checkpoint(&self, ch: &Channel, turn: u64, outcome: &Bytes) -> Result<Receipt> {
        let vp = Self::variable(outcome, turn);
        let hash = self.state_hash(ch, turn, false, &vp);
        let call = Nitro::checkpointCall {
            fixedPart: ch.fixed.clone(),
            largestTurnNum: u48(turn),
            variableParts: vec![vp],
            isFinalCount: 0,
            sigs: self.sign_all(hash)?,
            whoSignedWhat: vec![0; self.n()],
        };
        self.send(0, &call, U256::ZERO)
    }

    /// The N signatures of the final state `turn` with `outcome`, and its app part hash.
    fn final_support(&self, ch: &Channel, turn: u64, outcome: &Bytes) -> Result<(B256, Vec<abi::Signature>)> {
        let vp = Self::variable(outcome, turn);
        let hash = self.state_hash(ch, turn, true, &vp);
        Ok((self.app_part_hash(ch, &vp.appData), self.sign_all(hash)?))
    }
}

/// Records receipts under their operation names.
struct Recorder {
    n: usize,
    rows: Vec<Measured>,
}

impl Recorder {
    fn push(&mut self, operation: &'static str, gas: u64) {
        self.rows.push(Measured {
            framework: Framework::Nitro,
            n: self.n,
            operation,
            gas,
        });
    }
}

/// Deploys Nitro on `chain` and measures its operations for `n` participants (2..=9).
pub fn measure(chain: &BenchChain, n: usize) -> Result<Vec<Measured>> {
    if !(2..=9).contains(&n) {
        bail!("Nitro flows use anvil's dev accounts 1..=9: 2..=9 participants, not {n}");
    }
    let mut d = Deployment::new(chain, n)?;
    let mut r = Recorder { n, rows: Vec::new() };
    // A turn number past the setup phase (turnNum >= 2n), so that `respond` runs the app.
    let turn = 2 * n as u64;

    // Deposits, then conclude and pull the payouts one by one.
    let ch = d.channel();
    let deposits = d.fund(&ch)?;
    let gas = |i: usize| deposits.get(i).map(|r| r.gas_used).unwrap_or_default();
    r.push(op::DEPOSIT_FIRST, gas(0));
    r.push(op::DEPOSIT_LATER, gas(1));
    r.push(op::FUND_TOTAL, deposits.iter().map(|r| r.gas_used).sum());
    let outcome = d.even_outcome(&ch);
    let (app_part_hash, sigs) = d.final_support(&ch, turn, &outcome)?;
    let call = Nitro::concludeCall {
        largestTurnNum: u48(turn),
        fixedPart: ch.fixed.clone(),
        appPartHash: app_part_hash,
        outcomeHash: keccak256(&outcome),
        numStates: 1,
        whoSignedWhat: vec![0; n],
        sigs,
    };
    r.push(op::CONCLUDE, d.send(0, &call, U256::ZERO)?.gas_used);
    let mut amounts = vec![U256::from(STAKE); n];
    let mut current = outcome;
    for (i, name) in [(0, op::TRANSFER_FIRST), (1, op::TRANSFER_SECOND)] {
        let call = Nitro::transferCall {
            assetIndex: U256::ZERO,
            fromChannelId: ch.id,
            outcomeBytes: current.clone(),
            stateHash: B256::ZERO,
            indices: vec![U256::from(i)],
        };
        r.push(name, d.send(0, &call, U256::ZERO)?.gas_used);
        amounts[i] = U256::ZERO;
        current = d.outcome(&ch, &amounts);
    }

    // Happy exit: conclude and pay everyone in one transaction.
    let ch = d.channel();
    d.fund(&ch)?;
    let outcome = d.even_outcome(&ch);
    let (app_part_hash, sigs) = d.final_support(&ch, turn, &outcome)?;
    let call = Nitro::concludeAndTransferAllAssetsCall {
        largestTurnNum: u48(turn),
        fixedPart: ch.fixed.clone(),
        appPartHash: app_part_hash,
        outcomeBytes: outcome,
        numStates: 1,
        whoSignedWhat: vec![0; n],
        sigs,
    };
    r.push(op::HAPPY_EXIT, d.send(0, &call, U256::ZERO)?.gas_used);

    // Checkpoint on an open channel.
    let ch = d.channel();
    d.fund(&ch)?;
    let outcome = d.even_outcome(&ch);
    r.push(op::CHECKPOINT, d.checkpoint(&ch, turn, &outcome)?.gas_used);

    // Challenge, answered by the next mover's state.
    let ch = d.channel();
    d.fund(&ch)?;
    let outcome = d.even_outcome(&ch);
    let (sent, _) = d.challenge(&ch, turn, &outcome)?;
    r.push(op::CHALLENGE, sent.gas_used);
    let next = turn + 1;
    let a = Deployment::variable(&outcome, turn);
    let b = Deployment::variable(&outcome, next);
    let mover = (next as usize) % n;
    let sig = d.sign(mover, d.state_hash(&ch, next, false, &b))?;
    let call = Nitro::respondCall {
        isFinalAB: [false, false],
        fixedPart: ch.fixed.clone(),
        variablePartAB: [a, b],
        sig,
    };
    r.push(op::RESPOND, d.send(mover, &call, U256::ZERO)?.gas_used);

    // Challenge, cleared by a later N-signed state.
    let ch = d.channel();
    d.fund(&ch)?;
    let outcome = d.even_outcome(&ch);
    d.challenge(&ch, turn, &outcome)?;
    r.push(
        op::CHECKPOINT_CLEARS,
        d.checkpoint(&ch, turn + 1, &outcome)?.gas_used,
    );

    // Challenge left unanswered: once it times out, anyone pays the outcome out.
    let ch = d.channel();
    d.fund(&ch)?;
    let outcome = d.even_outcome(&ch);
    let (_, hash) = d.challenge(&ch, turn, &outcome)?;
    chain.advance_time(CHALLENGE_DURATION + 1)?;
    let call = Nitro::transferAllAssetsCall {
        channelId: ch.id,
        outcomeBytes: outcome,
        stateHash: hash,
    };
    r.push(op::TRANSFER_AFTER_TIMEOUT, d.send(0, &call, U256::ZERO)?.gas_used);

    // The timed-out channel was paid out in full.
    let held: U256 = chain
        .block_on(d.clients[0].view(
            d.adjudicator,
            &Nitro::holdingsCall {
                asset: Address::ZERO,
                channelId: ch.id,
            },
        ))
        .context("reading Nitro's holdings")?;
    if held != U256::ZERO {
        bail!("Nitro N={n}: {held} wei left in a channel that was paid out");
    }

    let order = operations();
    r.rows
        .sort_by_key(|m| order.iter().position(|o| *o == m.operation).unwrap_or(usize::MAX));
    Ok(r.rows)
}
