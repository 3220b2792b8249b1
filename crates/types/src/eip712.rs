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
        let mut buf = [0u8; 66];
        buf[0] = 0x19;
        buf[1] = 0x01;
        buf[2..34].copy_from_slice(self.separator.as_slice());
        buf[34..66].copy_from_slice(tx.eip712_hash_struct().as_slice());
        keccak256(buf)
    }
}

impl Transaction {
    /// EIP-712 `hashStruct` of this transaction.
    pub fn struct_hash(&self) -> B256 {
        self.eip712_hash_struct()
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
