//! Keys and values as stored.
//!
//! Keys are fixed-width big-endian byte strings, so redb's bytewise order is the order of
//! (channel, fork, height, signer) and a prefix range scans one channel or one fork in height
//! order. Values are either fixed bytes (digests, heights, signatures) or a version byte followed
//! by CBOR, so a later schema can tell old records apart.

use entente_evm_runtime::{EvmError, MachineCode};
use entente_state_manager::ForkInfo;
use entente_types::{
    Address, AgreementMode, B256, Bytes, ChannelSpec, Domain, Signature, Timing, Transaction, state_hash,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// Version byte in front of every CBOR value.
const VALUE_V1: u8 = 1;

pub(crate) fn channel_key(channel: &B256) -> [u8; 32] {
    channel.0
}

pub(crate) fn fork_key(channel: &B256, fork: u64) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..32].copy_from_slice(channel.as_slice());
    k[32..].copy_from_slice(&fork.to_be_bytes());
    k
}

pub(crate) fn height_key(channel: &B256, fork: u64, height: u64) -> [u8; 48] {
    let mut k = [0u8; 48];
    k[..40].copy_from_slice(&fork_key(channel, fork));
    k[40..].copy_from_slice(&height.to_be_bytes());
    k
}

pub(crate) fn signature_key(channel: &B256, fork: u64, height: u64, signer: &Address) -> [u8; 68] {
    let mut k = [0u8; 68];
    k[..48].copy_from_slice(&height_key(channel, fork, height));
    k[48..].copy_from_slice(signer.as_slice());
    k
}

pub(crate) fn cursor_key(chain_id: u64, manager: &Address) -> [u8; 28] {
    let mut k = [0u8; 28];
    k[..8].copy_from_slice(&chain_id.to_be_bytes());
    k[8..].copy_from_slice(manager.as_slice());
    k
}

/// Reads the big-endian u64 at `at` of a key (keys are fixed-width; a short key is corrupt).
pub(crate) fn key_u64(key: &[u8], at: usize) -> Option<u64> {
    let bytes: [u8; 8] = key.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// The smallest key strictly greater than every key starting with `prefix` (prefixes here never
/// consist of 0xff bytes only, except in corrupt calls, where `None` means "to the end").
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last != 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

pub(crate) fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = vec![VALUE_V1];
    ciborium::into_writer(value, &mut out).map_err(|e| StoreError::Encode {
        what,
        reason: e.to_string(),
    })?;
    Ok(out)
}

/// Decodes a versioned CBOR value; the error is the reason it is corrupt.
pub(crate) fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, String> {
    match bytes.split_first() {
        Some((&VALUE_V1, body)) => {
            ciborium::from_reader(body).map_err(|e| format!("undecodable {what} record: {e}"))
        }
        Some((v, _)) => Err(format!("{what} record of unknown version {v}")),
        None => Err(format!("empty {what} record")),
    }
}

pub(crate) fn decode_digest(bytes: &[u8]) -> Result<B256, String> {
    B256::try_from(bytes).map_err(|_| format!("digest of {} bytes", bytes.len()))
}

/// A signature record: the digest signed, then the 65-byte signature.
pub(crate) fn encode_signature(digest: &B256, signature: &Signature) -> [u8; 97] {
    let mut v = [0u8; 97];
    v[..32].copy_from_slice(digest.as_slice());
    v[32..].copy_from_slice(signature.as_bytes());
    v
}

pub(crate) fn decode_signature(bytes: &[u8]) -> Result<(B256, Signature), String> {
    if bytes.len() != 97 {
        return Err(format!("signature record of {} bytes", bytes.len()));
    }
    let digest = decode_digest(&bytes[..32])?;
    let signature = Signature::from_slice(&bytes[32..]).map_err(|e| format!("stored signature: {e}"))?;
    Ok((digest, signature))
}

/// Where the state machine's code comes from, so a restart needs neither the chain nor the
/// original files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MachineSource {
    /// A compiled artifact `{"abi": [...], "bytecode": "0x..."}` (the ABI decodes custom errors).
    ArtifactJson(String),
    /// Raw creation bytecode.
    CreationCode(Bytes),
}

impl MachineSource {
    /// Identifies the source by content (keccak256 of its kind and bytes): channels that run
    /// the same machine share one copy of it, in memory and in the store.
    pub fn digest(&self) -> B256 {
        let (kind, bytes): (u8, &[u8]) = match self {
            Self::ArtifactJson(json) => (0, json.as_bytes()),
            Self::CreationCode(code) => (1, code.as_ref()),
        };
        let mut tagged = Vec::with_capacity(bytes.len() + 1);
        tagged.push(kind);
        tagged.extend_from_slice(bytes);
        entente_types::keccak256(&tagged)
    }

    /// Loads the code.
    pub fn load(&self) -> Result<MachineCode, EvmError> {
        match self {
            Self::ArtifactJson(json) => MachineCode::from_artifact_json(json),
            Self::CreationCode(code) => Ok(MachineCode::new(code.clone(), None)),
        }
    }
}

/// Where a channel is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChannelStatus {
    /// Running.
    Open,
    /// A close or exit is under way on chain.
    Closing,
    /// Settled on chain: nothing more will be signed.
    Closed,
}

/// A channel as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRecord {
    /// The channel spec (identity, domain, participants, timing, fork 0's genesis).
    pub spec: ChannelSpec,
    /// This node's role in the channel: which participant it is.
    pub me: Address,
    /// The state machine's code.
    pub machine: MachineSource,
    /// Open, closing or closed.
    pub status: ChannelStatus,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct ChannelV1 {
    channel_id: B256,
    chain_id: u64,
    manager: Address,
    participants: Vec<Address>,
    state_machine: Address,
    timing: Timing,
    agreement_mode: AgreementMode,
    genesis_state: Bytes,
    genesis_timestamp: u64,
    me: Address,
    machine: StoredMachine,
    pub(crate) status: ChannelStatus,
}

/// A machine source as a record holds it: in full (records written before the machines table;
/// the variants are named as [`MachineSource`]'s, so those records decode as they are) or by
/// its [`MachineSource::digest`] in the machines table.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum StoredMachine {
    ArtifactJson(String),
    CreationCode(Bytes),
    Stored(B256),
}

impl StoredMachine {
    /// The source, looking a stored one up with `lookup`.
    pub(crate) fn resolve(
        self,
        lookup: impl FnOnce(&B256) -> Result<MachineSource, String>,
    ) -> Result<MachineSource, String> {
        match self {
            Self::ArtifactJson(json) => Ok(MachineSource::ArtifactJson(json)),
            Self::CreationCode(code) => Ok(MachineSource::CreationCode(code)),
            Self::Stored(digest) => lookup(&digest),
        }
    }
}

impl From<&ChannelRecord> for ChannelV1 {
    fn from(r: &ChannelRecord) -> Self {
        let s = &r.spec;
        Self {
            channel_id: s.channel_id,
            chain_id: s.domain.chain_id(),
            manager: s.domain.verifying_contract(),
            participants: s.participants.clone(),
            state_machine: s.state_machine,
            timing: s.timing,
            agreement_mode: s.agreement_mode,
            genesis_state: s.genesis_state.clone(),
            genesis_timestamp: s.genesis_timestamp,
            me: r.me,
            machine: StoredMachine::Stored(r.machine.digest()),
            status: r.status,
        }
    }
}

impl ChannelV1 {
    /// The participant who stored it.
    pub(crate) fn me(&self) -> Address {
        self.me
    }

    /// The record, with its machine's source (looked up with `lookup` if stored by digest).
    pub(crate) fn into_record(
        self,
        lookup: impl FnOnce(&B256) -> Result<MachineSource, String>,
    ) -> Result<ChannelRecord, String> {
        let (me, status) = (self.me, self.status);
        let machine = self.machine.clone().resolve(lookup)?;
        Ok(ChannelRecord {
            spec: self.into_spec(),
            me,
            machine,
            status,
        })
    }

    /// The channel's spec.
    pub(crate) fn into_spec(self) -> ChannelSpec {
        ChannelSpec {
            channel_id: self.channel_id,
            domain: Domain::new(self.chain_id, self.manager),
            participants: self.participants,
            state_machine: self.state_machine,
            timing: self.timing,
            agreement_mode: self.agreement_mode,
            genesis_state: self.genesis_state,
            genesis_timestamp: self.genesis_timestamp,
        }
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct ForkV1 {
    pub(crate) genesis_height: u64,
    pub(crate) genesis_timestamp: u64,
    pub(crate) participants: Vec<Address>,
    pub(crate) genesis_state: Bytes,
}

impl ForkV1 {
    pub(crate) fn into_fork(self, fork: u64) -> (ForkInfo, Bytes) {
        let info = ForkInfo {
            fork,
            genesis_height: self.genesis_height,
            genesis_timestamp: self.genesis_timestamp,
            genesis_state_hash: state_hash(&self.genesis_state),
            participants: self.participants,
        };
        (info, self.genesis_state)
    }
}

#[derive(Serialize, Deserialize)]
pub(crate) struct TransactionV1 {
    pub(crate) transaction: Transaction,
    pub(crate) digest: B256,
    /// The issuer's signature; none on a transaction the court wrote (a forced intent).
    pub(crate) signature: Option<Signature>,
    pub(crate) state: Bytes,
}

/// The last block of the chain the node has processed, per chain and manager contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainCursor {
    /// Block number.
    pub block_number: u64,
    /// Block hash (to notice a reorganisation on restart).
    pub block_hash: B256,
    /// Block timestamp (chain seconds): a lower bound of chain time for the restarted clock.
    pub block_timestamp: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_by_channel_fork_height_signer() {
        let (a, b) = (B256::repeat_byte(1), B256::repeat_byte(2));
        assert!(height_key(&a, 0, u64::MAX) < height_key(&a, 1, 0));
        assert!(height_key(&a, 1, 255) < height_key(&a, 1, 256));
        assert!(height_key(&a, u64::MAX, u64::MAX) < height_key(&b, 0, 0));
        assert!(
            signature_key(&a, 0, 1, &Address::repeat_byte(0xff)).as_slice()
                < signature_key(&a, 0, 2, &Address::ZERO).as_slice()
        );
        assert_eq!(key_u64(&height_key(&a, 7, 9), 40), Some(9));
        assert_eq!(prefix_end(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_end(&[0xff]), None);
    }

    #[test]
    fn values_carry_a_version() {
        let bytes = encode(
            "cursor",
            &ChainCursor {
                block_number: 1,
                block_hash: B256::ZERO,
                block_timestamp: 2,
            },
        )
        .map_err(|e| e.to_string());
        let Ok(mut bytes) = bytes else {
            return assert!(bytes.is_ok());
        };
        assert!(decode::<ChainCursor>("cursor", &bytes).is_ok());
        bytes[0] = 2;
        assert!(decode::<ChainCursor>("cursor", &bytes).is_err());
        assert!(decode::<ChainCursor>("cursor", &[]).is_err());
    }
}
