// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Clones} from "@openzeppelin/contracts/proxy/Clones.sol";
import {ChannelTestBase} from "../utils/ChannelTestBase.sol";
import {Vm} from "../utils/Test.sol";
import {ReentrantReceiver} from "../utils/Mocks.sol";
import {BadHookMachine} from "../utils/BadHookMachine.sol";
import {IStateChannelEvents} from "../../src/interfaces/IStateChannelEvents.sol";
import {IStateChannelManager} from "../../src/interfaces/IStateChannelManager.sol";
import {IStateMachine} from "../../src/interfaces/IStateMachine.sol";
import {AStateMachine} from "../../src/AStateMachine.sol";
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
    LeaveApproval,
    Channel,
    ChannelStatus
} from "../../src/ChannelTypes.sol";

/// @notice The attacks of the outside review (docs/security.md, attacks 1-8), each performed as an attacker
/// holding its own participant key would, against the real manager and the real machines. Every test checks
/// that the attack is refused AND that the honest participant ends with its entitlement (balances, pending
/// credits, exits), not only that a call reverts.
///
/// Cast: in TicTacToe channels X = addrs[0] and O = addrs[1]; in RoundRobinCounter channels p0 = addrs[0] is
/// honest unless said otherwise and p1, p2 collude. Windows: a writer has GAP = p2p + agreement + fallback
/// seconds from the head's `since`.
contract AttacksTest is ChannelTestBase {
    uint64 internal constant GAP = P2P + AGREE + FALLBACK;

    BadHookMachine internal bad;
    BadHookMachine internal badScratch;

    function setUp() public override {
        super.setUp();
        bad = new BadHookMachine();
        badScratch = new BadHookMachine();
    }

    // ================================================================== helpers

    function _x() internal view returns (address) {
        return addrs[0];
    }

    function _o() internal view returns (address) {
        return addrs[1];
    }

    /// A TicTacToe channel on `machine` with its own salt.
    function _openTttOn(address machine, bytes32 salt) internal returns (bytes32 cid, bytes memory genesis) {
        ChannelSpec memory s;
        (s, genesis) = _tttSpec();
        s.stateMachine = machine;
        s.salt = salt;
        cid = _openFunded(s, genesis);
    }

    function _timeout(bytes32 cid, address by, StateProof memory latest)
        internal
        returns (DisputeRecord memory)
    {
        vm.recordLogs();
        vm.prank(by);
        m.disputeTimeout(cid, latest);
        return _record();
    }

    function _exit(bytes32 cid, address by, StateProof memory latest)
        internal
        returns (DisputeRecord memory)
    {
        vm.recordLogs();
        vm.prank(by);
        m.requestExit(cid, latest);
        return _record();
    }

    function _finalize(bytes32 cid, DisputeRecord memory d, bytes memory state) internal {
        vm.warp(d.deadline + 1);
        m.finalizeDispute(cid, d, state);
    }

    /// Pays exit `i` of a closed channel; returns what its participant received.
    function _withdrawExit(bytes32 cid, Exit[] memory exits, uint256 i) internal returns (uint256) {
        address who = exits[i].participant;
        uint256 b = who.balance;
        m.withdraw(cid, exits, i);
        return who.balance - b;
    }

    /// `who` withdraws its credited exits; returns what it received.
    function _withdrawPending(address who) internal returns (uint256) {
        uint256 b = who.balance;
        vm.prank(who);
        m.withdrawPending(address(0));
        return who.balance - b;
    }

    function _one(address who, uint256 amount) internal pure returns (Exit[] memory e) {
        e = new Exit[](1);
        e[0] = Exit(who, amount);
    }

    /// The exits of the last `ChannelClosed` in `logs` (found = false if none).
    function _closedExits(Vm.Log[] memory logs) internal view returns (Exit[] memory exits, bool found) {
        for (uint256 i = 0; i < logs.length; i++) {
            if (logs[i].emitter != address(manager)) continue;
            if (logs[i].topics[0] != IStateChannelEvents.ChannelClosed.selector) continue;
            (,, exits) = abi.decode(logs[i].data, (uint64, uint64, Exit[]));
            found = true;
        }
    }

    /// A TicTacToe state derived from `s` in which O has won and takes both stakes.
    function _oTakesAll(bytes memory s) internal view returns (bytes memory) {
        TicTacToe.Game memory gm = ttt.decode(s);
        gm.balances[0] = 0;
        gm.balances[1] = 2 * STAKE;
        gm.status = TicTacToe.Status.Won;
        gm.winner = addrs[1];
        return abi.encode(gm);
    }

    /// A RoundRobinCounter state derived from `s` in which `who` (index `idx`) holds every deposit.
    function _rrTakesAll(bytes memory s, uint256 idx) internal view returns (bytes memory) {
        RoundRobinCounter.State memory st = rr.decode(s);
        uint256 total;
        for (uint256 i = 0; i < st.balances.length; i++) {
            total += st.balances[i];
            st.balances[i] = 0;
        }
        st.balances[idx] = total;
        st.counter += 50;
        st.next = uint64((st.next + 1) % st.participants.length);
        return abi.encode(st);
    }

    /// The RoundRobinCounter state after `who` is removed from `s` (the remove hook, as the chain runs it).
    function _rrRemoved(bytes memory s, address who) internal returns (bytes memory) {
        rrScratch.setState(s);
        rrScratch.removeParticipant(who);
        return rrScratch.getState();
    }

    function _rrSlashed(bytes memory s, address who) internal returns (bytes memory) {
        rrScratch.setState(s);
        rrScratch.slashParticipant(who);
        return rrScratch.getState();
    }

    /// A transaction by `issuer` at `height` building on `prev` that claims `claimed` (not executed).
    function _claim(
        bytes32 cid,
        uint64 height,
        address issuer,
        uint256 ts,
        bytes memory prev,
        bytes32 claimed,
        bytes memory data
    ) internal pure returns (Transaction memory) {
        return Transaction(cid, 0, height, issuer, uint64(ts), keccak256(prev), claimed, data);
    }

    /// X: 0, O: 3, X: 1, O: 4, X: 2 (X wins at height 5); ts[h], ss[h] for h = 1..5 (ss[0] = genesis),
    /// stamped T0 + h.
    function _tttHistory(bytes32 cid, bytes memory genesis)
        internal
        returns (Transaction[] memory ts, bytes[] memory ss)
    {
        uint8[5] memory cells = [0, 3, 1, 4, 2];
        ts = new Transaction[](6);
        ss = new bytes[](6);
        ss[0] = genesis;
        for (uint256 h = 1; h <= 5; h++) {
            (ts[h], ss[h]) =
                _tttMove(cid, 0, uint64(h), addrs[(h - 1) % 2], uint64(T0 + h), ss[h - 1], cells[h - 1]);
        }
    }

    // ================================================================== attack 1: unlinked posted states

    /// Attack 1: O signs its own "O takes everything" state at a far height, unlinked, or not what its move
    /// computes, posts it, then offers it as a Posted (or self-signed) proof to requestExit / disputeTimeout /
    /// close / checkpoint / challenge; it fails because a post must link to the head and execute to its claim
    /// (R3) and a Posted proof means the head itself (R1); X times O out and takes both stakes.
    function test_attack1_unlinkedPost_refused_neverAProof() public {
        (bytes32 id, bytes memory g) = _openTtt();
        vm.warp(T0 + 5);
        (Transaction memory a1, bytes memory s1) = _tttMove(id, 0, 1, _x(), uint64(T0 + 5), g, 4);
        m.postCalldata(a1, _issuerSig(a1), _genesisProof(g));
        StateProof memory head = _postedProof(a1, s1);
        bytes memory junk = _oTakesAll(s1);
        bytes32 jh = keccak256(junk);
        bytes memory play0 = abi.encodeCall(TicTacToe.play, (0));

        // a far height
        Transaction memory t = _claim(id, 7, _o(), T0 + 6, s1, jh, play0);
        bytes memory sig = _issuerSig(t);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.WrongHeight.selector, 2, 7));
        m.postCalldata(t, sig, head);
        // the next height, not built on the head
        t = _claim(id, 2, _o(), T0 + 6, "another state", jh, play0);
        sig = _issuerSig(t);
        vm.expectRevert(IStateChannelEvents.NotASuccessor.selector);
        m.postCalldata(t, sig, head);
        // linked, but the move does not compute the claimed state
        (Transaction memory real,) = _tttMove(id, 0, 2, _o(), uint64(T0 + 6), s1, 0);
        t = _claim(id, 2, _o(), T0 + 6, s1, jh, play0);
        sig = _issuerSig(t);
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.InvalidTransition.selector, jh, real.stateHash)
        );
        m.postCalldata(t, sig, head);
        // linked, data that is no move
        t.data = hex"deadbeef";
        sig = _issuerSig(t);
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.InvalidTransition.selector, jh, bytes32(0))
        );
        m.postCalldata(t, sig, head);
        // the junk as the parent of a further post
        StateProof memory pj = _postedProof(t, junk);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.StaleProof.selector, 1, jh));
        m.postCalldata(t, sig, pj);

        _attack1_junkIsNoProof(id, t, junk);
        vm.assertEq(m.getChannel(id).headHeight, 1);
        vm.assertEq(m.getChannel(id).headStateHash, keccak256(s1));

        _attack1_oCannotAnswerWithJunk(id, head, s1, t, junk);
    }

    /// X accuses O (silent since X's move); O tries to answer with its junk `t`; X takes both stakes.
    function _attack1_oCannotAnswerWithJunk(
        bytes32 id,
        StateProof memory head,
        bytes memory s1,
        Transaction memory t,
        bytes memory junk
    ) internal {
        bytes32 jh = keccak256(junk);
        StateProof memory pj = _postedProof(t, junk);
        vm.warp(T0 + 5 + GAP + 1);
        DisputeRecord memory d = _timeout(id, _x(), head);
        vm.assertEq(d.target, _o());
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.ProofKindNotAllowed.selector, ProofKind.Posted)
        );
        m.challenge(id, d, pj);
        StateProof memory selfSigned = _signedProofBy(t, junk, _arr(_o()));
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.SignatureCountMismatch.selector, 2, 1));
        m.challenge(id, d, selfSigned);
        // the junk is never enforceable; the head is
        vm.warp(d.deadline + 1);
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.StateHashMismatch.selector, keccak256(s1), jh)
        );
        m.finalizeDispute(id, d, junk);
        m.finalizeDispute(id, d, s1);
        vm.assertEq(_withdrawExit(id, _one(_x(), 2 * STAKE), 0), 2 * STAKE);
        vm.assertEq(address(manager).balance, 0);
    }

    function _arr(address a) internal pure returns (address[] memory r) {
        r = new address[](1);
        r[0] = a;
    }

    function _arr(address a, address b) internal pure returns (address[] memory r) {
        r = new address[](2);
        r[0] = a;
        r[1] = b;
    }

    /// O offers its junk state (claimed by `t`) as a proof everywhere one is taken: refused.
    function _attack1_junkIsNoProof(bytes32 id, Transaction memory t, bytes memory junk) internal {
        bytes32 jh = keccak256(junk);
        StateProof memory pj = _postedProof(t, junk);
        StateProof memory gj = _genesisProof(junk);
        StateProof memory one = _signedProofBy(t, junk, _arr(_o()));
        StateProof memory twice = _signedProofBy(t, junk, _arr(_o(), _o()));
        vm.startPrank(_o());
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.StaleProof.selector, 1, jh));
        m.requestExit(id, pj);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.StaleProof.selector, 1, jh));
        m.disputeTimeout(id, pj);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.StaleProof.selector, 1, jh));
        m.requestExit(id, gj);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.SignatureCountMismatch.selector, 2, 1));
        m.requestExit(id, one);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.InvalidSignature.selector, 0));
        m.requestExit(id, twice);
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.ProofKindNotAllowed.selector, ProofKind.Posted)
        );
        m.close(id, pj);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.InvalidSignature.selector, 0));
        m.close(id, twice);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.SignatureCountMismatch.selector, 2, 1));
        m.checkpoint(id, one);
        vm.stopPrank();
        vm.assertEq(uint256(_status(id)), uint256(ChannelStatus.Open));
    }

    /// Attack 1 (junk that does not decode): colluders p1, p2 claim a state of bytes that decode to nothing and
    /// try to make it the head or a proof, to lock the channel; it fails because a post is executed and its
    /// result must equal the claim (R3) and only the head is a Posted proof (R1); the head always decodes
    /// (R2), so the honest p0's timeout finalizes and p0 leaves with its deposit (G4).
    function test_attack1_undecodableState_neverEnforced_channelSettles() public {
        (bytes32 id, bytes memory g) = _openRr(3, 100);
        vm.warp(T0 + 5);
        (Transaction memory a1, bytes memory s1) = _rrAdd(id, 0, 1, addrs[0], uint64(T0 + 5), g, 3);
        m.postCalldata(a1, _issuerSig(a1), _genesisProof(g));
        StateProof memory head = _postedProof(a1, s1);
        bytes memory junk = hex"deadbeef";
        bytes32 jh = keccak256(junk);
        (Transaction memory real,) = _rrAdd(id, 0, 2, addrs[1], uint64(T0 + 6), s1, 1);

        // p1 (the writer) claims the junk for a valid move, then for data that is no move
        Transaction memory t = _claim(id, 2, addrs[1], T0 + 6, s1, jh, real.data);
        bytes memory sig = _issuerSig(t);
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.InvalidTransition.selector, jh, real.stateHash)
        );
        m.postCalldata(t, sig, head);
        t.data = junk;
        sig = _issuerSig(t);
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.InvalidTransition.selector, jh, bytes32(0))
        );
        m.postCalldata(t, sig, head);
        // the junk as a proof: never the head
        StateProof memory pj = _postedProof(t, junk);
        vm.prank(addrs[2]);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.StaleProof.selector, 1, jh));
        m.requestExit(id, pj);
        vm.prank(addrs[2]);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.StaleProof.selector, 1, jh));
        m.disputeTimeout(id, pj);
        vm.prank(addrs[2]);
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.StateHashMismatch.selector, keccak256(s1), jh)
        );
        m.proveFraud(id, DisputeKind.InvalidTransition, pj, t, sig);
        StateProof memory two = _signedProofBy(t, junk, _arr(addrs[1], addrs[2]));
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.SignatureCountMismatch.selector, 3, 2));
        m.checkpoint(id, two);

        _attack1_settlesAtHead(id, head, s1, junk);
    }

    /// p0 accuses the silent p1; the verdict can only be carried out on the head (never on `junk`); p0 then
    /// leaves with its deposit and the channel settles.
    function _attack1_settlesAtHead(bytes32 id, StateProof memory head, bytes memory s1, bytes memory junk)
        internal
    {
        bytes32 jh = keccak256(junk);
        vm.warp(T0 + 5 + GAP + 1);
        DisputeRecord memory d = _timeout(id, addrs[0], head);
        vm.assertEq(d.target, addrs[1]);
        vm.warp(d.deadline + 1);
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.StateHashMismatch.selector, keccak256(s1), jh)
        );
        m.finalizeDispute(id, d, junk);
        m.finalizeDispute(id, d, s1);
        vm.assertEq(m.getChannel(id).forkCnt, 1);
        vm.assertEq(m.pendingBalance(addrs[1], address(0)), STAKE);

        // p0 then leaves with its deposit: the channel settles (p2 alone is left)
        bytes memory gen1 = _rrRemoved(s1, addrs[1]);
        DisputeRecord memory e = _exit(id, addrs[0], _genesisProof(gen1));
        _finalize(id, e, gen1);
        vm.assertEq(uint256(_status(id)), uint256(ChannelStatus.Closed));
        vm.assertEq(_withdrawPending(addrs[0]), STAKE);
        vm.assertEq(_withdrawPending(addrs[1]), STAKE);
        vm.assertEq(_withdrawExit(id, _one(addrs[2], STAKE), 0), STAKE);
        vm.assertEq(address(manager).balance, 0);
    }

    // ================================================================== attack 2: shielded invalid posts

    /// Attack 2: the writer p1 posts an invalid move paying itself everything (in its window and late), its
    /// colluder p2 raises a timeout, and p1 tries to defeat the timeout with its invalid post; it fails because
    /// an invalid post is refused outright (R3), the timeout can only accuse the head's writer p1 (R5) and only
    /// an N-signed state answers it, while the honest p0's InvalidTransition proof is judged at once (R7);
    /// p1 is slashed and p0 leaves with its deposit plus half of p1's.
    function test_attack2_invalidPostRefused_colluderTimeout_fraudProofSlashes() public {
        (bytes32 id, bytes memory g) = _openRr(3, 100);
        vm.warp(T0 + 5);
        (Transaction memory a1, bytes memory s1) = _rrAdd(id, 0, 1, addrs[0], uint64(T0 + 5), g, 3);
        m.postCalldata(a1, _issuerSig(a1), _genesisProof(g));
        StateProof memory head = _postedProof(a1, s1);
        bytes memory loot = _rrTakesAll(s1, 1);
        Transaction memory bad1 =
            _claim(id, 2, addrs[1], T0 + 6, s1, keccak256(loot), abi.encodeCall(RoundRobinCounter.add, (50)));
        bytes memory sig = _issuerSig(bad1);
        // in its window, and after it
        vm.warp(T0 + 20);
        vm.expectRevert(
            abi.encodeWithSelector(
                IStateChannelEvents.InvalidTransition.selector, keccak256(loot), bytes32(0)
            )
        );
        m.postCalldata(bad1, sig, head);
        vm.warp(T0 + 5 + GAP + 30);
        vm.expectRevert(
            abi.encodeWithSelector(
                IStateChannelEvents.InvalidTransition.selector, keccak256(loot), bytes32(0)
            )
        );
        m.postCalldata(bad1, sig, head);

        // the colluder's timeout can only accuse the writer of the head, p1, never p0
        StateProof memory pl = _postedProof(bad1, loot);
        vm.prank(addrs[2]);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.StaleProof.selector, 1, keccak256(loot)));
        m.disputeTimeout(id, pl);
        DisputeRecord memory d = _timeout(id, addrs[2], head);
        vm.assertEq(d.target, addrs[1]);
        // p1 tries to defeat it with its invalid post
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.DisputeActive.selector, id));
        m.postCalldata(bad1, sig, head);
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.ProofKindNotAllowed.selector, ProofKind.Posted)
        );
        m.challenge(id, d, pl);
        StateProof memory two = _signedProofBy(bad1, loot, _arr(addrs[1], addrs[2]));
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.SignatureCountMismatch.selector, 3, 2));
        m.challenge(id, d, two);

        // p0's fraud proof replaces the timeout and slashes p1
        vm.recordLogs();
        vm.prank(addrs[0]);
        m.proveFraud(id, DisputeKind.InvalidTransition, head, bad1, sig);
        DisputeRecord memory f = _record();
        vm.assertEq(uint256(f.kind), uint256(DisputeKind.InvalidTransition));
        vm.assertEq(f.target, addrs[1]);
        vm.assertTrue(f.slash);
        vm.assertEq(f.stateHash, keccak256(s1));
        _attack2_slashedAndPaid(id, f, s1);
    }

    /// The fraud verdict `f` against p1 is carried out on `s1`; p0 leaves with its deposit plus half of p1's.
    function _attack2_slashedAndPaid(bytes32 id, DisputeRecord memory f, bytes memory s1) internal {
        _finalize(id, f, s1);
        vm.assertEq(m.pendingBalance(addrs[1], address(0)), 0);

        // p0 leaves with its deposit and its share of p1's
        bytes memory gen1 = _rrSlashed(s1, addrs[1]);
        DisputeRecord memory e = _exit(id, addrs[0], _genesisProof(gen1));
        _finalize(id, e, gen1);
        vm.assertEq(_withdrawPending(addrs[0]), STAKE + STAKE / 2);
        vm.assertEq(_withdrawExit(id, _one(addrs[2], STAKE + STAKE / 2), 0), STAKE + STAKE / 2);
        vm.assertEq(address(manager).balance, 0);
    }

    /// Attack 2 (honest accuser): p1 stays silent past its window, p0 accuses it, and p1 tries to answer with a
    /// late invalid post or to hide behind it; it fails because posts are refused while a timeout runs and an
    /// invalid post is refused anyway (R3, R5); p1 is removed at the valid head and p0 keeps its deposit.
    function test_attack2_invalidPostCannotDefeatHonestTimeout() public {
        (bytes32 id, bytes memory g) = _openRr(3, 100);
        (Transaction memory a1, bytes memory s1) = _rrAdd(id, 0, 1, addrs[0], uint64(T0 + 1), g, 3);
        StateProof memory p1 = _signedProof(a1, s1, 3);
        bytes memory loot = _rrTakesAll(s1, 1);
        Transaction memory bad1 =
            _claim(id, 2, addrs[1], T0 + 6, s1, keccak256(loot), abi.encodeCall(RoundRobinCounter.add, (50)));
        bytes memory sig = _issuerSig(bad1);
        vm.warp(T0 + 1 + GAP + 1);
        // the late invalid post, before any dispute: refused
        vm.expectRevert(
            abi.encodeWithSelector(
                IStateChannelEvents.InvalidTransition.selector, keccak256(loot), bytes32(0)
            )
        );
        m.postCalldata(bad1, sig, p1);
        DisputeRecord memory d = _timeout(id, addrs[0], p1);
        vm.assertEq(d.target, addrs[1]);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.DisputeActive.selector, id));
        m.postCalldata(bad1, sig, _postedProof(a1, s1));
        _finalize(id, d, s1);
        vm.assertEq(m.getChannel(id).genesisStateHash, keccak256(_rrRemoved(s1, addrs[1])));
        vm.assertEq(m.getParticipants(id).length, 2);
        vm.assertEq(m.getParticipants(id)[0], addrs[0]);
        // p0 leaves with its deposit
        bytes memory gen1 = _rrRemoved(s1, addrs[1]);
        DisputeRecord memory e = _exit(id, addrs[0], _genesisProof(gen1));
        _finalize(id, e, gen1);
        vm.assertEq(_withdrawPending(addrs[0]), STAKE);
    }

    // ================================================================== attack 3: zero-time windows

    /// Attack 3: X stamps its move with its parent's time (the genesis time) and posts it at the last second
    /// of its own window, hoping O's window is already over; it fails because the next window starts at
    /// max(stamp, post time) (R4): X cannot accuse O before post + GAP, O answers at the last second of its
    /// whole window, and it is X that is finally timed out (O takes both stakes).
    function test_attack3_zeroTimePost_nextWriterGetsWholeWindow() public {
        (bytes32 id, bytes memory g) = _openTtt();
        (Transaction memory a1, bytes memory s1) = _tttMove(id, 0, 1, _x(), uint64(T0), g, 4);
        bytes memory sig = _issuerSig(a1);
        StateProof memory gp = _genesisProof(g);
        uint256 post = T0 + GAP;
        vm.warp(post);
        // (X's own window is not over yet at this second)
        vm.prank(_o());
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.TooEarly.selector, post + 1));
        m.disputeTimeout(id, gp);
        m.postCalldata(a1, sig, gp);
        Channel memory c = m.getChannel(id);
        vm.assertEq(c.headTimestamp, T0);
        vm.assertEq(c.headSince, post);
        // X tries to accuse O anywhere in O's window
        StateProof memory head = _postedProof(a1, s1);
        uint256[4] memory tries = [post, post + 1, post + GAP / 2, post + GAP];
        for (uint256 i = 0; i < tries.length; i++) {
            vm.warp(tries[i]);
            vm.prank(_x());
            vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.TooEarly.selector, post + GAP + 1));
            m.disputeTimeout(id, head);
        }
        _attack3_oAnswersAndWins(id, post, a1, s1);
    }

    /// O answers at the last second of its window (from X's post at `post`), X stays silent and O wins.
    function _attack3_oAnswersAndWins(bytes32 id, uint256 post, Transaction memory a1, bytes memory s1)
        internal
    {
        StateProof memory head = _postedProof(a1, s1);
        (Transaction memory a2, bytes memory s2) = _tttMove(id, 0, 2, _o(), uint64(post + GAP), s1, 0);
        m.postCalldata(a2, _issuerSig(a2), head);
        vm.warp(post + GAP + 1);
        vm.prank(_x());
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.StaleProof.selector, 2, keccak256(s1)));
        m.disputeTimeout(id, head);
        StateProof memory head2 = _postedProof(a2, s2);
        vm.prank(_x());
        vm.expectRevert(IStateChannelEvents.CannotAccuseSelf.selector);
        m.disputeTimeout(id, head2);
        // X stays silent: O accuses it after X's window and takes both stakes
        vm.warp(post + 2 * GAP + 1);
        DisputeRecord memory d = _timeout(id, _o(), head2);
        vm.assertEq(d.target, _x());
        vm.assertEq(d.writerDeadline, post + 2 * GAP);
        _finalize(id, d, s2);
        vm.assertEq(_withdrawExit(id, _one(_o(), 2 * STAKE), 0), 2 * STAKE);
        vm.assertEq(address(manager).balance, 0);
    }

    /// Attack 3 (N parties): colluder p2 stamps its move with its parent's time and posts it at the end of its
    /// window so that its colluder p1 can time out the honest next writer p0 at once; it fails because p0's
    /// window runs from the post (R4): no accusation of p0 starts before post + GAP, p0 answers in time and is
    /// never removed, then leaves with its deposit.
    function test_attack3_nParty_colludersCannotShortenWindow() public {
        (bytes32 id, bytes memory g) = _openRr(3, 100);
        vm.warp(T0 + 5);
        (Transaction memory a1, bytes memory s1) = _rrAdd(id, 0, 1, addrs[0], uint64(T0 + 5), g, 1);
        m.postCalldata(a1, _issuerSig(a1), _genesisProof(g));
        vm.warp(T0 + 10);
        (Transaction memory a2, bytes memory s2) = _rrAdd(id, 0, 2, addrs[1], uint64(T0 + 10), s1, 1);
        m.postCalldata(a2, _issuerSig(a2), _postedProof(a1, s1));
        // p2's move, stamped with its parent's time, posted at the very end of p2's window
        (Transaction memory a3, bytes memory s3) = _rrAdd(id, 0, 3, addrs[2], uint64(T0 + 10), s2, 1);
        uint256 post = T0 + 10 + GAP;
        vm.warp(post);
        m.postCalldata(a3, _issuerSig(a3), _postedProof(a2, s2));
        _attack3_p0KeepsItsWindow(id, post, a3, s3);
    }

    /// After p2's post at `post`, the colluders cannot accuse p0 within its window; p0 answers and leaves paid.
    function _attack3_p0KeepsItsWindow(bytes32 id, uint256 post, Transaction memory a3, bytes memory s3)
        internal
    {
        StateProof memory head = _postedProof(a3, s3);
        uint256[3] memory tries = [post + 1, post + GAP / 2, post + GAP];
        for (uint256 i = 0; i < tries.length; i++) {
            vm.warp(tries[i]);
            for (uint256 k = 1; k <= 2; k++) {
                vm.prank(addrs[k]);
                vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.TooEarly.selector, post + GAP + 1));
                m.disputeTimeout(id, head);
            }
        }
        // p0 answers at the last second of its window
        (Transaction memory a4, bytes memory s4) = _rrAdd(id, 0, 4, addrs[0], uint64(post + GAP), s3, 1);
        m.postCalldata(a4, _issuerSig(a4), head);
        vm.warp(post + GAP + 1);
        vm.prank(addrs[1]);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.StaleProof.selector, 4, keccak256(s3)));
        m.disputeTimeout(id, head);
        vm.assertEq(uint256(_status(id)), uint256(ChannelStatus.Open));
        vm.assertEq(m.getParticipants(id).length, 3);
        // p0 leaves with its deposit
        DisputeRecord memory e = _exit(id, addrs[0], _postedProof(a4, s4));
        _finalize(id, e, s4);
        vm.assertEq(_withdrawPending(addrs[0]), STAKE);
    }

    // ================================================================== attack 4: future-timestamp trap

    /// Attack 4: O stamps its move just past the tolerance (chain time + agreementTime + 1) hoping X proves
    /// TimestampInFuture and is slashed when chain time catches up; it fails because TimestampInFuture is no
    /// fraud kind (R7), the post is refused while the stamp is in the future (R3), and false claims revert
    /// without any verdict; X is never slashed, gets its whole window from the stamp, and wins the stakes.
    function test_attack4_futureStamp_neverSlashesProver() public {
        (bytes32 id, bytes memory g) = _openTtt();
        (Transaction memory a1, bytes memory s1) = _tttMove(id, 0, 1, _x(), uint64(T0 + 1), g, 4);
        StateProof memory p1 = _signedProof(a1, s1, 2);
        vm.warp(T0 + 5);
        uint64 ts = uint64(T0 + 5 + AGREE + 1);
        (Transaction memory t2, bytes memory s2) = _tttMove(id, 0, 2, _o(), ts, s1, 0);
        bytes memory sig = _issuerSig(t2);
        _attack4_claimsRefused(id, p1, t2, sig);
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.BadTimestamp.selector, ts, T0 + 1, T0 + 5 + AGREE)
        );
        m.postCalldata(t2, sig, p1);
        // nothing happened to anyone
        Channel memory c = m.getChannel(id);
        vm.assertEq(uint256(c.status), uint256(ChannelStatus.Open));
        vm.assertEq(c.commitment, bytes32(0));
        vm.assertEq(c.headHeight, 0);
        vm.assertEq(c.locked, 2 * STAKE);
        vm.assertEq(m.pendingBalance(_x(), address(0)), 0);

        // chain time catches up: a late claim is still refused, never judged; the post is now on time
        vm.warp(T0 + 6);
        _attack4_claimsRefused(id, p1, t2, sig);
        m.postCalldata(t2, sig, p1);
        vm.assertEq(m.getChannel(id).headSince, ts);
        _attack4_xKeepsWindowAndWins(id, ts, t2, s2);
    }

    /// After O's post of `t2` (stamped `ts`), X's window runs from the stamp; X moves, O is silent, X wins.
    function _attack4_xKeepsWindowAndWins(bytes32 id, uint64 ts, Transaction memory t2, bytes memory s2)
        internal
    {
        StateProof memory head = _postedProof(t2, s2);
        vm.warp(ts + GAP);
        vm.prank(_o());
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.TooEarly.selector, ts + GAP + 1));
        m.disputeTimeout(id, head);
        // X moves at the end of its window; O goes silent and X takes both stakes
        (Transaction memory a3, bytes memory s3) = _tttMove(id, 0, 3, _x(), uint64(ts + GAP), s2, 8);
        m.postCalldata(a3, _issuerSig(a3), head);
        vm.warp(ts + 2 * GAP + 1);
        DisputeRecord memory d = _timeout(id, _x(), _postedProof(a3, s3));
        vm.assertEq(d.target, _o());
        _finalize(id, d, s3);
        vm.assertEq(_withdrawExit(id, _one(_x(), 2 * STAKE), 0), 2 * STAKE);
        vm.assertEq(address(manager).balance, 0);
    }

    /// X's claims against O's future-stamped but otherwise valid move: none is judged, none slashes.
    function _attack4_claimsRefused(bytes32 id, StateProof memory p1, Transaction memory t2, bytes memory sig)
        internal
    {
        vm.startPrank(_x());
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.NotAFraudKind.selector, DisputeKind.TimestampInFuture)
        );
        m.proveFraud(id, DisputeKind.TimestampInFuture, p1, t2, sig);
        vm.expectRevert(
            abi.encodeWithSelector(
                IStateChannelEvents.ClaimDoesNotHold.selector, DisputeKind.TimestampOutOfOrder
            )
        );
        m.proveFraud(id, DisputeKind.TimestampOutOfOrder, p1, t2, sig);
        vm.expectRevert(
            abi.encodeWithSelector(
                IStateChannelEvents.ClaimDoesNotHold.selector, DisputeKind.InvalidTransition
            )
        );
        m.proveFraud(id, DisputeKind.InvalidTransition, p1, t2, sig);
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.ClaimDoesNotHold.selector, DisputeKind.WrongParent)
        );
        m.proveFraud(id, DisputeKind.WrongParent, p1, t2, sig);
        vm.stopPrank();
        vm.assertEq(uint256(_status(id)), uint256(ChannelStatus.Open));
    }

    // ================================================================== attack 5: junk at the accused's height

    /// Attack 5: the silent writer O posts junk at its own height first (unlinked, not a move, a wrong claim,
    /// X's name, the wrong height) so that X's timeout from height 1 would be stale; it fails because every
    /// such post is refused (R3: linked, by the writer, executed), so the head stays at X's state, X's timeout
    /// goes through and X takes both stakes.
    function test_attack5_junkAtSilentWritersHeight_refused_timeoutPays() public {
        (bytes32 id, bytes memory g) = _openTtt();
        (Transaction memory a1, bytes memory s1) = _tttMove(id, 0, 1, _x(), uint64(T0 + 1), g, 4);
        StateProof memory p1 = _signedProof(a1, s1, 2);
        vm.warp(T0 + 10);
        bytes32 jh = keccak256("O's junk");
        bytes memory play0 = abi.encodeCall(TicTacToe.play, (0));
        (Transaction memory real,) = _tttMove(id, 0, 2, _o(), uint64(T0 + 10), s1, 0);

        Transaction memory t = _claim(id, 2, _o(), T0 + 10, "elsewhere", jh, play0);
        _postRefused(t, _issuerSig(t), p1, abi.encodeWithSelector(IStateChannelEvents.NotASuccessor.selector));
        t = _claim(id, 2, _o(), T0 + 10, s1, jh, hex"01");
        _postRefused(
            t,
            _issuerSig(t),
            p1,
            abi.encodeWithSelector(IStateChannelEvents.InvalidTransition.selector, jh, bytes32(0))
        );
        t = _claim(id, 2, _o(), T0 + 10, s1, jh, play0);
        _postRefused(
            t,
            _issuerSig(t),
            p1,
            abi.encodeWithSelector(IStateChannelEvents.InvalidTransition.selector, jh, real.stateHash)
        );
        t = _claim(id, 2, _x(), T0 + 10, s1, jh, play0);
        _postRefused(
            t,
            _sign(keys[1], m.transactionDigest(t)),
            p1,
            abi.encodeWithSelector(IStateChannelEvents.SignerMismatch.selector, _x(), _o())
        );
        t = _claim(id, 3, _o(), T0 + 10, s1, jh, play0);
        _postRefused(
            t, _issuerSig(t), p1, abi.encodeWithSelector(IStateChannelEvents.WrongHeight.selector, 2, 3)
        );
        // at X's own height, on the genesis: not O's turn
        t = _claim(id, 1, _o(), T0 + 10, g, jh, play0);
        _postRefused(
            t,
            _issuerSig(t),
            _genesisProof(g),
            abi.encodeWithSelector(IStateChannelEvents.InvalidTransition.selector, jh, bytes32(0))
        );
        vm.assertEq(m.getChannel(id).headHeight, 0);

        vm.warp(T0 + 1 + GAP + 1);
        DisputeRecord memory d = _timeout(id, _x(), p1);
        vm.assertEq(d.target, _o());
        vm.assertEq(d.height, 1);
        _finalize(id, d, s1);
        vm.assertEq(_withdrawExit(id, _one(_x(), 2 * STAKE), 0), 2 * STAKE);
        vm.assertEq(address(manager).balance, 0);
    }

    function _postRefused(Transaction memory t, bytes memory sig, StateProof memory parent, bytes memory err)
        internal
    {
        vm.expectRevert(err);
        m.postCalldata(t, sig, parent);
    }

    /// Attack 5 (N parties): colluder p2, not the writer, posts junk at the silent p1's height (its own move,
    /// p1's name with its own signature, junk p1 signed for it); it fails because only the writer whose turn it
    /// is can post and the post must execute to its claim (R3); p0 times p1 out and leaves with its deposit.
    function test_attack5_nParty_thirdPartyJunk_refused() public {
        (bytes32 id, bytes memory g) = _openRr(3, 100);
        (Transaction memory a1, bytes memory s1) = _rrAdd(id, 0, 1, addrs[0], uint64(T0 + 1), g, 3);
        StateProof memory p1 = _signedProof(a1, s1, 3);
        vm.warp(T0 + 10);
        bytes memory add1 = abi.encodeCall(RoundRobinCounter.add, (1));
        bytes32 jh = keccak256("p2's junk");
        Transaction memory t = _claim(id, 2, addrs[2], T0 + 10, s1, jh, add1);
        _postRefused(
            t,
            _issuerSig(t),
            p1,
            abi.encodeWithSelector(IStateChannelEvents.InvalidTransition.selector, jh, bytes32(0))
        );
        t = _claim(id, 2, addrs[1], T0 + 10, s1, jh, add1);
        _postRefused(
            t,
            _sign(keys[2], m.transactionDigest(t)),
            p1,
            abi.encodeWithSelector(IStateChannelEvents.SignerMismatch.selector, addrs[1], addrs[2])
        );
        (Transaction memory real,) = _rrAdd(id, 0, 2, addrs[1], uint64(T0 + 10), s1, 1);
        _postRefused(
            t,
            _issuerSig(t),
            p1,
            abi.encodeWithSelector(IStateChannelEvents.InvalidTransition.selector, jh, real.stateHash)
        );
        vm.assertEq(m.getChannel(id).headHeight, 0);

        vm.warp(T0 + 1 + GAP + 1);
        DisputeRecord memory d = _timeout(id, addrs[0], p1);
        vm.assertEq(d.target, addrs[1]);
        _finalize(id, d, s1);
        bytes memory gen1 = _rrRemoved(s1, addrs[1]);
        DisputeRecord memory e = _exit(id, addrs[0], _genesisProof(gen1));
        _finalize(id, e, gen1);
        vm.assertEq(_withdrawPending(addrs[0]), STAKE);
        vm.assertEq(_withdrawExit(id, _one(addrs[2], STAKE), 0), STAKE);
    }

    /// Attack 5 (a double-signed branch outruns an N-signed final state): in a 3-party round robin the
    /// colluders p1, p2 write one after the other. p1's move a5 ends the game and all three signed it (final).
    /// Before p0 closes, p1 signs another move b5 that does not end the game and the colluders post the history,
    /// b5 and p2's b6 on top of it, so that the head is above p0's final state. G1: no state that rolls back a
    /// transition p0 signed as final may be enforced, so p0 should still close at a5 and take its exit.
    /// EXPECTED TO FAIL against the current contracts: a5 is below the head, so close / checkpoint /
    /// requestExit refuse it (StaleProof) and every verdict is carried out on the colluders' branch. See the
    /// report.
    function test_attack5_postedBranchOutrunsSignedFinalState() public {
        (bytes32 id, bytes memory g) = _openRr(3, 20);
        // p0 +3, p1 +3, p2 +2, p0 +2 (10), then p1 +10: the counter reaches the target, the game is over
        uint64[5] memory steps = [uint64(3), 3, 2, 2, 10];
        Transaction[] memory ts = new Transaction[](6);
        bytes[] memory ss = new bytes[](6);
        ss[0] = g;
        for (uint256 h = 1; h <= 5; h++) {
            (ts[h], ss[h]) =
                _rrAdd(id, 0, uint64(h), addrs[(h - 1) % 3], uint64(T0 + h), ss[h - 1], steps[h - 1]);
        }
        vm.assertTrue(rr.isGameOverOf(ss[5]));
        StateProof memory fin = _signedProof(ts[5], ss[5], 3);
        vm.warp(T0 + 10);
        // the colluders' branch: p1's other move b5 (+1) and p2's b6 (+1), posted after the history
        StateProof memory parent = _genesisProof(g);
        for (uint256 h = 1; h <= 4; h++) {
            m.postCalldata(ts[h], _issuerSig(ts[h]), parent);
            parent = _postedProof(ts[h], ss[h]);
        }
        (Transaction memory b5, bytes memory sb5) = _rrAdd(id, 0, 5, addrs[1], uint64(T0 + 6), ss[4], 1);
        (Transaction memory b6, bytes memory sb6) = _rrAdd(id, 0, 6, addrs[2], uint64(T0 + 7), sb5, 1);
        try m.postCalldata(b5, _issuerSig(b5), parent) {
            try m.postCalldata(b6, _issuerSig(b6), _postedProof(b5, sb5)) {} catch {}
        } catch {}
        sb6;
        // p0 closes on its N-signed final state
        bool closed;
        vm.prank(addrs[0]);
        try m.close(id, fin) {
            closed = true;
        } catch {}
        vm.assertTrue(closed, "attack 5: a posted double-signed branch made p0's N-signed final state stale");
        vm.assertEq(_withdrawExit(id, rr.exitsOf(ss[5]), 0), STAKE);
    }

    // ================================================================== attack 6: shared machine storage

    /// Attack 6: an outsider and the participants write into the deployed machine and into the channel's own
    /// clone (setState, stateTransition, hooks, a move, initialize); it fails because only a machine's owner
    /// may change its storage, and the clone's owner is the manager (R9); the channel then settles normally.
    function test_attack6_machineStorage_ownerOnly() public {
        (bytes32 id, bytes memory g) = _openTtt();
        bytes memory huge = _hugeTttState(200);
        _writesRefused(address(ttt), addrs[5], address(this), huge);
        _writesRefused(address(ttt), _o(), address(this), huge);
        // the channel's clone appears at the address the manager predicts, on first need
        address inst = m.machineInstance(id);
        vm.assertEq(inst.code.length, 0);
        vm.warp(T0 + 5);
        (Transaction memory a1, bytes memory s1) = _tttMove(id, 0, 1, _x(), uint64(T0 + 5), g, 4);
        m.postCalldata(a1, _issuerSig(a1), _genesisProof(g));
        vm.assertGt(inst.code.length, 0);
        vm.assertEq(IStateMachine(inst).owner(), address(manager));
        vm.assertEq(keccak256(IStateMachine(inst).getState()), keccak256(s1));
        for (uint256 i = 0; i < 3; i++) {
            address who = i == 0 ? addrs[5] : addrs[i - 1];
            _writesRefused(inst, who, address(manager), huge);
            vm.prank(who);
            vm.expectRevert(AStateMachine.AlreadyInitialized.selector);
            IStateMachine(inst).initialize();
            vm.prank(who);
            vm.expectRevert(AStateMachine.OnlyTransition.selector);
            TicTacToe(inst).play(0);
        }
        vm.assertEq(keccak256(IStateMachine(inst).getState()), keccak256(s1));
        // O is silent: X's timeout runs on the clone and X takes both stakes
        vm.warp(T0 + 5 + GAP + 1);
        DisputeRecord memory d = _timeout(id, _x(), _postedProof(a1, s1));
        _finalize(id, d, s1);
        vm.assertEq(_withdrawExit(id, _one(_x(), 2 * STAKE), 0), 2 * STAKE);
    }

    /// Every storage-changing entry point of `machine` refuses `who` (the owner is `owner`).
    function _writesRefused(address machine, address who, address owner, bytes memory state) internal {
        bytes memory err = abi.encodeWithSelector(AStateMachine.NotOwner.selector, who, owner);
        Transaction memory t;
        t.participant = who;
        t.data = abi.encodeCall(TicTacToe.play, (0));
        vm.startPrank(who);
        vm.expectRevert(err);
        IStateMachine(machine).setState(state);
        vm.expectRevert(err);
        IStateMachine(machine).stateTransition(t);
        vm.expectRevert(err);
        IStateMachine(machine).removeParticipant(who);
        vm.expectRevert(err);
        IStateMachine(machine).slashParticipant(who);
        vm.expectRevert(err);
        IStateMachine(machine).joinParticipant(who, 1, "");
        vm.stopPrank();
    }

    /// A TicTacToe state listing `n` players (far too big to load within a dispute's gas).
    function _hugeTttState(uint256 n) internal pure returns (bytes memory) {
        TicTacToe.Game memory gm;
        gm.players = new address[](n);
        gm.balances = new uint256[](n);
        for (uint256 i = 0; i < n; i++) {
            gm.players[i] = address(uint160(i + 1));
            gm.balances[i] = 1;
        }
        return abi.encode(gm);
    }

    /// Attack 6 (the machine's own deployer): O deploys the channel's TicTacToe itself (the same bytecode as the
    /// artifact, so X accepts it) and fills its storage with a 1,000-player state, so that loading any state
    /// into it would cost more than the dispute gas; it fails because disputes run in the channel's own clone
    /// (R9): a timeout + finalize and a fraud proof cost the same gas as on a clean machine, and X is paid.
    function test_attack6_ownerFilledMachine_disputesRunWithNormalGas() public {
        vm.prank(_o());
        TicTacToe evil = new TicTacToe();
        vm.assertEq(keccak256(address(evil).code), keccak256(address(ttt).code));
        vm.prank(_o());
        evil.setState(_hugeTttState(1000));
        vm.assertEq(evil.getGame().players.length, 1000);
        _writesRefused(address(evil), addrs[5], _o(), "");

        // (the manager's extensions are warmed first, so that neither flow pays their first, cold, access)
        m.leaveApprovalDigest(LeaveApproval(bytes32(0), 0, 0, bytes32(0), address(0), 0));
        DisputeRecord memory none;
        try m.finalizeDispute(bytes32(0), none, "") {} catch {}
        uint256[3] memory dirty = _timeoutFlowGas(address(evil));
        uint256[3] memory clean = _timeoutFlowGas(address(ttt));
        for (uint256 i = 0; i < 3; i++) {
            vm.assertLe(
                dirty[i],
                clean[i] + 3000, // account warmth differs between the two runs by a few thousand gas
                string.concat(
                    "timeout flow step ",
                    vm.toString(i),
                    " costs more on the filled machine; clean: ",
                    vm.toString(clean[i])
                )
            );
            vm.assertLt(dirty[i], 600_000);
        }
        uint256 fDirty = _fraudGas(address(evil));
        uint256 fClean = _fraudGas(address(ttt));
        vm.assertLe(fDirty, fClean + 2000, "fraud proof costs more on the filled machine");
        vm.assertLt(fDirty, 600_000);
        // the filled storage is still there, untouched: the manager never used it
        vm.assertEq(evil.getGame().players.length, 1000);
    }

    /// On a fresh TicTacToe channel of `machine`: X posts its move, O is silent, X times it out and the
    /// verdict is carried out; returns the gas of the post, the accusation and the finalization (and checks
    /// X is paid both stakes).
    function _timeoutFlowGas(address machine) internal returns (uint256[3] memory used) {
        uint256 t0 = block.timestamp;
        (bytes32 id, bytes memory g) = _openTttOn(machine, keccak256(abi.encode("timeout flow", machine)));
        (Transaction memory a1, bytes memory s1) = _tttMove(id, 0, 1, _x(), uint64(t0), g, 4);
        bytes memory sig = _issuerSig(a1);
        StateProof memory gp = _genesisProof(g);
        uint256 before = gasleft();
        m.postCalldata(a1, sig, gp);
        used[0] = before - gasleft();
        vm.warp(t0 + GAP + 1);
        StateProof memory head = _postedProof(a1, s1);
        vm.recordLogs();
        vm.prank(_x());
        before = gasleft();
        m.disputeTimeout(id, head);
        used[1] = before - gasleft();
        DisputeRecord memory d = _record();
        vm.warp(d.deadline + 1);
        before = gasleft();
        m.finalizeDispute(id, d, s1);
        used[2] = before - gasleft();
        vm.assertEq(_withdrawExit(id, _one(_x(), 2 * STAKE), 0), 2 * STAKE);
    }

    /// On a fresh TicTacToe channel of `machine`: X proves that O's move on an occupied cell is invalid;
    /// returns the gas of the proof (and checks O is slashed and X paid both stakes).
    function _fraudGas(address machine) internal returns (uint256 used) {
        (bytes32 id, bytes memory g) = _openTttOn(machine, keccak256(abi.encode("fraud", machine)));
        (Transaction memory a1, bytes memory s1) = _tttMove(id, 0, 1, _x(), uint64(block.timestamp), g, 4);
        StateProof memory p1 = _signedProof(a1, s1, 2);
        Transaction memory t = _claim(
            id, 2, _o(), block.timestamp, s1, keccak256("O wins"), abi.encodeCall(TicTacToe.play, (4))
        );
        bytes memory sig = _issuerSig(t);
        vm.recordLogs();
        vm.prank(_x());
        uint256 before = gasleft();
        m.proveFraud(id, DisputeKind.InvalidTransition, p1, t, sig);
        used = before - gasleft();
        DisputeRecord memory d = _record();
        vm.assertEq(d.target, _o());
        _finalize(id, d, s1);
        vm.assertEq(_withdrawExit(id, _one(_x(), 2 * STAKE), 0), 2 * STAKE);
    }

    /// Attack 6 (isolation): two channels on the same machine get two different clones, each holding only its
    /// own channel's state, and the shared machine's storage is never written by the manager (R9).
    function test_attack6_twoChannels_twoClones() public {
        bytes32 before = keccak256(ttt.getState());
        (bytes32 id1, bytes memory g1) = _openTttOn(address(ttt), "one");
        (bytes32 id2, bytes memory g2) = _openTttOn(address(ttt), "two");
        address i1 = m.machineInstance(id1);
        address i2 = m.machineInstance(id2);
        vm.assertTrue(i1 != i2);
        vm.assertTrue(i1 != address(ttt) && i2 != address(ttt));
        (Transaction memory a, bytes memory sa) = _tttMove(id1, 0, 1, _x(), uint64(T0), g1, 4);
        (Transaction memory b, bytes memory sb) = _tttMove(id2, 0, 1, _x(), uint64(T0), g2, 0);
        m.postCalldata(a, _issuerSig(a), _genesisProof(g1));
        m.postCalldata(b, _issuerSig(b), _genesisProof(g2));
        vm.assertEq(IStateMachine(i1).owner(), address(manager));
        vm.assertEq(IStateMachine(i2).owner(), address(manager));
        vm.assertEq(keccak256(IStateMachine(i1).getState()), keccak256(sa));
        vm.assertEq(keccak256(IStateMachine(i2).getState()), keccak256(sb));
        vm.assertEq(keccak256(ttt.getState()), before);
        // the clone of one channel is no proof in the other: each head is its own
        vm.assertEq(m.getChannel(id1).headStateHash, keccak256(sa));
        vm.assertEq(m.getChannel(id2).headStateHash, keccak256(sb));
    }

    // ================================================================== attack 7: leave approvals

    function _leaveAtGenesis(bytes32 id, bytes memory g, address leaver)
        internal
        view
        returns (LeaveApproval memory a, bytes[] memory sigs)
    {
        a = LeaveApproval(id, 0, 0, keccak256(g), leaver, uint64(T0 + 1 days));
        sigs = _signAll(m.leaveApprovalDigest(a), 2);
    }

    /// Attack 7 (head moved): O holds a leave approval for X signed at the genesis and applies it once X is
    /// about to win, to make X forfeit; it fails because an approval below the head (or at its height for
    /// another state) is stale (R11); X wins and takes both stakes.
    function test_attack7_oldLeaveApproval_belowHead_stale() public {
        (bytes32 id, bytes memory g) = _openTtt();
        (Transaction[] memory ts, bytes[] memory ss) = _tttHistory(id, g);
        (LeaveApproval memory a, bytes[] memory sigs) = _leaveAtGenesis(id, g, _x());
        vm.warp(T0 + 10);
        m.checkpoint(id, _signedProof(ts[2], ss[2], 2));
        vm.prank(_o());
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.StaleProof.selector, 2, keccak256(g)));
        m.leaveChannel(a, g, sigs);
        // an approval at the head's height, for another state
        LeaveApproval memory b = LeaveApproval(id, 0, 2, keccak256(ss[1]), _x(), uint64(T0 + 1 days));
        bytes[] memory sb = _signAll(m.leaveApprovalDigest(b), 2);
        vm.prank(_o());
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.StaleProof.selector, 2, keccak256(ss[1])));
        m.leaveChannel(b, ss[1], sb);
        vm.assertEq(uint256(_status(id)), uint256(ChannelStatus.Open));
        // X wins: its winning move on its N-signed height 4, settled by a forced exit on the finished game
        m.postCalldata(ts[5], _issuerSig(ts[5]), _signedProof(ts[4], ss[4], 2));
        DisputeRecord memory d = _exit(id, _x(), _postedProof(ts[5], ss[5]));
        _finalize(id, d, ss[5]);
        Exit[] memory exits = ttt.exitsOf(ss[5]);
        vm.assertEq(_withdrawExit(id, exits, 0), 2 * STAKE);
        vm.assertEq(address(manager).balance, 0);
    }

    /// Attack 7 (head still at the genesis): O applies X's genesis leave approval while X holds N-signed states
    /// up to height 4; it fails because a later N-signed state cancels the leave (R11: nobody removed, the new
    /// fork starts from the later state, never rolled back) and the approval cannot be used again; X wins.
    function test_attack7_oldLeaveApproval_atHead_cancelledByLaterState() public {
        (bytes32 id, bytes memory g) = _openTtt();
        (Transaction[] memory ts, bytes[] memory ss) = _tttHistory(id, g);
        (LeaveApproval memory a, bytes[] memory sigs) = _leaveAtGenesis(id, g, _x());
        vm.warp(T0 + 10);
        vm.recordLogs();
        vm.prank(_o());
        m.leaveChannel(a, g, sigs);
        DisputeRecord memory d = _record();
        vm.assertEq(uint256(d.kind), uint256(DisputeKind.Leave));
        vm.assertEq(d.target, _x());
        StateProof memory p4 = _signedProof(ts[4], ss[4], 2);
        vm.recordLogs();
        vm.prank(_x());
        m.challenge(id, d, p4);
        DisputeRecord memory c = _record();
        vm.assertTrue(c.challenged);
        vm.assertEq(c.target, address(0));
        vm.assertFalse(c.slash);
        vm.assertEq(c.height, 4);
        _finalize(id, c, ss[4]);
        Channel memory ch = m.getChannel(id);
        vm.assertEq(ch.forkCnt, 1);
        vm.assertEq(ch.genesisHeight, 4);
        vm.assertEq(ch.genesisStateHash, keccak256(ss[4]));
        vm.assertEq(m.getParticipants(id).length, 2);
        vm.assertEq(m.pendingBalance(_x(), address(0)), 0);
        vm.prank(_o());
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.WrongFork.selector, 1, 0));
        m.leaveChannel(a, g, sigs);
        // X wins on the new fork
        _xWinsOnFork1(id, ss[4]);
    }

    /// X posts its winning move on fork 1 (genesis `s4` at height 4) and settles; X is paid both stakes.
    function _xWinsOnFork1(bytes32 id, bytes memory s4) internal {
        (Transaction memory w, bytes memory sw) = _tttMove(id, 1, 5, _x(), uint64(block.timestamp), s4, 2);
        m.postCalldata(w, _issuerSig(w), _genesisProof(s4));
        DisputeRecord memory e = _exit(id, _x(), _postedProof(w, sw));
        _finalize(id, e, sw);
        vm.assertEq(_withdrawExit(id, ttt.exitsOf(sw), 0), 2 * STAKE);
    }

    /// Attack 7 (head pushed up by replayed posts): O applies X's genesis leave approval while the head is at
    /// the genesis, then posts the N-signed history itself (every transaction carries its issuer's signature)
    /// so that the head reaches X's highest N-signed height; X's later N-signed state should cancel the leave
    /// (R11: "an N-signed state above the approval defeats it"), and X should keep its won game.
    /// EXPECTED TO FAIL against the current contracts: `challenge` requires a state above the HEAD, which the
    /// replayed posts moved up, so X's state is no challenge (NotAChallenge), X is removed (forfeits) at the
    /// head and O takes both stakes. See the report.
    function test_attack7_oldLeaveApproval_replayedPostsBlockCancel() public {
        (bytes32 id, bytes memory g) = _openTtt();
        (Transaction[] memory ts, bytes[] memory ss) = _tttHistory(id, g);
        (LeaveApproval memory a, bytes[] memory sigs) = _leaveAtGenesis(id, g, _x());
        vm.warp(T0 + 10);
        vm.recordLogs();
        vm.prank(_o());
        m.leaveChannel(a, g, sigs);
        DisputeRecord memory d = _record();
        // O replays heights 1-4 as posts (each may be refused; then it stops)
        StateProof memory parent = _genesisProof(g);
        for (uint256 h = 1; h <= 4; h++) {
            bytes memory sig = _issuerSig(ts[h]);
            vm.prank(_o());
            try m.postCalldata(ts[h], sig, parent) {
                parent = _postedProof(ts[h], ss[h]);
            } catch {
                break;
            }
        }
        // X answers with its highest N-signed state
        StateProof memory p4 = _signedProof(ts[4], ss[4], 2);
        bool cancelled;
        vm.recordLogs();
        vm.prank(_x());
        try m.challenge(id, d, p4) {
            cancelled = true;
        } catch {}
        uint256 xPaid;
        if (cancelled) {
            DisputeRecord memory c = _record();
            _finalize(id, c, ss[4]);
            uint256 b = _x().balance;
            _xWinsOnFork1(id, ss[4]);
            xPaid = _x().balance - b;
        } else {
            xPaid = _attack7_xWinsThenLeaveRuns(id, d, ts[5], ss[5], parent);
        }
        vm.assertEq(xPaid, 2 * STAKE, "attack 7: a stale leave approval removed X after O replayed posts");
    }

    /// X's best remaining move: post its winning move `t5` on `parent`; the leave `d` is then carried out at
    /// the head. Returns what X can take out.
    function _attack7_xWinsThenLeaveRuns(
        bytes32 id,
        DisputeRecord memory d,
        Transaction memory t5,
        bytes memory s5,
        StateProof memory parent
    ) internal returns (uint256 xPaid) {
        m.postCalldata(t5, _issuerSig(t5), parent);
        vm.recordLogs();
        _finalize(id, d, s5);
        (Exit[] memory exits, bool closed) = _closedExits(vm.getRecordedLogs());
        xPaid = m.pendingBalance(_x(), address(0));
        for (uint256 i = 0; closed && i < exits.length; i++) {
            if (exits[i].participant == _x()) xPaid += exits[i].amount;
        }
    }

    // ================================================================== attack 8: smaller ones

    /// Attack 8 (gas floor): a channel opened with a machine gas limit too small for its N participants, so
    /// that dispute calls could be made to fail, is refused (R12); at the floor it opens.
    function test_attack8_machineGasBelowFloor_refused() public {
        for (uint256 n = 2; n <= 8; n += 3) {
            (ChannelSpec memory s, bytes memory g) = _rrSpec(n, 10);
            s.machineGasLimit = uint64(m.MIN_MACHINE_GAS() + n * m.MACHINE_GAS_PER_PARTICIPANT() - 1);
            vm.prank(addrs[0]);
            vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.InvalidSpec.selector, "machine gas"));
            m.open{value: STAKE}(s, g);
            s.machineGasLimit += 1;
            vm.prank(addrs[0]);
            m.open{value: STAKE}(s, g);
        }
    }

    /// Attack 8 (zero deposit): a participant with nothing at stake (which could misbehave for free) is
    /// refused at open (R12).
    function test_attack8_zeroDeposit_refused() public {
        (ChannelSpec memory s,) = _rrSpec(3, 10);
        s.deposits[2] = 0;
        bytes memory g = rr.initialState(s.participants, s.deposits, 10);
        vm.prank(addrs[0]);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.InvalidSpec.selector, "zero deposit"));
        m.open{value: STAKE}(s, g);
        s.deposits[2] = STAKE;
        s.deposits[0] = 0;
        g = rr.initialState(s.participants, s.deposits, 10);
        vm.prank(addrs[0]);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.InvalidSpec.selector, "zero deposit"));
        m.open(s, g);
    }

    uint256 internal constant PAD = 192 * 1024;
    bytes4 internal constant VERDICT = 0xffffffff;

    /// Attack 8 (re-execution gas): X's valid move carries 192 KiB of data in a channel whose machine gas limit
    /// is just what that move needs; O claims it is invalid with every amount of gas around the threshold,
    /// hoping the encoding of the large call eats into the machine's gas so that the valid move fails; it
    /// fails because the gas check happens after encoding (R12): below the threshold the proof reverts
    /// InsufficientGas, above it the claim does not hold; X is never slashed and wins the stakes.
    function test_attack8_largeMoveData_tightGas_neverJudgedInvalid() public {
        bytes memory data = bytes.concat(abi.encodeCall(TicTacToe.play, (4)), new bytes(PAD));
        uint256 need = _transitionCost(data);
        vm.assertGt(need, 300_000); // the large data is most of the move's cost
        (ChannelSpec memory s, bytes memory g) = _tttSpec();
        s.machineGasLimit = uint64(need + 2000);
        s.salt = "large move";
        bytes32 id = _openFunded(s, g);
        (Transaction memory a1, bytes memory s1) =
            _txOn(address(tttScratch), id, 0, 1, _x(), uint64(T0), g, data);
        bytes memory sig = _issuerSig(a1);

        _attack8_sweep(id, g, a1, sig, need);

        // the move is valid on chain at this gas limit; O is silent and X takes both stakes
        m.postCalldata(a1, sig, _genesisProof(g));
        vm.warp(T0 + GAP + 1);
        DisputeRecord memory d = _timeout(id, _x(), _postedProof(a1, s1));
        _finalize(id, d, s1);
        vm.assertEq(_withdrawExit(id, _one(_x(), 2 * STAKE), 0), 2 * STAKE);
    }

    /// O's InvalidTransition claim against X's valid move `a1` with every amount of gas around the smallest
    /// that gets it judged: never a verdict; just below, InsufficientGas.
    function _attack8_sweep(bytes32 id, bytes memory g, Transaction memory a1, bytes memory sig, uint256 need)
        internal
    {
        uint256 lo = need;
        uint256 hi = 30_000_000;
        vm.assertEq(_outcome(id, g, a1, sig, hi), IStateChannelEvents.ClaimDoesNotHold.selector);
        while (lo + 1 < hi) {
            uint256 mid = (lo + hi) / 2;
            bytes4 r = _outcome(id, g, a1, sig, mid);
            vm.assertTrue(r != VERDICT, "a valid move was judged invalid");
            if (r == IStateChannelEvents.ClaimDoesNotHold.selector) hi = mid;
            else lo = mid;
        }
        vm.assertEq(_outcome(id, g, a1, sig, hi - 1), IStateChannelEvents.InsufficientGas.selector);
        // every amount below the threshold: refused, never a verdict
        uint256 refusedForGas;
        for (uint256 gas = hi - 400_000; gas < hi; gas += 4_000) {
            bytes4 r = _outcome(id, g, a1, sig, gas);
            vm.assertTrue(r != VERDICT, "a valid move was judged invalid");
            if (r == IStateChannelEvents.InsufficientGas.selector) refusedForGas++;
        }
        vm.assertGt(refusedForGas, 50);
        vm.assertEq(uint256(_status(id)), uint256(ChannelStatus.Open));
    }

    /// O's claim that `t` is invalid, sent with `gas`: the revert selector, or VERDICT if a dispute started.
    function fraudOutcome(bytes32 id, bytes memory g, Transaction memory t, bytes memory sig, uint256 gas)
        external
        returns (bytes4)
    {
        StateProof memory gp = _genesisProof(g);
        vm.prank(addrs[1]);
        try m.proveFraud{gas: gas}(id, DisputeKind.InvalidTransition, gp, t, sig) {
            return VERDICT;
        } catch (bytes memory err) {
            return err.length < 4 ? bytes4(0) : bytes4(err);
        }
    }

    /// The least gas with which X's move with `data` succeeds on a TicTacToe clone loaded with the genesis
    /// (as the channel's instance runs it; every probe is reverted, so each sees the same fresh storage).
    function _transitionCost(bytes memory data) internal returns (uint256) {
        address inst = Clones.clone(address(ttt));
        IStateMachine(inst).initialize();
        bytes memory g = ttt.initialState(addrs[0], addrs[1], STAKE);
        Transaction memory t = Transaction(bytes32(0), 0, 1, addrs[0], uint64(T0), keccak256(g), 0, data);
        uint256 lo = 0;
        uint256 hi = 10_000_000;
        vm.assertTrue(_probe(inst, g, t, hi));
        while (lo + 1 < hi) {
            uint256 mid = (lo + hi) / 2;
            if (_probe(inst, g, t, mid)) hi = mid;
            else lo = mid;
        }
        return hi;
    }

    error Probed(bool ok);

    /// Whether the transition succeeds with `gas` (the probe's effects are reverted; the memory of the
    /// large call is reused).
    function _probe(address inst, bytes memory g, Transaction memory t, uint256 gas)
        internal
        returns (bool ok)
    {
        uint256 fmp;
        assembly {
            fmp := mload(0x40)
        }
        try this.transitionWithGas(inst, g, t, gas) {}
        catch (bytes memory err) {
            ok = keccak256(err) == keccak256(abi.encodeWithSelector(Probed.selector, true));
        }
        assembly {
            mstore(0x40, fmp)
        }
    }

    function transitionWithGas(address inst, bytes memory prev, Transaction memory t, uint256 gas) external {
        IStateMachine(inst).setState(prev);
        (bool ok,) = inst.call{gas: gas}(abi.encodeCall(IStateMachine.stateTransition, (t)));
        revert Probed(ok);
    }

    /// `fraudOutcome` without growing this frame's memory by a copy of the large call each time.
    function _outcome(bytes32 id, bytes memory g, Transaction memory t, bytes memory sig, uint256 gas)
        internal
        returns (bytes4 r)
    {
        uint256 fmp;
        assembly {
            fmp := mload(0x40)
        }
        r = this.fraudOutcome(id, g, t, sig, gas);
        assembly {
            mstore(0x40, fmp)
        }
    }

    /// A RoundRobinCounter channel between p0 and a contract participant `rc` (salted).
    function _openWithContract(ReentrantReceiver rc, bytes32 salt)
        internal
        returns (bytes32 id, bytes memory g)
    {
        address[] memory ps = new address[](2);
        ps[0] = addrs[0];
        ps[1] = address(rc);
        uint256[] memory deps = new uint256[](2);
        deps[0] = STAKE;
        deps[1] = STAKE;
        ChannelSpec memory s = _spec(address(rr), address(0), ps, deps);
        s.salt = salt;
        g = rr.initialState(ps, deps, 100);
        vm.prank(addrs[0]);
        id = m.open{value: STAKE}(s, g);
        rc.call(address(manager), STAKE, abi.encodeCall(IStateChannelManager.deposit, (id, 1)));
    }

    /// Attack 8 (payee that refuses ETH): a participant contract that cannot receive ETH would lose its exit,
    /// and p0 tries to redirect that exit to itself; it fails because only the exit's participant may send it
    /// elsewhere (withdrawTo: NotYourExit) and credits are always the caller's own (withdrawPendingTo) (R12);
    /// the contract gets paid at another address.
    function test_attack8_refusingPayee_withdrawTo_notRedirectable() public {
        ReentrantReceiver rc = new ReentrantReceiver();
        vm.deal(address(rc), 10 ether);
        address payee = address(0xBEEF);
        (bytes32 id, bytes memory g) = _openWithContract(rc, "exit at close");
        rc.setRefuse(true);
        // p0 leaves: the channel closes with rc's exit
        DisputeRecord memory d = _exit(id, addrs[0], _genesisProof(g));
        _finalize(id, d, g);
        Exit[] memory exits = _one(address(rc), STAKE);
        vm.expectRevert(IStateChannelEvents.TransferFailed.selector);
        m.withdraw(id, exits, 0);
        vm.prank(addrs[0]);
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.NotYourExit.selector, address(rc), addrs[0])
        );
        m.withdrawTo(id, exits, 0, addrs[0]);
        rc.call(address(manager), 0, abi.encodeCall(IStateChannelManager.withdrawTo, (id, exits, 0, payee)));
        vm.assertEq(payee.balance, STAKE);
        vm.assertTrue(m.isClaimed(id, 0));
        vm.assertEq(_withdrawPending(addrs[0]), STAKE);

        // rc leaves another channel: its credit is withdrawn to another address, by rc only
        (bytes32 id2, bytes memory g2) = _openWithContract(rc, "credit");
        vm.recordLogs();
        rc.call(
            address(manager), 0, abi.encodeCall(IStateChannelManager.requestExit, (id2, _genesisProof(g2)))
        );
        DisputeRecord memory e = _record();
        _finalize(id2, e, g2);
        vm.assertEq(m.pendingBalance(address(rc), address(0)), STAKE);
        vm.expectRevert(IStateChannelEvents.TransferFailed.selector);
        rc.call(address(manager), 0, abi.encodeCall(IStateChannelManager.withdrawPending, (address(0))));
        vm.prank(addrs[0]);
        vm.expectRevert(IStateChannelEvents.NothingToWithdraw.selector);
        m.withdrawPendingTo(address(0), addrs[0]);
        vm.assertEq(m.pendingBalance(address(rc), address(0)), STAKE);
        rc.call(
            address(manager), 0, abi.encodeCall(IStateChannelManager.withdrawPendingTo, (address(0), payee))
        );
        vm.assertEq(payee.balance, 2 * STAKE);
        vm.assertEq(m.pendingBalance(address(rc), address(0)), 0);
        vm.assertEq(_withdrawExit(id2, _one(addrs[0], STAKE), 0), STAKE);
        vm.assertEq(address(manager).balance, 0);
    }

    // ------------------------------------------------------------------ attack 8: verdicts whose hook fails

    /// A 3-party channel of the BadHookMachine in `mode`; p0 has posted its move (height 1), p1 writes next.
    function _hookChannel(BadHookMachine.Mode mode)
        internal
        returns (bytes32 id, Transaction memory a1, bytes memory s1)
    {
        (ChannelSpec memory s,) = _rrSpec(3, 10);
        s.stateMachine = address(bad);
        bytes memory g = bad.initialState(s.participants, s.deposits, mode);
        id = _openFunded(s, g);
        vm.warp(block.timestamp + 5);
        (a1, s1) = _txOn(
            address(badScratch),
            id,
            0,
            1,
            addrs[0],
            uint64(block.timestamp),
            g,
            abi.encodeCall(BadHookMachine.add, (1))
        );
        m.postCalldata(a1, _issuerSig(a1), _genesisProof(g));
    }

    /// The silent p1 is timed out (remove hook) or proven to have signed an invalid move (slash hook) in a
    /// channel whose hooks misbehave as `mode` says; the verdict must settle the channel at the head's exits
    /// (HookFailed) and p0 withdraws its deposit.
    function _hookFailureSettles(BadHookMachine.Mode mode, bool slash) internal {
        (bytes32 id, Transaction memory a1, bytes memory s1) = _hookChannel(mode);
        StateProof memory head = _postedProof(a1, s1);
        DisputeRecord memory d;
        if (slash) {
            Transaction memory t = _claim(
                id,
                2,
                addrs[1],
                block.timestamp,
                s1,
                keccak256("p1 wins"),
                abi.encodeCall(BadHookMachine.add, (50))
            );
            bytes memory sig = _issuerSig(t);
            vm.recordLogs();
            vm.prank(addrs[0]);
            m.proveFraud(id, DisputeKind.InvalidTransition, head, t, sig);
            d = _record();
        } else {
            vm.warp(block.timestamp + GAP + 1);
            d = _timeout(id, addrs[0], head);
        }
        vm.assertEq(d.target, addrs[1]);
        vm.warp(d.deadline + 1);
        vm.expectEmit(address(manager));
        emit IStateChannelEvents.HookFailed(id, addrs[1], slash);
        m.finalizeDispute(id, d, s1);
        vm.assertEq(uint256(_status(id)), uint256(ChannelStatus.Closed));
        Exit[] memory exits = bad.exitsOf(s1);
        vm.assertEq(exits.length, 3);
        vm.assertEq(_withdrawExit(id, exits, 0), STAKE);
        vm.assertEq(_withdrawExit(id, exits, 2), STAKE);
        vm.assertEq(_withdrawExit(id, exits, 1), STAKE);
        vm.assertEq(address(manager).balance, 0);
    }

    /// Attack 8 (a view reverts, exit): p1's forced exit is finalized by asking the machine whether the head
    /// is a finished game; a machine whose `isGameOverOf` reverts would make that fail for ever. It fails
    /// because the answer is read with a low-level call and a failure counts as "not over": the verdict runs
    /// and, its result being unenforceable too, the channel settles at the head's exits (R10, G4).
    function test_attack8_gameOverViewReverts_exit_settlesAtHead() public {
        (bytes32 id, Transaction memory a1, bytes memory s1) =
            _hookChannel(BadHookMachine.Mode.GameOverReverts);
        vm.recordLogs();
        vm.prank(addrs[1]);
        m.requestExit(id, _postedProof(a1, s1));
        DisputeRecord memory d = _record();
        vm.warp(d.deadline + 1);
        vm.expectEmit(address(manager));
        emit IStateChannelEvents.HookFailed(id, addrs[1], false);
        m.finalizeDispute(id, d, s1);
        vm.assertEq(uint256(_status(id)), uint256(ChannelStatus.Closed));
        Exit[] memory exits = bad.exitsOf(s1);
        for (uint256 i = 0; i < 3; i++) {
            vm.assertEq(_withdrawExit(id, exits, i), STAKE);
        }
    }

    /// Attack 8 (hook reverts, remove): a machine whose remove hook reverts would make the timeout verdict
    /// against p1 fail for ever; it fails because the chain settles at the head's exits instead (R10, G4).
    function test_attack8_hookReverts_timeout_settlesAtHead() public {
        _hookFailureSettles(BadHookMachine.Mode.Revert, false);
    }

    /// Attack 8 (hook reverts, slash): the same with the slash hook of a fraud verdict (R10, G4).
    function test_attack8_hookReverts_fraud_settlesAtHead() public {
        _hookFailureSettles(BadHookMachine.Mode.Revert, true);
    }

    /// Attack 8 (hook lowers another's exit): p1's removal would also take p0's balance; it fails because a
    /// hook result that lowers the exit of anyone but its target is not enforced (R10): p0 keeps its deposit.
    function test_attack8_hookLowersOthersExit_settlesAtHead() public {
        _hookFailureSettles(BadHookMachine.Mode.LowerOthers, false);
    }

    /// Attack 8 (hook lowers another's exit, slash path) (R10).
    function test_attack8_hookLowersOthersExit_fraud_settlesAtHead() public {
        _hookFailureSettles(BadHookMachine.Mode.LowerOthers, true);
    }

    /// Attack 8 (hook breaks conservation): the removal would pay out more than is locked; it fails because
    /// hook exits plus the result's exits must sum to the locked total (R10, G5).
    function test_attack8_hookUnconserved_settlesAtHead() public {
        _hookFailureSettles(BadHookMachine.Mode.Unconserved, false);
    }

    /// Attack 8 (hook burns its gas): the verdict would run out of gas; it fails because the hook gets exactly
    /// the machine gas limit and its failure is caught (R10).
    function test_attack8_hookBurnsGas_settlesAtHead() public {
        _hookFailureSettles(BadHookMachine.Mode.BurnGas, false);
    }

    /// Attack 8 (hook result does not decode): it fails because an undecodable result is not enforced (R10).
    function test_attack8_hookResultUndecodable_settlesAtHead() public {
        _hookFailureSettles(BadHookMachine.Mode.UndecodableResult, true);
    }

    /// Attack 8 (hook returns data that is not an `Exit[]`): a machine whose remove hook returns bytes that do
    /// not decode as `Exit[]` would make the timeout verdict against p1 revert for ever; the verdict must
    /// still settle at the head's exits (R10, G4).
    /// EXPECTED TO FAIL against the current contracts: `try m.removeParticipant(..) returns (Exit[] memory)`
    /// does not catch a failure to decode the return data (Solidity reverts in the caller), so
    /// `finalizeDispute` always reverts and the channel is locked. See the report.
    function test_attack8_hookMalformedReturn_settlesAtHead() public {
        _hookFailureSettles(BadHookMachine.Mode.MalformedReturn, false);
    }

    /// Control for the hook tests: with working hooks the same verdict removes p1 with its deposit and the two
    /// others go on in a new fork.
    function test_attack8_hookHonest_control() public {
        (bytes32 id, Transaction memory a1, bytes memory s1) = _hookChannel(BadHookMachine.Mode.Honest);
        vm.warp(block.timestamp + GAP + 1);
        DisputeRecord memory d = _timeout(id, addrs[0], _postedProof(a1, s1));
        _finalize(id, d, s1);
        vm.assertEq(uint256(_status(id)), uint256(ChannelStatus.Open));
        vm.assertEq(m.getChannel(id).forkCnt, 1);
        vm.assertEq(m.pendingBalance(addrs[1], address(0)), STAKE);
        vm.assertEq(m.getParticipants(id).length, 2);
    }
}
