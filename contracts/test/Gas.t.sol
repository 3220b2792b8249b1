// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ChannelTestBase} from "./utils/ChannelTestBase.sol";
import {IStateChannelManager} from "./../src/interfaces/IStateChannelManager.sol";
import {TicTacToe} from "../src/machines/TicTacToe.sol";
import {
    Transaction,
    ChannelSpec,
    StateProof,
    Exit,
    DisputeRecord,
    DisputeKind,
    DoubleSignProof
} from "../src/ChannelTypes.sol";

/// @notice Gas per operation, for N = 2 and N = 8 (RoundRobinCounter; TicTacToe for the 2-party
/// re-execution). Run with `forge snapshot --isolate` (or `forge test --match-contract GasTest --isolate`):
/// every call from the test is then its own transaction, with cold storage as on chain, and the gas the
/// caller sees for it is the *transaction* gas (21,000 + calldata gas + execution; `test_gas_calibration`
/// proves it with an empty call), plus the test's own CALL (100 warm; 6,700 more when it sends value,
/// which a transaction does not pay: subtracted below). Each operation is written to
/// snapshots/GasTest.json as `<op>_n<N>` (transaction gas) and `<op>_n<N>_calldata` (its calldata gas,
/// included in the former). Nitro's published figures are transaction gas too.
contract GasTest is ChannelTestBase {
    /// Gas of a CALL with value beyond a plain CALL (9,000 - the 2,300 stipend); not paid by a transaction.
    uint256 internal constant VALUE_CALL_OVERHEAD = 6_700;

    function _calldataGas(bytes memory data) internal pure returns (uint256 g) {
        for (uint256 i = 0; i < data.length; i++) {
            g += data[i] == 0 ? 4 : 16;
        }
    }

    /// Calls the manager with `data` (and `value`) as `from`, measured as `name`.
    function _measure(string memory name, address from, uint256 value, bytes memory data) internal {
        vm.prank(from);
        uint256 g0 = gasleft();
        (bool ok, bytes memory ret) = address(manager).call{value: value}(data);
        uint256 g1 = gasleft();
        uint256 used = g0 - g1;
        if (value != 0) used -= VALUE_CALL_OVERHEAD;
        vm.snapshotValue(name, used);
        if (!ok) {
            assembly {
                revert(add(ret, 32), mload(ret))
            }
        }
        vm.snapshotValue(string.concat(name, "_calldata"), _calldataGas(data));
    }

    /// Under `--isolate`, an empty call costs the intrinsic 21,000 + its calldata gas + a few hundred of
    /// execution: the numbers above are transaction gas, not execution gas.
    function test_gas_calibration() public {
        bytes memory data = abi.encodeCall(IStateChannelManager.domainSeparator, ());
        _measure("calibration_domainSeparator", addrs[0], 0, data);
    }

    function _n(string memory op, uint256 n) internal pure returns (string memory) {
        return string.concat(op, "_n", n == 2 ? "2" : "8");
    }

    // ------------------------------------------------------------------ open and deposits

    function _openAndDeposit(uint256 n) internal {
        (ChannelSpec memory s, bytes memory g) = _rrSpec(n, 100);
        bytes32 id = m.computeChannelId(s, g);
        _measure(_n("open", n), addrs[0], STAKE, abi.encodeCall(IStateChannelManager.open, (s, g)));
        for (uint256 i = 1; i < n; i++) {
            string memory name = i == n - 1 ? _n("deposit_last", n) : _n("deposit", n);
            _measure(name, addrs[i], STAKE, abi.encodeCall(IStateChannelManager.deposit, (id, i)));
        }
    }

    function test_gas_openDeposit_n2() public {
        _openAndDeposit(2);
    }

    function test_gas_openDeposit_n8() public {
        _openAndDeposit(8);
    }

    // ------------------------------------------------------------------ calldata, timeout, challenge, finalize

    function _disputeFlow(uint256 n) internal {
        (bytes32 id, bytes memory g) = _openRr(n, 100);
        (Transaction memory t1, bytes memory s1) = _rrAdd(id, 0, 1, addrs[0], uint64(T0 + 1), g, 1);
        (Transaction memory t2, bytes memory s2) = _rrAdd(id, 0, 2, addrs[1], uint64(T0 + 2), s1, 1);
        _measure(
            _n("postCalldata", n),
            addrs[0],
            0,
            abi.encodeCall(IStateChannelManager.postCalldata, (t1, _issuerSig(t1), _genesisProof(g)))
        );
        vm.warp(T0 + 1 + P2P + AGREE + FALLBACK + 1);
        StateProof memory posted = _postedProof(t1, s1);
        vm.recordLogs();
        _measure(
            _n("disputeTimeout_posted", n),
            addrs[2 % n],
            0,
            abi.encodeCall(IStateChannelManager.disputeTimeout, (id, posted))
        );
        DisputeRecord memory d = _record();
        StateProof memory later = _signedProof(t2, s2, n);
        vm.recordLogs();
        _measure(
            _n("challenge", n), addrs[1], 0, abi.encodeCall(IStateChannelManager.challenge, (id, d, later))
        );
        DisputeRecord memory c = _record();
        vm.warp(c.deadline + 1);
        _measure(
            _n("finalizeDispute", n),
            addrs[1],
            0,
            abi.encodeCall(IStateChannelManager.finalizeDispute, (id, c, s2))
        );
    }

    function test_gas_disputes_n2() public {
        _disputeFlow(2);
    }

    function test_gas_disputes_n8() public {
        _disputeFlow(8);
    }

    function _timeoutSigned(uint256 n) internal {
        (bytes32 id, bytes memory g) = _openRr(n, 100);
        (Transaction memory t1, bytes memory s1) = _rrAdd(id, 0, 1, addrs[0], uint64(T0 + 1), g, 1);
        StateProof memory p = _signedProof(t1, s1, n);
        vm.warp(T0 + 1 + P2P + AGREE + FALLBACK + 1);
        _measure(
            _n("disputeTimeout_signed", n),
            addrs[0],
            0,
            abi.encodeCall(IStateChannelManager.disputeTimeout, (id, p))
        );
    }

    function test_gas_timeoutSigned_n2() public {
        _timeoutSigned(2);
    }

    function test_gas_timeoutSigned_n8() public {
        _timeoutSigned(8);
    }

    function _timeoutGenesis(uint256 n) internal {
        (bytes32 id, bytes memory g) = _openRr(n, 100);
        vm.warp(T0 + P2P + AGREE + FALLBACK + 1);
        StateProof memory p = _genesisProof(g);
        _measure(
            _n("disputeTimeout_genesis", n),
            addrs[1],
            0,
            abi.encodeCall(IStateChannelManager.disputeTimeout, (id, p))
        );
    }

    function test_gas_timeoutGenesis_n2() public {
        _timeoutGenesis(2);
    }

    function test_gas_timeoutGenesis_n8() public {
        _timeoutGenesis(8);
    }

    // ------------------------------------------------------------------ fraud proofs

    function _fraudSetup(uint256 n)
        internal
        returns (bytes32 id, Transaction memory t1, bytes memory s1, StateProof memory p1)
    {
        bytes memory g;
        (id, g) = _openRr(n, 100);
        (t1, s1) = _rrAdd(id, 0, 1, addrs[0], uint64(T0 + 1), g, 1);
        p1 = _signedProof(t1, s1, n);
        vm.warp(T0 + 5);
    }

    function _doubleSign(uint256 n) internal {
        (bytes32 id, Transaction memory t1, bytes memory s1, StateProof memory p1) = _fraudSetup(n);
        (Transaction memory a,) = _rrAdd(id, 0, 2, addrs[1], uint64(T0 + 2), s1, 1);
        (Transaction memory b,) = _rrAdd(id, 0, 2, addrs[1], uint64(T0 + 2), s1, 2);
        t1;
        DoubleSignProof memory dp = DoubleSignProof(a, _issuerSig(a), b, _issuerSig(b));
        _measure(
            _n("proveDoubleSign", n),
            addrs[0],
            0,
            abi.encodeCall(IStateChannelManager.proveDoubleSign, (id, p1, dp))
        );
    }

    function test_gas_doubleSign_n2() public {
        _doubleSign(2);
    }

    function test_gas_doubleSign_n8() public {
        _doubleSign(8);
    }

    function _fraud(uint256 n, DisputeKind kind, string memory name) internal {
        (bytes32 id, Transaction memory t1, bytes memory s1, StateProof memory p1) = _fraudSetup(n);
        t1;
        Transaction memory t;
        if (kind == DisputeKind.InvalidTransition) {
            (t,) = _rrAdd(id, 0, 2, addrs[1], uint64(T0 + 2), s1, 1);
            t.stateHash = keccak256("wrong");
        } else if (kind == DisputeKind.TimestampOutOfOrder) {
            (t,) = _rrAdd(id, 0, 2, addrs[1], uint64(T0), s1, 1);
        } else {
            (t,) = _rrAdd(id, 0, 2, addrs[1], uint64(T0 + 2), s1, 1);
            t.prevStateHash = keccak256("elsewhere");
        }
        _measure(
            _n(name, n),
            addrs[0],
            0,
            abi.encodeCall(IStateChannelManager.proveFraud, (id, kind, p1, t, _issuerSig(t)))
        );
    }

    function test_gas_fraud_n2() public {
        _fraud(2, DisputeKind.InvalidTransition, "proveInvalidTransition");
    }

    function test_gas_fraud_n8() public {
        _fraud(8, DisputeKind.InvalidTransition, "proveInvalidTransition");
    }

    function test_gas_fraudTsOrder_n2() public {
        _fraud(2, DisputeKind.TimestampOutOfOrder, "proveTimestampOutOfOrder");
    }

    function test_gas_fraudTsOrder_n8() public {
        _fraud(8, DisputeKind.TimestampOutOfOrder, "proveTimestampOutOfOrder");
    }

    /// A post whose parent is an N-signed state shown in the same call (checkpoint and post at once).
    function _postAfterSigned(uint256 n) internal {
        (bytes32 id, bytes memory g) = _openRr(n, 100);
        (Transaction memory t1, bytes memory s1) = _rrAdd(id, 0, 1, addrs[0], uint64(T0 + 1), g, 1);
        (Transaction memory t2,) = _rrAdd(id, 0, 2, addrs[1], uint64(T0 + 2), s1, 1);
        StateProof memory p1 = _signedProof(t1, s1, n);
        _measure(
            _n("postCalldata_afterSigned", n),
            addrs[1],
            0,
            abi.encodeCall(IStateChannelManager.postCalldata, (t2, _issuerSig(t2), p1))
        );
    }

    function test_gas_postAfterSigned_n2() public {
        _postAfterSigned(2);
    }

    function test_gas_postAfterSigned_n8() public {
        _postAfterSigned(8);
    }

    function test_gas_fraudWrongParent_n2() public {
        _fraud(2, DisputeKind.WrongParent, "proveWrongParent");
    }

    function test_gas_fraudWrongParent_n8() public {
        _fraud(8, DisputeKind.WrongParent, "proveWrongParent");
    }

    /// TicTacToe re-execution (a heavier state: board, two players, balances).
    function test_gas_fraudTtt_n2() public {
        (bytes32 id, bytes memory g) = _openTtt();
        (Transaction memory t1, bytes memory s1) = _tttMove(id, 0, 1, addrs[0], uint64(T0 + 1), g, 4);
        StateProof memory p1 = _signedProof(t1, s1, 2);
        Transaction memory t = Transaction(
            id,
            0,
            2,
            addrs[1],
            uint64(T0 + 2),
            keccak256(s1),
            keccak256("x"),
            abi.encodeCall(TicTacToe.play, (4))
        );
        _measure(
            "proveInvalidTransition_ttt_n2",
            addrs[0],
            0,
            abi.encodeCall(
                IStateChannelManager.proveFraud, (id, DisputeKind.InvalidTransition, p1, t, _issuerSig(t))
            )
        );
    }

    // ------------------------------------------------------------------ close and withdrawals

    function _close(uint256 n) internal {
        (bytes32 id, bytes memory g) = _openRr(n, 10);
        (Transaction memory t, bytes memory s) = _rrAdd(id, 0, 1, addrs[0], uint64(T0 + 1), g, 10);
        StateProof memory p = _signedProof(t, s, n);
        _measure(_n("close", n), addrs[0], 0, abi.encodeCall(IStateChannelManager.close, (id, p)));
        Exit[] memory exits = rr.exitsOf(s);
        _measure(
            _n("withdraw", n), addrs[0], 0, abi.encodeCall(IStateChannelManager.withdraw, (id, exits, 0))
        );
        _measure(
            _n("withdraw_second", n),
            addrs[1],
            0,
            abi.encodeCall(IStateChannelManager.withdraw, (id, exits, 1))
        );
    }

    function test_gas_close_n2() public {
        _close(2);
    }

    function test_gas_close_n8() public {
        _close(8);
    }

    function test_gas_withdrawPending_n2() public {
        (bytes32 id, bytes memory g) = _openRr(3, 100);
        vm.warp(T0 + P2P + AGREE + FALLBACK + 1);
        vm.recordLogs();
        vm.prank(addrs[1]);
        m.disputeTimeout(id, _genesisProof(g));
        DisputeRecord memory d = _record();
        vm.warp(d.deadline + 1);
        m.finalizeDispute(id, d, g);
        _measure(
            "withdrawPending_n2",
            addrs[0],
            0,
            abi.encodeCall(IStateChannelManager.withdrawPending, (address(0)))
        );
    }
}
