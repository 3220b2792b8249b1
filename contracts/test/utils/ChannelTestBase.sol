// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Test, Vm} from "./Test.sol";
import {IStateChannelEvents} from "../../src/interfaces/IStateChannelEvents.sol";
import {StateChannelManager} from "../../src/StateChannelManager.sol";
import {VerdictExtension} from "../../src/manager/VerdictExtension.sol";
import {ChannelExtension} from "../../src/manager/ChannelExtension.sol";
import {IStateChannelManager} from "../../src/interfaces/IStateChannelManager.sol";
import {TicTacToe} from "../../src/machines/TicTacToe.sol";
import {RoundRobinCounter} from "../../src/machines/RoundRobinCounter.sol";
import {
    Transaction,
    ChannelSpec,
    StateProof,
    ProofKind,
    Exit,
    DisputeRecord,
    DisputeKind,
    Channel,
    ChannelStatus
} from "../../src/ChannelTypes.sol";

/// @notice Shared fixtures: a manager, the two machines, keys, and builders for specs, transactions,
/// signatures and state proofs.
abstract contract ChannelTestBase is Test {
    StateChannelManager internal manager;
    IStateChannelManager internal m;
    TicTacToe internal ttt;
    RoundRobinCounter internal rr;
    TicTacToe internal tttScratch;
    RoundRobinCounter internal rrScratch;

    uint256[] internal keys;
    address[] internal addrs;

    uint256 internal constant STAKE = 1 ether;
    uint64 internal constant P2P = 30;
    uint64 internal constant AGREE = 10;
    uint64 internal constant FALLBACK = 60;
    uint64 internal constant CHALLENGE = 3600;
    uint64 internal constant FUNDING = 1 days;
    uint64 internal constant GAS = 5_000_000;
    uint256 internal constant T0 = 1_700_000_000;

    uint256 internal constant SECP256K1_N =
        0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141;

    function setUp() public virtual {
        vm.warp(T0);
        manager = new StateChannelManager(address(new ChannelExtension()), address(new VerdictExtension()));
        m = IStateChannelManager(address(manager));
        ttt = new TicTacToe();
        rr = new RoundRobinCounter();
        tttScratch = new TicTacToe();
        rrScratch = new RoundRobinCounter();
        for (uint256 i = 0; i < 8; i++) {
            uint256 k = uint256(keccak256(abi.encode("entente key", i))) % (SECP256K1_N - 1) + 1;
            keys.push(k);
            addrs.push(vm.addr(k));
            vm.deal(vm.addr(k), 100 ether);
            vm.label(vm.addr(k), string.concat("p", vm.toString(i)));
        }
    }

    // ------------------------------------------------------------------ specs

    function _spec(address machine, address token, address[] memory ps, uint256[] memory deps)
        internal
        pure
        returns (ChannelSpec memory s)
    {
        s.participants = ps;
        s.deposits = deps;
        s.stateMachine = machine;
        s.token = token;
        s.p2pTime = P2P;
        s.agreementTime = AGREE;
        s.chainFallbackTime = FALLBACK;
        s.challengeTime = CHALLENGE;
        s.fundingPeriod = FUNDING;
        s.machineGasLimit = GAS;
        s.salt = keccak256("salt");
    }

    function _pair() internal view returns (address[] memory ps, uint256[] memory deps) {
        ps = new address[](2);
        ps[0] = addrs[0];
        ps[1] = addrs[1];
        deps = new uint256[](2);
        deps[0] = STAKE;
        deps[1] = STAKE;
    }

    function _tttSpec() internal view returns (ChannelSpec memory s, bytes memory genesis) {
        (address[] memory ps, uint256[] memory deps) = _pair();
        s = _spec(address(ttt), address(0), ps, deps);
        genesis = ttt.initialState(ps[0], ps[1], STAKE);
    }

    function _rrSpec(uint256 n, uint64 target)
        internal
        view
        returns (ChannelSpec memory s, bytes memory genesis)
    {
        address[] memory ps = new address[](n);
        uint256[] memory deps = new uint256[](n);
        for (uint256 i = 0; i < n; i++) {
            ps[i] = addrs[i];
            deps[i] = STAKE;
        }
        s = _spec(address(rr), address(0), ps, deps);
        genesis = rr.initialState(ps, deps, target);
    }

    /// @dev Opens `s` by participant 0 and deposits for every other one.
    function _openFunded(ChannelSpec memory s, bytes memory genesis) internal returns (bytes32 id) {
        vm.prank(s.participants[0]);
        id = m.open{value: s.deposits[0]}(s, genesis);
        for (uint256 i = 1; i < s.participants.length; i++) {
            vm.prank(s.participants[i]);
            m.deposit{value: s.deposits[i]}(id, i);
        }
    }

    function _openTtt() internal returns (bytes32 id, bytes memory genesis) {
        ChannelSpec memory s;
        (s, genesis) = _tttSpec();
        id = _openFunded(s, genesis);
    }

    function _openRr(uint256 n, uint64 target) internal returns (bytes32 id, bytes memory genesis) {
        ChannelSpec memory s;
        (s, genesis) = _rrSpec(n, target);
        id = _openFunded(s, genesis);
    }

    // ------------------------------------------------------------------ signatures

    function _sign(uint256 key, bytes32 digest) internal pure returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, digest);
        return abi.encodePacked(r, s, v);
    }

    /// @dev The same signature with s' = n - s and v flipped (valid for ecrecover, refused as high-s).
    function _highS(bytes memory sig) internal pure returns (bytes memory) {
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly {
            r := mload(add(sig, 32))
            s := mload(add(sig, 64))
            v := byte(0, mload(add(sig, 96)))
        }
        return abi.encodePacked(r, bytes32(SECP256K1_N - uint256(s)), v == 27 ? uint8(28) : uint8(27));
    }

    function _signAll(bytes32 digest, uint256 n) internal view returns (bytes[] memory sigs) {
        sigs = new bytes[](n);
        for (uint256 i = 0; i < n; i++) {
            sigs[i] = _sign(keys[i], digest);
        }
    }

    /// @dev Signatures of the given key indices, in order.
    function _signWith(bytes32 digest, uint256[] memory idx) internal view returns (bytes[] memory sigs) {
        sigs = new bytes[](idx.length);
        for (uint256 i = 0; i < idx.length; i++) {
            sigs[i] = _sign(keys[idx[i]], digest);
        }
    }

    function _keyOf(address a) internal view returns (uint256) {
        for (uint256 i = 0; i < addrs.length; i++) {
            if (addrs[i] == a) return keys[i];
        }
        revert("no key");
    }

    // ------------------------------------------------------------------ transactions

    /// @dev A transaction of `issuer` applying `data` to `prev` on the given scratch machine; fills in
    /// the resulting state and its hash.
    function _txOn(
        address scratch,
        bytes32 id,
        uint64 fork,
        uint64 height,
        address issuer,
        uint64 ts,
        bytes memory prev,
        bytes memory data
    ) internal returns (Transaction memory t, bytes memory next) {
        t = Transaction(id, fork, height, issuer, ts, keccak256(prev), bytes32(0), data);
        TicTacToe(scratch).setState(prev);
        TicTacToe(scratch).stateTransition(t);
        next = TicTacToe(scratch).getState();
        t.stateHash = keccak256(next);
    }

    function _tttMove(
        bytes32 id,
        uint64 fork,
        uint64 height,
        address issuer,
        uint64 ts,
        bytes memory prev,
        uint8 cell
    ) internal returns (Transaction memory, bytes memory) {
        return _txOn(
            address(tttScratch), id, fork, height, issuer, ts, prev, abi.encodeCall(TicTacToe.play, (cell))
        );
    }

    function _rrAdd(
        bytes32 id,
        uint64 fork,
        uint64 height,
        address issuer,
        uint64 ts,
        bytes memory prev,
        uint64 step
    ) internal returns (Transaction memory, bytes memory) {
        return _txOn(
            address(rrScratch),
            id,
            fork,
            height,
            issuer,
            ts,
            prev,
            abi.encodeCall(RoundRobinCounter.add, (step))
        );
    }

    /// @dev Plays X: 0, O: 3, X: 1, O: 4, X: 2 (X wins) from fork 0's genesis; returns the last
    /// transaction and its state (heights 1..5, timestamps T0+1..).
    function _tttXWins(bytes32 id, bytes memory genesis)
        internal
        returns (Transaction memory t, bytes memory s)
    {
        uint8[5] memory cells = [0, 3, 1, 4, 2];
        s = genesis;
        for (uint256 i = 0; i < 5; i++) {
            (t, s) = _tttMove(id, 0, uint64(i + 1), addrs[i % 2], uint64(T0 + i + 1), s, cells[i]);
        }
    }

    function _copy(Transaction memory t) internal pure returns (Transaction memory) {
        return abi.decode(abi.encode(t), (Transaction));
    }

    function _copy(DisputeRecord memory d) internal pure returns (DisputeRecord memory) {
        return abi.decode(abi.encode(d), (DisputeRecord));
    }

    // ------------------------------------------------------------------ proofs

    function _genesisProof(bytes memory state) internal pure returns (StateProof memory p) {
        p.kind = ProofKind.Genesis;
        p.state = state;
    }

    function _signedProof(Transaction memory t, bytes memory state, uint256 n)
        internal
        view
        returns (StateProof memory p)
    {
        p.kind = ProofKind.Signed;
        p.transaction = t;
        p.signatures = _signAll(m.transactionDigest(t), n);
        p.state = state;
    }

    /// @dev Signed by the given participants (in their order).
    function _signedProofBy(Transaction memory t, bytes memory state, address[] memory ps)
        internal
        view
        returns (StateProof memory p)
    {
        p.kind = ProofKind.Signed;
        p.transaction = t;
        p.state = state;
        bytes32 digest = m.transactionDigest(t);
        p.signatures = new bytes[](ps.length);
        for (uint256 i = 0; i < ps.length; i++) {
            p.signatures[i] = _sign(_keyOf(ps[i]), digest);
        }
    }

    function _postedProof(Transaction memory t, bytes memory state)
        internal
        pure
        returns (StateProof memory p)
    {
        p.kind = ProofKind.Posted;
        p.transaction = t;
        p.state = state;
    }

    function _issuerSig(Transaction memory t) internal view returns (bytes memory) {
        return _sign(_keyOf(t.participant), m.transactionDigest(t));
    }

    // ------------------------------------------------------------------ disputes

    /// @dev Runs `call` while recording logs and returns the last dispute record the manager emitted
    /// (DisputeStarted or DisputeChallenged).
    function _record() internal returns (DisputeRecord memory d) {
        Vm.Log[] memory logs = vm.getRecordedLogs();
        bool found;
        for (uint256 i = 0; i < logs.length; i++) {
            if (logs[i].emitter != address(manager)) continue;
            bytes32 t0 = logs[i].topics[0];
            if (t0 == IStateChannelEvents.DisputeStarted.selector) {
                (d,) = abi.decode(logs[i].data, (DisputeRecord, bytes));
                found = true;
            } else if (t0 == IStateChannelEvents.DisputeChallenged.selector) {
                (d,) = abi.decode(logs[i].data, (DisputeRecord, bytes));
                found = true;
            }
        }
        require(found, "no dispute event");
    }

    // ------------------------------------------------------------------ views

    function _status(bytes32 id) internal view returns (ChannelStatus) {
        return m.getChannel(id).status;
    }

    function _locked(bytes32 id) internal view returns (uint256) {
        return m.getChannel(id).locked;
    }

    function _exitsSum(Exit[] memory e) internal pure returns (uint256 sum) {
        for (uint256 i = 0; i < e.length; i++) {
            sum += e[i].amount;
        }
    }
}
