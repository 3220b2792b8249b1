// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @notice One state transition of a channel, as every peer signs it (EIP-712 struct `Transaction`).
/// @dev The Rust side (`entente-types`) hashes the identical struct; test vectors in
/// `test/vectors/eip712.json` pin both implementations to the same digests.
struct Transaction {
    /// The channel this transaction belongs to.
    bytes32 channelId;
    /// The fork it builds on (0 from the channel's genesis; +1 for every state the chain enforces).
    uint64 forkCnt;
    /// Number of transitions applied since the channel's genesis, this one included.
    uint64 height;
    /// The issuer (writer) of the transaction.
    address participant;
    /// The issuer's logical time, in seconds, synced to chain time.
    uint64 timestamp;
    /// keccak256 of the encoded state this transaction applies to.
    bytes32 prevStateHash;
    /// keccak256 of the encoded state it claims to produce.
    bytes32 stateHash;
    /// ABI-encoded call of one of the state machine's own functions (the move).
    bytes data;
}

/// @notice A transaction with signatures over its EIP-712 digest (65 bytes each, r || s || v).
struct SignedTransaction {
    Transaction transaction;
    bytes[] signatures;
}

/// @notice EIP-712 type string and hashing of `Transaction`.
library TransactionHashing {
    bytes32 internal constant TRANSACTION_TYPEHASH = keccak256(
        "Transaction(bytes32 channelId,uint64 forkCnt,uint64 height,address participant,uint64 timestamp,bytes32 prevStateHash,bytes32 stateHash,bytes data)"
    );

    /// @notice EIP-712 `hashStruct(transaction)`.
    function hashStruct(Transaction memory t) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(
                TRANSACTION_TYPEHASH,
                t.channelId,
                t.forkCnt,
                t.height,
                t.participant,
                t.timestamp,
                t.prevStateHash,
                t.stateHash,
                keccak256(t.data)
            )
        );
    }
}

/// @notice What one participant takes out of a channel: paid by the manager at close, or at once when a
/// participant leaves, is removed or is slashed.
struct Exit {
    address participant;
    uint256 amount;
}
