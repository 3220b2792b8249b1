// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ChannelTestBase} from "./utils/ChannelTestBase.sol";
import {IStateChannelManager} from "../src/interfaces/IStateChannelManager.sol";
import {TicTacToe} from "../src/machines/TicTacToe.sol";
import {Transaction, TransactionHashing} from "../src/ChannelTypes.sol";

/// @notice The EIP-712 test vectors shared with the Rust side (`test/vectors/eip712.json`): every field
/// is recomputed here with the real manager code (etched at the vector's verifyingContract, under the
/// vector's chain id), by hand from the EIP-712 definition, and with `vm.sign`.
/// Regenerate the file with `GEN_VECTORS=true forge test --match-contract EIP712VectorsTest`.
contract EIP712VectorsTest is ChannelTestBase {
    string internal constant PATH = "test/vectors/eip712.json";
    address internal constant VERIFYING_CONTRACT = 0x5FbDB2315678afecb367f032d93F642f64180aa3;
    uint256 internal constant CHAIN_ID = 31337;
    uint256 internal constant N_VECTORS = 5;

    bytes32 internal constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");

    struct Vector {
        uint256 chainId;
        Transaction t;
        uint256 key;
    }

    function _vectors() internal view returns (Vector[] memory v) {
        v = new Vector[](N_VECTORS);
        bytes32 cid = keccak256("entente vector channel");
        // 0: empty data, first transaction of fork 0
        v[0] = Vector(
            CHAIN_ID,
            Transaction(cid, 0, 1, addrs[0], 1_700_000_000, keccak256("genesis"), keccak256("state 1"), ""),
            keys[0]
        );
        // 1: a tic-tac-toe move (play(4))
        v[1] = Vector(
            CHAIN_ID,
            Transaction(
                cid,
                0,
                2,
                addrs[1],
                1_700_000_012,
                keccak256("state 1"),
                keccak256("state 2"),
                abi.encodeCall(TicTacToe.play, (4))
            ),
            keys[1]
        );
        // 2: large fork, height and timestamp
        v[2] = Vector(
            CHAIN_ID,
            Transaction(
                bytes32(type(uint256).max),
                type(uint64).max,
                type(uint64).max - 1,
                addrs[2],
                type(uint64).max - 2,
                bytes32(0),
                bytes32(uint256(1)),
                hex"00ff00ff"
            ),
            keys[2]
        );
        // 3: another chain id (Ethereum mainnet): the same transaction as vector 0 gets another digest
        v[3] = Vector(1, v[0].t, keys[0]);
        // 4: longer data (three words and a tail), later fork
        v[4] = Vector(
            CHAIN_ID,
            Transaction(
                cid,
                3,
                77,
                addrs[3],
                1_700_003_600,
                keccak256("state 76"),
                keccak256("state 77"),
                abi.encode(uint256(1), bytes32(keccak256("x")), address(0xBEEF), "tail bytes")
            ),
            keys[3]
        );
    }

    function _digestsAt(uint256 chainId, Transaction memory t)
        internal
        returns (bytes32 sep, bytes32 digest)
    {
        uint256 here = block.chainid;
        vm.etch(VERIFYING_CONTRACT, address(manager).code);
        vm.chainId(chainId);
        IStateChannelManager atManager = IStateChannelManager(VERIFYING_CONTRACT);
        sep = atManager.domainSeparator();
        digest = atManager.transactionDigest(t);
        vm.chainId(here);
    }

    function _manualSeparator(uint256 chainId) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(DOMAIN_TYPEHASH, keccak256("Entente"), keccak256("1"), chainId, VERIFYING_CONTRACT)
        );
    }

    function test_vectors_matchFile() public {
        string memory json = vm.readFile(PATH);
        vm.assertEq(vm.parseJsonString(json, ".domain.name"), "Entente");
        vm.assertEq(vm.parseJsonString(json, ".domain.version"), "1");
        vm.assertEq(vm.parseJsonUint(json, ".domain.chainId"), CHAIN_ID);
        vm.assertEq(vm.parseJsonAddress(json, ".domain.verifyingContract"), VERIFYING_CONTRACT);
        vm.assertEq(vm.parseJsonBytes32(json, ".typehash"), TransactionHashing.TRANSACTION_TYPEHASH);
        vm.assertEq(
            TransactionHashing.TRANSACTION_TYPEHASH,
            keccak256(
                "Transaction(bytes32 channelId,uint64 forkCnt,uint64 height,address participant,uint64 timestamp,bytes32 prevStateHash,bytes32 stateHash,bytes data)"
            )
        );
        (bytes32 sep,) = _digestsAt(CHAIN_ID, _vectors()[0].t);
        vm.assertEq(vm.parseJsonBytes32(json, ".domainSeparator"), sep);
        vm.assertEq(sep, _manualSeparator(CHAIN_ID));

        Vector[] memory v = _vectors();
        vm.assertEq(vm.parseJsonKeys(json, ".vectors[4]").length, 6);
        for (uint256 i = 0; i < v.length; i++) {
            string memory p = string.concat(".vectors[", vm.toString(i), "]");
            Transaction memory t = _readTx(json, string.concat(p, ".transaction"));
            vm.assertEq(keccak256(abi.encode(t)), keccak256(abi.encode(v[i].t)), "transaction");
            vm.assertEq(vm.parseJsonUint(json, string.concat(p, ".chainId")), v[i].chainId);
            bytes32 structHash = TransactionHashing.hashStruct(t);
            vm.assertEq(vm.parseJsonBytes32(json, string.concat(p, ".structHash")), structHash, "structHash");
            (bytes32 vsep, bytes32 digest) = _digestsAt(v[i].chainId, t);
            vm.assertEq(vsep, _manualSeparator(v[i].chainId));
            vm.assertEq(digest, keccak256(abi.encodePacked(hex"1901", vsep, structHash)));
            vm.assertEq(vm.parseJsonBytes32(json, string.concat(p, ".digest")), digest, "digest");
            uint256 key = uint256(vm.parseJsonBytes32(json, string.concat(p, ".signerKey")));
            vm.assertEq(key, v[i].key);
            vm.assertEq(vm.addr(key), t.participant);
            bytes memory sig = vm.parseJsonBytes(json, string.concat(p, ".signature"));
            vm.assertEq(keccak256(sig), keccak256(_sign(key, digest)), "signature");
            vm.assertEq(sig.length, 65);
            vm.assertEq(
                ecrecover(digest, uint8(sig[64]), bytes32(_word(sig, 0)), bytes32(_word(sig, 32))),
                t.participant
            );
        }
    }

    function _word(bytes memory b, uint256 off) internal pure returns (uint256 w) {
        assembly {
            w := mload(add(add(b, 32), off))
        }
    }

    function _readTx(string memory json, string memory p) internal pure returns (Transaction memory t) {
        t.channelId = vm.parseJsonBytes32(json, string.concat(p, ".channelId"));
        t.forkCnt = uint64(vm.parseJsonUint(json, string.concat(p, ".forkCnt")));
        t.height = uint64(vm.parseJsonUint(json, string.concat(p, ".height")));
        t.participant = vm.parseJsonAddress(json, string.concat(p, ".participant"));
        t.timestamp = uint64(vm.parseJsonUint(json, string.concat(p, ".timestamp")));
        t.prevStateHash = vm.parseJsonBytes32(json, string.concat(p, ".prevStateHash"));
        t.stateHash = vm.parseJsonBytes32(json, string.concat(p, ".stateHash"));
        t.data = vm.parseJsonBytes(json, string.concat(p, ".data"));
    }

    /// Writes the file (only with GEN_VECTORS=true).
    function test_generateVectors() public {
        if (!vm.envOr("GEN_VECTORS", false)) return;
        Vector[] memory v = _vectors();
        (bytes32 sep,) = _digestsAt(CHAIN_ID, v[0].t);
        string memory out = string.concat(
            '{\n  "domain": {"name": "Entente", "version": "1", "chainId": ',
            vm.toString(CHAIN_ID),
            ', "verifyingContract": "',
            vm.toString(VERIFYING_CONTRACT),
            '"},\n  "typehash": "',
            vm.toString(TransactionHashing.TRANSACTION_TYPEHASH),
            '",\n  "domainSeparator": "',
            vm.toString(sep),
            '",\n  "vectors": ['
        );
        for (uint256 i = 0; i < v.length; i++) {
            out = string.concat(out, i == 0 ? "\n" : ",\n", _vectorJson(v[i]));
        }
        out = string.concat(out, "\n  ]\n}\n");
        vm.writeFile(PATH, out);
    }

    function _vectorJson(Vector memory v) internal returns (string memory) {
        (, bytes32 digest) = _digestsAt(v.chainId, v.t);
        Transaction memory t = v.t;
        string memory txJson = string.concat(
            '{"channelId": "',
            vm.toString(t.channelId),
            '", "forkCnt": ',
            vm.toString(uint256(t.forkCnt)),
            ', "height": ',
            vm.toString(uint256(t.height)),
            ', "participant": "',
            vm.toString(t.participant),
            '", "timestamp": ',
            vm.toString(uint256(t.timestamp)),
            ', "prevStateHash": "',
            vm.toString(t.prevStateHash),
            '", "stateHash": "',
            vm.toString(t.stateHash),
            '", "data": "',
            vm.toString(t.data),
            '"}'
        );
        return string.concat(
            '    {"chainId": ',
            vm.toString(v.chainId),
            ',\n     "transaction": ',
            txJson,
            ',\n     "structHash": "',
            vm.toString(TransactionHashing.hashStruct(t)),
            '",\n     "digest": "',
            vm.toString(digest),
            '",\n     "signerKey": "',
            vm.toString(bytes32(v.key)),
            '",\n     "signature": "',
            vm.toString(_sign(v.key, digest)),
            '"}'
        );
    }
}
