use alloy_primitives::{Address, B256, keccak256};
use alloy_sol_types::{Eip712Domain, SolStruct, eip712_domain};

alloy_sol_types::sol! {
    /// One state transition of a channel, as every peer signs it: the EIP-712 struct
    /// `Transaction` of `contracts/src/ChannelTypes.sol`, field for field.
    #[derive(Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
    struct Transaction {
        /// The channel this transaction belongs to.
        bytes32 channelId;
        /// The fork it builds on (0 from genesis; +1 for every state the chain enforces).
        uint64 forkCnt;
        /// Transitions applied since the channel's genesis, this one included.
        uint64 height;
        /// The issuer (writer).
        address participant;
        /// The issuer's logical time in seconds, synced to chain time.
        uint64 timestamp;
        /// keccak256 of the encoded state this transaction applies to.
        bytes32 prevStateHash;
        /// keccak256 of the encoded state it claims to produce.
        bytes32 stateHash;
        /// ABI-encoded call of one of the state machine's moves.
        bytes data;
    }
}

/// The EIP-712 domain of one StateChannelManager deployment: name "Entente", version "1", the
/// chain id and the manager's address. Signatures never replay across chains or managers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    chain_id: u64,
    verifying_contract: Address,
    separator: B256,
}

impl Domain {
    /// The domain of the manager at `verifying_contract` on chain `chain_id`.
    pub fn new(chain_id: u64, verifying_contract: Address) -> Self {
        let domain: Eip712Domain = eip712_domain! {
            name: "Entente",
            version: "1",
            chain_id: chain_id,
            verifying_contract: verifying_contract,
        };
        Self {
            chain_id,
            verifying_contract,
            separator: domain.separator(),
        }
    }

    /// Chain id.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The StateChannelManager's address.
    pub fn verifying_contract(&self) -> Address {
        self.verifying_contract
    }

    /// The domain separator (computed once).
    pub fn separator(&self) -> B256 {
        self.separator
    }

    /// The digest every participant signs: `keccak256(0x1901 || separator || hashStruct(tx))`.
    pub fn digest(&self, tx: &Transaction) -> B256 {
        self.typed_digest(tx.struct_hash())
    }

    /// `keccak256(0x1901 || separator || struct_hash)`.
    pub(crate) fn typed_digest(&self, struct_hash: B256) -> B256 {
        let mut buf = [0u8; 66];
        buf[0] = 0x19;
        buf[1] = 0x01;
        buf[2..34].copy_from_slice(self.separator.as_slice());
        buf[34..66].copy_from_slice(struct_hash.as_slice());
        keccak256(buf)
    }
}

/// `keccak256` of the type string, computed once (the derived `eip712_hash_struct` hashes the
/// type string again on every call).
static TYPE_HASH: std::sync::OnceLock<B256> = std::sync::OnceLock::new();

impl Transaction {
    /// EIP-712 `hashStruct` of this transaction: `keccak256(typeHash || encodeData(tx))`.
    pub fn struct_hash(&self) -> B256 {
        let type_hash = TYPE_HASH.get_or_init(|| self.eip712_type_hash());
        let data = self.eip712_encode_data();
        let mut buf = Vec::with_capacity(32 + data.len());
        buf.extend_from_slice(type_hash.as_slice());
        buf.extend_from_slice(&data);
        keccak256(buf)
    }

    /// The EIP-712 type string.
    pub fn type_string() -> String {
        <Self as SolStruct>::eip712_encode_type().into_owned()
    }
}

/// The state hash the protocol uses: keccak256 of the machine's encoded state (`getState()`).
pub fn state_hash(encoded_state: &[u8]) -> B256 {
    keccak256(encoded_state)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn struct_hash_with_the_cached_type_hash_is_the_derived_one() {
        for data in [&b""[..], b"\x01\x02", &[7u8; 300]] {
            let tx = Transaction {
                channelId: B256::repeat_byte(1),
                forkCnt: 2,
                height: 3,
                participant: Address::repeat_byte(4),
                timestamp: 5,
                prevStateHash: B256::repeat_byte(6),
                stateHash: B256::repeat_byte(7),
                data: data.to_vec().into(),
            };
            assert_eq!(tx.struct_hash(), tx.eip712_hash_struct());
        }
    }
}
