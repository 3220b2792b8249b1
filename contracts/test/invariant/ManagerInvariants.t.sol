// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ChannelTestBase} from "../utils/ChannelTestBase.sol";
import {Test, Vm} from "../utils/Test.sol";
import {StateChannelManager} from "../../src/StateChannelManager.sol";
import {VerdictExtension} from "../../src/manager/VerdictExtension.sol";
import {ChannelExtension} from "../../src/manager/ChannelExtension.sol";
import {IStateChannelManager} from "../../src/interfaces/IStateChannelManager.sol";
import {RoundRobinCounter} from "../../src/machines/RoundRobinCounter.sol";
import {
    Transaction,
    ChannelSpec,
    StateProof,
    ProofKind,
    Exit,
    DisputeRecord,
    DisputeKind,
    DoubleSignProof,
    ChannelStatus
} from "../../src/ChannelTypes.sol";

/// @notice Drives the manager through random sequences of real operations (open, deposit, cancel,
/// reclaim, calldata, timeout, fraud, challenge, finalize, close, withdrawals) and junk calls, keeping
/// ghost accounting that the invariants compare with the manager.
contract ManagerHandler is ChannelTestBase {
    bytes32[] public ids;
    mapping(bytes32 => bytes) public stateOf; // latest N-signed / genesis state we know
    mapping(bytes32 => Transaction) internal lastTx; // the transaction that produced it (height > genesis)
    mapping(bytes32 => bool) internal hasTx;
    mapping(bytes32 => DisputeRecord) internal disputeOf;
    mapping(bytes32 => bytes) internal disputeState;
    mapping(bytes32 => Exit[]) internal exitsOf;

    uint256 public violations; // must stay 0
    uint256 public slashes;
    uint256 public forks;
    uint256 public closes;
    uint256 public junk;

    constructor(StateChannelManager manager_, RoundRobinCounter rr_, RoundRobinCounter scratch) {
        setUp();
        manager = manager_;
        m = IStateChannelManager(address(manager_));
        rr = rr_;
        // `setUp` made the scratch machines this handler owns (only a machine's owner may load states).
        scratch;
    }

    function accounts() external view returns (address[] memory) {
        return addrs;
    }

    function idCount() external view returns (uint256) {
        return ids.length;
    }

    function _pick(uint256 seed) internal view returns (bytes32 id, bool ok) {
        if (ids.length == 0) return (bytes32(0), false);
        return (ids[seed % ids.length], true);
    }

    // ------------------------------------------------------------------ actions

    function open(uint256 seed, bool fundAll) external {
        uint256 n = 2 + seed % 2;
        address[] memory ps = new address[](n);
        uint256[] memory deps = new uint256[](n);
        for (uint256 i = 0; i < n; i++) {
            ps[i] = addrs[(seed + i) % 8];
            deps[i] = (seed >> (8 * i)) % 5 ether + 1;
        }
        if (ps[0] == ps[1] || (n == 3 && (ps[2] == ps[0] || ps[2] == ps[1]))) return;
        ChannelSpec memory s = _spec(address(rr), address(0), ps, deps);
        s.salt = bytes32(seed);
        bytes memory g = rr.initialState(ps, deps, 1000);
        vm.prank(ps[0]);
        bytes32 id = m.open{value: deps[0]}(s, g);
        ids.push(id);
        stateOf[id] = g;
        if (!fundAll) return;
        for (uint256 i = 1; i < n; i++) {
            if (deps[i] == 0) continue;
            vm.prank(ps[i]);
            m.deposit{value: deps[i]}(id, i);
        }
    }

    function cancelAndReclaim(uint256 seed) external {
        (bytes32 id, bool ok) = _pick(seed);
        if (!ok || _status(id) != ChannelStatus.Funding) return;
        vm.warp(block.timestamp + FUNDING + 1);
        m.cancelFunding(id);
        uint256 n = m.getParticipants(id).length;
        for (uint256 i = 0; i < n; i++) {
            try m.reclaimDeposit(id, i) {} catch {}
        }
    }

    /// The next writer adds 1, everyone signs; sometimes it is only posted as calldata.
    function step(uint256 seed, bool post) external {
        (bytes32 id, bool ok) = _pick(seed);
        if (!ok || _status(id) != ChannelStatus.Open) return;
        if (rr.nextToWriteOf(stateOf[id]) == address(0)) return;
        (Transaction memory t, bytes memory next) = _nextTx(id, 1 + uint64(seed % 10));
        if (post) {
            m.postCalldata(t, _issuerSig(t), _proof(id));
        }
        stateOf[id] = next;
        lastTx[id] = t;
        hasTx[id] = true;
    }

    function _nextTx(bytes32 id, uint64 stepSize) internal returns (Transaction memory, bytes memory) {
        bytes memory s = stateOf[id];
        uint64 h = hasTx[id] ? lastTx[id].height + 1 : m.getChannel(id).genesisHeight + 1;
        return
            _rrAdd(id, m.getChannel(id).forkCnt, h, rr.nextToWriteOf(s), uint64(block.timestamp), s, stepSize);
    }

    function _proof(bytes32 id) internal view returns (StateProof memory) {
        if (!hasTx[id]) return _genesisProof(stateOf[id]);
        return _signedProofBy(lastTx[id], stateOf[id], m.getParticipants(id));
    }

    function timeout(uint256 seed) external {
        (bytes32 id, bool ok) = _pick(seed);
        if (!ok || _status(id) != ChannelStatus.Open) return;
        bytes memory s = stateOf[id];
        address w = rr.nextToWriteOf(s);
        if (w == address(0)) return;
        address[] memory ps = m.getParticipants(id);
        address accuser = ps[seed % ps.length];
        if (accuser == w) accuser = ps[(seed + 1) % ps.length];
        StateProof memory p = _proof(id);
        vm.warp(block.timestamp + P2P + AGREE + FALLBACK + 1);
        vm.recordLogs();
        vm.prank(accuser);
        m.disputeTimeout(id, p);
        disputeOf[id] = _record();
        disputeState[id] = s;
    }

    function doubleSign(uint256 seed) external {
        (bytes32 id, bool ok) = _pick(seed);
        if (!ok || _status(id) != ChannelStatus.Open) return;
        address[] memory ps = m.getParticipants(id);
        address cheat = ps[seed % ps.length];
        uint64 fork = m.getChannel(id).forkCnt;
        Transaction memory a = Transaction(id, fork, 99, cheat, 1, bytes32(0), bytes32(uint256(1)), "");
        Transaction memory b = _copy(a);
        b.stateHash = bytes32(uint256(2));
        uint256 k = _keyOf(cheat);
        DoubleSignProof memory dp =
            DoubleSignProof(a, _sign(k, m.transactionDigest(a)), b, _sign(k, m.transactionDigest(b)));
        StateProof memory p = _proof(id);
        vm.recordLogs();
        m.proveDoubleSign(id, p, dp);
        disputeOf[id] = _record();
        disputeState[id] = stateOf[id];
    }

    /// Answers a running dispute with a later N-signed state (one more step on the disputed state).
    function challengeLater(uint256 seed) external {
        (bytes32 id, bool ok) = _pick(seed);
        if (!ok || _status(id) != ChannelStatus.Disputed) return;
        DisputeRecord memory d = disputeOf[id];
        if (block.timestamp > d.deadline || rr.nextToWriteOf(disputeState[id]) == address(0)) return;
        if (hasTx[id] && lastTx[id].height != d.height) return;
        (Transaction memory t, bytes memory next) = _nextTx(id, 1);
        StateProof memory p = _signedProofBy(t, next, m.getParticipants(id));
        vm.recordLogs();
        m.challenge(id, d, p);
        disputeOf[id] = _record();
        disputeState[id] = next;
        stateOf[id] = next;
        lastTx[id] = t;
        hasTx[id] = true;
    }

    /// Tries to finalize early (must fail), then after the deadline; checks a slashed party never gains.
    function finalize(uint256 seed) external {
        (bytes32 id, bool ok) = _pick(seed);
        if (!ok || _status(id) != ChannelStatus.Disputed) return;
        DisputeRecord memory d = disputeOf[id];
        bytes memory s = disputeState[id];
        if (block.timestamp <= d.deadline) {
            try m.finalizeDispute(id, d, s) {
                violations++; // enforced before the challenge period ended
            } catch {}
            vm.warp(uint256(d.deadline) + 1);
        }
        uint256 before = _claimable(id, d.target, s);
        vm.recordLogs();
        m.finalizeDispute(id, d, s);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        bool closed = _status(id) == ChannelStatus.Closed;
        for (uint256 i = 0; i < logs.length; i++) {
            bytes32 t0 = logs[i].topics[0];
            if (t0 == keccak256("SetState(bytes32,uint64,uint64,uint64,bytes,address[])")) {
                (,,, bytes memory g,) = abi.decode(logs[i].data, (uint64, uint64, uint64, bytes, address[]));
                stateOf[id] = g;
                hasTx[id] = false;
                forks++;
            } else if (t0 == keccak256("ChannelClosed(bytes32,uint64,uint64,(address,uint256)[])")) {
                (,, Exit[] memory e) = abi.decode(logs[i].data, (uint64, uint64, Exit[]));
                for (uint256 j = 0; j < e.length; j++) {
                    exitsOf[id].push(e[j]);
                }
                closes++;
            }
        }
        if (d.slash) {
            slashes++;
            uint256 afterwards = m.pendingBalance(d.target, address(0));
            if (closed) {
                for (uint256 j = 0; j < exitsOf[id].length; j++) {
                    if (exitsOf[id][j].participant == d.target) afterwards += exitsOf[id][j].amount;
                }
            } else {
                Exit[] memory e = rr.exitsOf(stateOf[id]);
                for (uint256 j = 0; j < e.length; j++) {
                    if (e[j].participant == d.target) afterwards += e[j].amount;
                }
            }
            if (afterwards > before) violations++;
        }
    }

    /// What `who` could take out: pending balance plus its exit in `state`.
    function _claimable(bytes32, address who, bytes memory state) internal view returns (uint256 c) {
        c = m.pendingBalance(who, address(0));
        Exit[] memory e = rr.exitsOf(state);
        for (uint256 j = 0; j < e.length; j++) {
            if (e[j].participant == who) c += e[j].amount;
        }
    }

    /// Everyone agrees to end (the counter jumps to the target by repeated steps), then closes.
    function closeCooperatively(uint256 seed) external {
        (bytes32 id, bool ok) = _pick(seed);
        if (!ok || _status(id) != ChannelStatus.Open) return;
        uint64 fork = m.getChannel(id).forkCnt;
        bytes memory s = stateOf[id];
        Transaction memory t;
        uint64 h = hasTx[id] ? lastTx[id].height : m.getChannel(id).genesisHeight;
        while (!rr.isGameOverOf(s)) {
            h++;
            (t, s) = _rrAdd(id, fork, h, rr.nextToWriteOf(s), uint64(block.timestamp), s, 10);
            if (h > 400) return;
        }
        if (h == (hasTx[id] ? lastTx[id].height : m.getChannel(id).genesisHeight)) return;
        StateProof memory p = _signedProofBy(t, s, m.getParticipants(id));
        m.close(id, p);
        Exit[] memory e = rr.exitsOf(s);
        for (uint256 j = 0; j < e.length; j++) {
            exitsOf[id].push(e[j]);
        }
        closes++;
    }

    function withdraw(uint256 seed, uint256 index) external {
        (bytes32 id, bool ok) = _pick(seed);
        if (!ok || _status(id) != ChannelStatus.Closed || exitsOf[id].length == 0) return;
        index = index % exitsOf[id].length;
        if (m.isClaimed(id, index)) {
            try m.withdraw(id, exitsOf[id], index) {
                violations++; // paid twice
            } catch {}
            return;
        }
        m.withdraw(id, exitsOf[id], index);
    }

    function withdrawPending(uint256 seed) external {
        address a = addrs[seed % 8];
        if (m.pendingBalance(a, address(0)) == 0) return;
        vm.prank(a);
        m.withdrawPending(address(0));
    }

    /// Arbitrary calldata with an entry point's selector, from an arbitrary sender, with value.
    function junkCall(uint256 which, bytes calldata payload, uint256 value, uint256 sender) external {
        bytes4[20] memory sels = _selectors();
        address from = addrs[sender % 8];
        value = value % 2 ether;
        vm.prank(from);
        (bool ok,) = address(manager).call{value: value}(bytes.concat(sels[which % sels.length], payload));
        ok;
        junk++;
    }

    function _selectors() internal pure returns (bytes4[20] memory s) {
        s = [
            IStateChannelManager.open.selector,
            IStateChannelManager.deposit.selector,
            IStateChannelManager.cancelFunding.selector,
            IStateChannelManager.reclaimDeposit.selector,
            IStateChannelManager.postCalldata.selector,
            IStateChannelManager.disputeTimeout.selector,
            IStateChannelManager.requestExit.selector,
            IStateChannelManager.proveDoubleSign.selector,
            IStateChannelManager.proveFraud.selector,
            IStateChannelManager.challenge.selector,
            IStateChannelManager.finalizeDispute.selector,
            IStateChannelManager.joinChannel.selector,
            IStateChannelManager.leaveChannel.selector,
            IStateChannelManager.close.selector,
            IStateChannelManager.withdraw.selector,
            IStateChannelManager.withdrawPending.selector,
            IStateChannelManager.checkpoint.selector,
            IStateChannelManager.getChannel.selector,
            bytes4(0),
            bytes4(0xdeadbeef)
        ];
    }
}

/// @notice Invariants: the manager holds exactly what it owes; nothing is enforced before its challenge
/// period or paid twice; a slashed party never gains.
contract ManagerInvariantsTest is Test {
    StateChannelManager internal manager;
    ManagerHandler internal handler;

    function setUp() public {
        manager = new StateChannelManager(address(new ChannelExtension()), address(new VerdictExtension()));
        handler = new ManagerHandler(manager, new RoundRobinCounter(), new RoundRobinCounter());
        vm.deal(address(handler), 1000 ether);
        address[] memory a = handler.accounts();
        for (uint256 i = 0; i < a.length; i++) {
            vm.deal(a[i], 1000 ether);
        }
        targetContract(address(handler));
        bytes4[] memory sels = new bytes4[](11);
        sels[0] = ManagerHandler.open.selector;
        sels[1] = ManagerHandler.cancelAndReclaim.selector;
        sels[2] = ManagerHandler.step.selector;
        sels[3] = ManagerHandler.timeout.selector;
        sels[4] = ManagerHandler.doubleSign.selector;
        sels[5] = ManagerHandler.finalize.selector;
        sels[6] = ManagerHandler.closeCooperatively.selector;
        sels[7] = ManagerHandler.withdraw.selector;
        sels[8] = ManagerHandler.withdrawPending.selector;
        sels[9] = ManagerHandler.junkCall.selector;
        sels[10] = ManagerHandler.challengeLater.selector;
        targetSelector(FuzzSelector(address(handler), sels));
    }

    function _owed() internal view returns (uint256 owed) {
        uint256 n = handler.idCount();
        for (uint256 i = 0; i < n; i++) {
            owed += IStateChannelManager(address(manager)).getChannel(handler.ids(i)).locked;
        }
        address[] memory a = handler.accounts();
        for (uint256 i = 0; i < a.length; i++) {
            owed += IStateChannelManager(address(manager)).pendingBalance(a[i], address(0));
        }
    }

    function invariant_balanceEqualsOwed() public view {
        vm.assertEq(address(manager).balance, _owed());
    }

    function invariant_noViolations() public view {
        vm.assertEq(handler.violations(), 0);
    }

    /// A fixed walk through the handler: every action really happens, and the invariants hold after each.
    function test_handlerWalk() public {
        handler.open(1000, true);
        invariant_balanceEqualsOwed();
        handler.timeout(255);
        handler.finalize(7);
        invariant_balanceEqualsOwed();
        handler.open(7, true); // three parties
        handler.step(1, false);
        handler.step(1, true);
        handler.doubleSign(1);
        handler.finalize(1);
        invariant_balanceEqualsOwed();
        handler.open(9, true);
        handler.step(2, false);
        handler.timeout(2);
        handler.challengeLater(2);
        handler.finalize(2);
        handler.open(11, true);
        handler.closeCooperatively(3);
        for (uint256 i = 0; i < 4; i++) {
            handler.withdraw(3, i);
            handler.withdraw(3, i);
            handler.withdraw(0, i);
        }
        for (uint256 i = 0; i < 8; i++) {
            handler.withdrawPending(i);
        }
        handler.open(13, false);
        handler.cancelAndReclaim(4);
        handler.junkCall(1, hex"00", 1, 0);
        invariant_balanceEqualsOwed();
        invariant_noViolations();
        vm.assertGt(handler.slashes(), 0);
        vm.assertGt(handler.forks(), 0);
        vm.assertGt(handler.closes(), 0);
    }
}
