// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ChannelTestBase} from "./utils/ChannelTestBase.sol";
import {IStateChannelManager} from "../src/interfaces/IStateChannelManager.sol";
import {TicTacToe} from "../src/machines/TicTacToe.sol";
import {
    ApprovalHashing,
    JoinApproval,
    LeaveApproval,
    Transaction,
    TransactionHashing
} from "../src/ChannelTypes.sol";

/// @notice The EIP-712 test vectors shared with the Rust side (`test/vectors/eip712.json`): every field
/// is recomputed here with the real manager code (etched at the vector's verifyingContract, under the
/// vector's chain id), by hand from the EIP-712 definition, and with `vm.sign`. Besides the transaction
/// vectors, `joinApprovals` and `leaveApprovals` hold the membership approvals (`joinApprovalDigest`,
/// `leaveApprovalDigest`), each signed by a current participant.
/// Regenerate the file with `GEN_VECTORS=true forge test --match-contract EIP712VectorsTest`.
contract EIP712VectorsTest is ChannelTestBase {
    string internal constant PATH = "test/vectors/eip712.json";
    address internal constant VERIFYING_CONTRACT = 0x5FbDB2315678afecb367f032d93F642f64180aa3;
    uint256 internal constant CHAIN_ID = 31337;
    uint256 internal constant N_VECTORS = 5;
    uint256 internal constant N_JOIN = 4;
    uint256 internal constant N_LEAVE = 3;

    bytes32 internal constant DOMAIN_TYPEHASH =
        keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");

    struct Vector {
        uint256 chainId;
        Transaction t;
        uint256 key;
    }

    struct JoinVector {
        uint256 chainId;
        JoinApproval a;
        uint256 key;
    }

    struct LeaveVector {
        uint256 chainId;
        LeaveApproval a;
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

    function _joinVectors() internal view returns (JoinVector[] memory v) {
        v = new JoinVector[](N_JOIN);
        bytes32 cid = keccak256("entente vector channel");
        // 0: empty hook data, a deposit of 1 ether at height 5 of fork 0
        v[0] = JoinVector(
            CHAIN_ID,
            JoinApproval(cid, 0, 5, keccak256("state 5"), addrs[4], 1 ether, "", 1_700_000_600),
            keys[0]
        );
        // 1: hook data (two words and a tail), no deposit, later fork
        v[1] = JoinVector(
            CHAIN_ID,
            JoinApproval(
                cid,
                2,
                40,
                keccak256("state 40"),
                addrs[5],
                0,
                abi.encode(uint256(7), address(0xBEEF), "join hook data"),
                1_700_086_400
            ),
            keys[1]
        );
        // 2: largest fork, height, deadline and amount
        v[2] = JoinVector(
            CHAIN_ID,
            JoinApproval(
                bytes32(type(uint256).max),
                type(uint64).max,
                type(uint64).max - 1,
                bytes32(0),
                addrs[6],
                type(uint256).max,
                hex"00ff",
                type(uint64).max
            ),
            keys[2]
        );
        // 3: another chain id (Ethereum mainnet): the same approval as vector 0 gets another digest
        v[3] = JoinVector(1, v[0].a, keys[0]);
    }

    function _leaveVectors() internal view returns (LeaveVector[] memory v) {
        v = new LeaveVector[](N_LEAVE);
        bytes32 cid = keccak256("entente vector channel");
        // 0: participant 2 leaves at height 5 of fork 0, approved by participant 0
        v[0] = LeaveVector(
            CHAIN_ID, LeaveApproval(cid, 0, 5, keccak256("state 5"), addrs[2], 1_700_000_600), keys[0]
        );
        // 1: largest fork, height and deadline
        v[1] = LeaveVector(
            CHAIN_ID,
            LeaveApproval(
                bytes32(type(uint256).max),
                type(uint64).max,
                type(uint64).max - 1,
                bytes32(uint256(1)),
                addrs[3],
                type(uint64).max
            ),
            keys[3]
        );
        // 2: another chain id (Ethereum mainnet): the same approval as vector 0 gets another digest
        v[2] = LeaveVector(1, v[0].a, keys[0]);
    }

    /// The manager etched at the vectors' verifyingContract under `chainId` (callers restore the chain id).
    function _managerAt(uint256 chainId) internal returns (IStateChannelManager) {
        vm.etch(VERIFYING_CONTRACT, address(manager).code);
        vm.chainId(chainId);
        return IStateChannelManager(VERIFYING_CONTRACT);
    }

    function _joinDigestAt(uint256 chainId, JoinApproval memory a) internal returns (bytes32 digest) {
        uint256 here = block.chainid;
        digest = _managerAt(chainId).joinApprovalDigest(a);
        vm.chainId(here);
    }

    function _leaveDigestAt(uint256 chainId, LeaveApproval memory a) internal returns (bytes32 digest) {
        uint256 here = block.chainid;
        digest = _managerAt(chainId).leaveApprovalDigest(a);
        vm.chainId(here);
    }

    function test_approvalVectors_matchFile() public {
        string memory json = vm.readFile(PATH);
        vm.assertEq(vm.parseJsonBytes32(json, ".joinTypehash"), ApprovalHashing.JOIN_APPROVAL_TYPEHASH);
        vm.assertEq(vm.parseJsonBytes32(json, ".leaveTypehash"), ApprovalHashing.LEAVE_APPROVAL_TYPEHASH);
        vm.assertEq(
            ApprovalHashing.JOIN_APPROVAL_TYPEHASH,
            keccak256(
                "JoinApproval(bytes32 channelId,uint64 forkCnt,uint64 height,bytes32 stateHash,address participant,uint256 amount,bytes data,uint64 deadline)"
            )
        );
        vm.assertEq(
            ApprovalHashing.LEAVE_APPROVAL_TYPEHASH,
            keccak256(
                "LeaveApproval(bytes32 channelId,uint64 forkCnt,uint64 height,bytes32 stateHash,address participant,uint64 deadline)"
            )
        );

        JoinVector[] memory jv = _joinVectors();
        vm.assertEq(
            vm.parseJsonKeys(json, string.concat(".joinApprovals[", vm.toString(N_JOIN - 1), "]")).length, 6
        );
        for (uint256 i = 0; i < jv.length; i++) {
            string memory p = string.concat(".joinApprovals[", vm.toString(i), "]");
            JoinApproval memory a = _readJoin(json, string.concat(p, ".approval"));
            vm.assertEq(keccak256(abi.encode(a)), keccak256(abi.encode(jv[i].a)), "join approval");
            vm.assertEq(vm.parseJsonUint(json, string.concat(p, ".chainId")), jv[i].chainId);
            bytes32 structHash = ApprovalHashing.hashStruct(a);
            vm.assertEq(structHash, _manualJoinHash(a));
            vm.assertEq(vm.parseJsonBytes32(json, string.concat(p, ".structHash")), structHash, "structHash");
            bytes32 digest = _joinDigestAt(jv[i].chainId, a);
            vm.assertEq(
                digest, keccak256(abi.encodePacked(hex"1901", _manualSeparator(jv[i].chainId), structHash))
            );
            _checkSigned(json, p, jv[i].key, digest);
        }

        LeaveVector[] memory lv = _leaveVectors();
        vm.assertEq(
            vm.parseJsonKeys(json, string.concat(".leaveApprovals[", vm.toString(N_LEAVE - 1), "]")).length, 6
        );
        for (uint256 i = 0; i < lv.length; i++) {
            string memory p = string.concat(".leaveApprovals[", vm.toString(i), "]");
            LeaveApproval memory a = _readLeave(json, string.concat(p, ".approval"));
            vm.assertEq(keccak256(abi.encode(a)), keccak256(abi.encode(lv[i].a)), "leave approval");
            vm.assertEq(vm.parseJsonUint(json, string.concat(p, ".chainId")), lv[i].chainId);
            bytes32 structHash = ApprovalHashing.hashStruct(a);
            vm.assertEq(structHash, _manualLeaveHash(a));
            vm.assertEq(vm.parseJsonBytes32(json, string.concat(p, ".structHash")), structHash, "structHash");
            bytes32 digest = _leaveDigestAt(lv[i].chainId, a);
            vm.assertEq(
                digest, keccak256(abi.encodePacked(hex"1901", _manualSeparator(lv[i].chainId), structHash))
            );
            _checkSigned(json, p, lv[i].key, digest);
        }
    }

    /// hashStruct by hand from the EIP-712 definition (atomic fields as words, `bytes` as its keccak256).
    function _manualJoinHash(JoinApproval memory a) internal pure returns (bytes32) {
        bytes memory enc = bytes.concat(
            keccak256(
                "JoinApproval(bytes32 channelId,uint64 forkCnt,uint64 height,bytes32 stateHash,address participant,uint256 amount,bytes data,uint64 deadline)"
            ),
            a.channelId,
            bytes32(uint256(a.forkCnt)),
            bytes32(uint256(a.height)),
            a.stateHash,
            bytes32(uint256(uint160(a.participant))),
            bytes32(a.amount),
            keccak256(a.data),
            bytes32(uint256(a.deadline))
        );
        return keccak256(enc);
    }

    function _manualLeaveHash(LeaveApproval memory a) internal pure returns (bytes32) {
        bytes memory enc = bytes.concat(
            keccak256(
                "LeaveApproval(bytes32 channelId,uint64 forkCnt,uint64 height,bytes32 stateHash,address participant,uint64 deadline)"
            ),
            a.channelId,
            bytes32(uint256(a.forkCnt)),
            bytes32(uint256(a.height)),
            a.stateHash,
            bytes32(uint256(uint160(a.participant))),
            bytes32(uint256(a.deadline))
        );
        return keccak256(enc);
    }

    /// The vector at `p` has `digest`, the signer key `key` and its deterministic signature on the digest.
    function _checkSigned(string memory json, string memory p, uint256 key, bytes32 digest) internal pure {
        vm.assertEq(vm.parseJsonBytes32(json, string.concat(p, ".digest")), digest, "digest");
        vm.assertEq(uint256(vm.parseJsonBytes32(json, string.concat(p, ".signerKey"))), key);
        bytes memory sig = vm.parseJsonBytes(json, string.concat(p, ".signature"));
        vm.assertEq(keccak256(sig), keccak256(_sign(key, digest)), "signature");
        vm.assertEq(sig.length, 65);
        vm.assertEq(
            ecrecover(digest, uint8(sig[64]), bytes32(_word(sig, 0)), bytes32(_word(sig, 32))), vm.addr(key)
        );
    }

    function _readJoin(string memory json, string memory p) internal pure returns (JoinApproval memory a) {
        a.channelId = vm.parseJsonBytes32(json, string.concat(p, ".channelId"));
        a.forkCnt = uint64(vm.parseJsonUint(json, string.concat(p, ".forkCnt")));
        a.height = uint64(vm.parseJsonUint(json, string.concat(p, ".height")));
        a.stateHash = vm.parseJsonBytes32(json, string.concat(p, ".stateHash"));
        a.participant = vm.parseJsonAddress(json, string.concat(p, ".participant"));
        a.amount = vm.parseJsonUint(json, string.concat(p, ".amount"));
        a.data = vm.parseJsonBytes(json, string.concat(p, ".data"));
        a.deadline = uint64(vm.parseJsonUint(json, string.concat(p, ".deadline")));
    }

    function _readLeave(string memory json, string memory p) internal pure returns (LeaveApproval memory a) {
        a.channelId = vm.parseJsonBytes32(json, string.concat(p, ".channelId"));
        a.forkCnt = uint64(vm.parseJsonUint(json, string.concat(p, ".forkCnt")));
        a.height = uint64(vm.parseJsonUint(json, string.concat(p, ".height")));
        a.stateHash = vm.parseJsonBytes32(json, string.concat(p, ".stateHash"));
        a.participant = vm.parseJsonAddress(json, string.concat(p, ".participant"));
        a.deadline = uint64(vm.parseJsonUint(json, string.concat(p, ".deadline")));
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
            '",\n  "joinTypehash": "',
            vm.toString(ApprovalHashing.JOIN_APPROVAL_TYPEHASH),
            '",\n  "leaveTypehash": "',
            vm.toString(ApprovalHashing.LEAVE_APPROVAL_TYPEHASH),
            '",\n  "domainSeparator": "',
            vm.toString(sep),
            '",\n  "vectors": ['
        );
        for (uint256 i = 0; i < v.length; i++) {
            out = string.concat(out, i == 0 ? "\n" : ",\n", _vectorJson(v[i]));
        }
        out = string.concat(out, "\n  ],\n  \"joinApprovals\": [");
        JoinVector[] memory jv = _joinVectors();
        for (uint256 i = 0; i < jv.length; i++) {
            out = string.concat(out, i == 0 ? "\n" : ",\n", _joinJson(jv[i]));
        }
        out = string.concat(out, "\n  ],\n  \"leaveApprovals\": [");
        LeaveVector[] memory lv = _leaveVectors();
        for (uint256 i = 0; i < lv.length; i++) {
            out = string.concat(out, i == 0 ? "\n" : ",\n", _leaveJson(lv[i]));
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

    function _joinJson(JoinVector memory v) internal returns (string memory) {
        JoinApproval memory a = v.a;
        string memory aJson = string.concat(
            _approvalHead(a.channelId, a.forkCnt, a.height, a.stateHash, a.participant),
            ', "amount": "',
            vm.toString(a.amount),
            '", "data": "',
            vm.toString(a.data),
            '", "deadline": ',
            vm.toString(uint256(a.deadline)),
            "}"
        );
        return
            _signedJson(v.chainId, aJson, ApprovalHashing.hashStruct(a), _joinDigestAt(v.chainId, a), v.key);
    }

    function _leaveJson(LeaveVector memory v) internal returns (string memory) {
        LeaveApproval memory a = v.a;
        string memory aJson = string.concat(
            _approvalHead(a.channelId, a.forkCnt, a.height, a.stateHash, a.participant),
            ', "deadline": ',
            vm.toString(uint256(a.deadline)),
            "}"
        );
        return
            _signedJson(v.chainId, aJson, ApprovalHashing.hashStruct(a), _leaveDigestAt(v.chainId, a), v.key);
    }

    function _approvalHead(
        bytes32 channelId,
        uint64 forkCnt,
        uint64 height,
        bytes32 stateHash,
        address participant
    ) internal pure returns (string memory) {
        return string.concat(
            '{"channelId": "',
            vm.toString(channelId),
            '", "forkCnt": ',
            vm.toString(uint256(forkCnt)),
            ', "height": ',
            vm.toString(uint256(height)),
            ', "stateHash": "',
            vm.toString(stateHash),
            '", "participant": "',
            vm.toString(participant),
            '"'
        );
    }

    function _signedJson(
        uint256 chainId,
        string memory aJson,
        bytes32 structHash,
        bytes32 digest,
        uint256 key
    ) internal pure returns (string memory) {
        return string.concat(
            '    {"chainId": ',
            vm.toString(chainId),
            ',\n     "approval": ',
            aJson,
            ',\n     "structHash": "',
            vm.toString(structHash),
            '",\n     "digest": "',
            vm.toString(digest),
            '",\n     "signerKey": "',
            vm.toString(bytes32(key)),
            '",\n     "signature": "',
            vm.toString(_sign(key, digest)),
            '"}'
        );
    }
}
