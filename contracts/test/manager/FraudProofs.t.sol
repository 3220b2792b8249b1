// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ChannelTestBase} from "../utils/ChannelTestBase.sol";
import {IStateChannelEvents} from "../../src/interfaces/IStateChannelEvents.sol";
import {TicTacToe} from "../../src/machines/TicTacToe.sol";
import {
    Transaction,
    StateProof,
    ProofKind,
    Exit,
    DisputeRecord,
    DisputeKind,
    DoubleSignProof,
    ChannelStatus
} from "../../src/ChannelTypes.sol";

/// @notice Fraud proofs: double signature, invalid transition, timestamps, wrong parent/genesis; a claim that
/// does not hold, and a malformed proof, revert.
contract FraudProofsTest is ChannelTestBase {
    bytes32 internal id;
    bytes internal g;
    Transaction internal t1;
    bytes internal s1;
    StateProof internal p1;

    function setUp() public override {
        super.setUp();
        (id, g) = _openTtt();
        (Transaction memory t, bytes memory s) = _tttMove(id, 0, 1, addrs[0], uint64(T0 + 1), g, 4);
        t1 = t;
        s1 = s;
        p1 = _signedProof(t, s, 2);
        vm.warp(T0 + 5);
    }

    /// O's transaction at height 2 playing `cell` (computed honestly).
    function _oMove(uint8 cell, uint256 ts) internal returns (Transaction memory t, bytes memory s) {
        return _tttMove(id, 0, 2, addrs[1], uint64(ts), s1, cell);
    }

    /// A transaction by O at height 2 whose claimed state is `stateHash` (not executed).
    function _oClaim(bytes memory data, bytes32 stateHash, uint256 ts)
        internal
        view
        returns (Transaction memory t)
    {
        t = Transaction(id, 0, 2, addrs[1], uint64(ts), keccak256(s1), stateHash, data);
    }

    function _fraud(DisputeKind kind, StateProof memory prev, Transaction memory t)
        internal
        returns (DisputeRecord memory)
    {
        bytes memory sig = _issuerSig(t);
        vm.recordLogs();
        vm.prank(addrs[0]);
        m.proveFraud(id, kind, prev, t, sig);
        return _record();
    }

    /// Finalizes `d` on `state` and returns what each of X and O can take out in total.
    function _settle(DisputeRecord memory d, bytes memory state) internal returns (uint256 x, uint256 o) {
        vm.warp(d.deadline + 1);
        m.finalizeDispute(id, d, state);
        vm.assertEq(uint256(_status(id)), uint256(ChannelStatus.Closed));
        // TicTacToe after a slash: the one player left holds both stakes.
        x = m.pendingBalance(addrs[0], address(0));
        o = m.pendingBalance(addrs[1], address(0));
        address[] memory left = ttt.participantsOf(state);
        left;
        vm.assertEq(_locked(id), 2 * STAKE - x - o);
    }

    // ------------------------------------------------------------------ double signature

    function test_doubleSign_issuer() public {
        (Transaction memory a,) = _oMove(0, T0 + 3);
        (Transaction memory b,) = _oMove(8, T0 + 3);
        DoubleSignProof memory proof = DoubleSignProof(a, _issuerSig(a), b, _issuerSig(b));
        vm.recordLogs();
        vm.prank(addrs[0]);
        m.proveDoubleSign(id, p1, proof);
        DisputeRecord memory d = _record();
        vm.assertEq(uint256(d.kind), uint256(DisputeKind.DoubleSign));
        vm.assertEq(d.target, addrs[1]);
        vm.assertTrue(d.slash);
        _settle(d, s1);
        Exit[] memory exits = new Exit[](1);
        exits[0] = Exit(addrs[0], 2 * STAKE);
        m.withdraw(id, exits, 0);
        vm.assertEq(address(manager).balance, 0);
    }

    /// A confirmer (not the issuer) that signed two transactions at one height is slashed too; anyone
    /// may submit, even an outsider.
    function test_doubleSign_confirmer() public {
        (Transaction memory a,) = _oMove(0, T0 + 3);
        (Transaction memory b,) = _oMove(8, T0 + 3);
        DoubleSignProof memory proof = DoubleSignProof(
            a, _sign(keys[0], m.transactionDigest(a)), b, _sign(keys[0], m.transactionDigest(b))
        );
        vm.recordLogs();
        vm.prank(addrs[6]);
        m.proveDoubleSign(id, _genesisProof(g), proof);
        DisputeRecord memory d = _record();
        vm.assertEq(d.target, addrs[0]);
        vm.assertEq(d.height, 0);
    }

    function test_doubleSign_refusals() public {
        (Transaction memory a,) = _oMove(0, T0 + 3);
        (Transaction memory b,) = _oMove(8, T0 + 3);
        bytes memory sa = _issuerSig(a);
        bytes memory sb = _issuerSig(b);
        // the same transaction twice
        DoubleSignProof memory same = DoubleSignProof(a, sa, a, sa);
        vm.expectRevert(IStateChannelEvents.NotADoubleSign.selector);
        m.proveDoubleSign(id, p1, same);
        // two signers
        DoubleSignProof memory two = DoubleSignProof(a, sa, b, _sign(keys[0], m.transactionDigest(b)));
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.SignerMismatch.selector, addrs[1], addrs[0])
        );
        m.proveDoubleSign(id, p1, two);
        // different heights
        Transaction memory c = _copy(b);
        c.height = 3;
        DoubleSignProof memory heights = DoubleSignProof(a, sa, c, _issuerSig(c));
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.WrongHeight.selector, 2, 3));
        m.proveDoubleSign(id, p1, heights);
        // a fork that does not exist yet
        Transaction memory fa = _copy(a);
        Transaction memory fb = _copy(b);
        fa.forkCnt = 1;
        fb.forkCnt = 1;
        DoubleSignProof memory future = DoubleSignProof(fa, _issuerSig(fa), fb, _issuerSig(fb));
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.WrongFork.selector, 1, 1));
        m.proveDoubleSign(id, p1, future);
        // another channel
        Transaction memory oa = _copy(a);
        oa.channelId = bytes32(uint256(7));
        DoubleSignProof memory other = DoubleSignProof(oa, _issuerSig(oa), b, sb);
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.WrongChannel.selector, id, bytes32(uint256(7)))
        );
        m.proveDoubleSign(id, p1, other);
    }

    function test_doubleSign_refusals2() public {
        (Transaction memory a,) = _oMove(0, T0 + 3);
        (Transaction memory b,) = _oMove(8, T0 + 3);
        bytes memory sa = _issuerSig(a);
        bytes memory sb = _issuerSig(b);
        // an outsider's double signature is nothing to slash
        DoubleSignProof memory outsider = DoubleSignProof(
            a, _sign(keys[5], m.transactionDigest(a)), b, _sign(keys[5], m.transactionDigest(b))
        );
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.NotAParticipant.selector, addrs[5]));
        m.proveDoubleSign(id, p1, outsider);
        // high-s
        DoubleSignProof memory high = DoubleSignProof(a, _highS(sa), b, sb);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.InvalidSignature.selector, 0));
        m.proveDoubleSign(id, p1, high);
    }

    // ------------------------------------------------------------------ invalid transition

    function test_invalidTransition_occupiedCell() public {
        Transaction memory t = _oClaim(abi.encodeCall(TicTacToe.play, (4)), keccak256("whatever"), T0 + 3);
        DisputeRecord memory d = _fraud(DisputeKind.InvalidTransition, p1, t);
        vm.assertEq(uint256(d.kind), uint256(DisputeKind.InvalidTransition));
        vm.assertEq(d.target, addrs[1]);
        vm.assertEq(d.stateHash, keccak256(s1));
        (uint256 x, uint256 o) = _settle(d, s1);
        vm.assertEq(x, 0);
        vm.assertEq(o, 0); // the slashed party gains nothing
    }

    function test_invalidTransition_wrongResultingState() public {
        (Transaction memory t,) = _oMove(0, T0 + 3);
        t.stateHash = keccak256("not the result");
        DisputeRecord memory d = _fraud(DisputeKind.InvalidTransition, p1, t);
        vm.assertEq(d.target, addrs[1]);
    }

    function test_invalidTransition_outOfTurn() public {
        Transaction memory t = _oClaim(abi.encodeCall(TicTacToe.play, (0)), keccak256("x"), T0 + 3);
        t.participant = addrs[0]; // X writes twice in a row
        DisputeRecord memory d = _fraud(DisputeKind.InvalidTransition, p1, t);
        vm.assertEq(d.target, addrs[0]);
    }

    function _falseClaim(DisputeKind kind, StateProof memory prev, Transaction memory t) internal {
        bytes memory sig = _issuerSig(t);
        vm.prank(addrs[0]);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.ClaimDoesNotHold.selector, kind));
        m.proveFraud(id, kind, prev, t, sig);
        vm.assertEq(uint256(_status(id)), uint256(ChannelStatus.Open));
    }

    /// The transition is valid: the claim does not hold, the proof reverts and nothing changes (R7).
    function test_invalidTransition_false_reverts() public {
        (Transaction memory t,) = _oMove(0, T0 + 3);
        _falseClaim(DisputeKind.InvalidTransition, p1, t);
        vm.assertEq(m.getChannel(id).headHeight, 0);
    }

    /// The caller must give the re-execution its full gas limit.
    function test_invalidTransition_insufficientGas() public {
        Transaction memory t = _oClaim(abi.encodeCall(TicTacToe.play, (4)), keccak256("whatever"), T0 + 3);
        bytes memory sig = _issuerSig(t);
        StateProof memory p = p1;
        vm.prank(addrs[0]);
        vm.expectRevert(IStateChannelEvents.InsufficientGas.selector);
        m.proveFraud{gas: 1_000_000}(id, DisputeKind.InvalidTransition, p, t, sig);
    }

    function test_fraud_malformed() public {
        (Transaction memory t,) = _oMove(0, T0 + 3);
        bytes memory sig = _issuerSig(t);
        StateProof memory p = p1;
        // not built on prev
        Transaction memory u = _copy(t);
        u.prevStateHash = keccak256("elsewhere");
        bytes memory su = _issuerSig(u);
        vm.prank(addrs[0]);
        vm.expectRevert(IStateChannelEvents.NotASuccessor.selector);
        m.proveFraud(id, DisputeKind.InvalidTransition, p, u, su);
        // wrong height
        Transaction memory h = _copy(t);
        h.height = 3;
        bytes memory sh = _issuerSig(h);
        vm.prank(addrs[0]);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.WrongHeight.selector, 2, 3));
        m.proveFraud(id, DisputeKind.InvalidTransition, p, h, sh);
        // signature not by the issuer
        bytes memory notIssuer = _sign(keys[0], m.transactionDigest(t));
        vm.prank(addrs[0]);
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.SignerMismatch.selector, addrs[1], addrs[0])
        );
        m.proveFraud(id, DisputeKind.InvalidTransition, p, t, notIssuer);
        // not a fraud kind
        vm.prank(addrs[0]);
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.NotAFraudKind.selector, DisputeKind.Timeout)
        );
        m.proveFraud(id, DisputeKind.Timeout, p, t, sig);
        // outsiders cannot submit (they could not be slashed for a false proof)
        vm.prank(addrs[5]);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.NotAParticipant.selector, addrs[5]));
        m.proveFraud(id, DisputeKind.InvalidTransition, p, t, sig);
    }

    // ------------------------------------------------------------------ timestamps

    function test_timestampOutOfOrder() public {
        (Transaction memory t,) = _oMove(0, uint64(T0)); // parent is at T0 + 1
        DisputeRecord memory d = _fraud(DisputeKind.TimestampOutOfOrder, p1, t);
        vm.assertEq(uint256(d.kind), uint256(DisputeKind.TimestampOutOfOrder));
        vm.assertEq(d.target, addrs[1]);
    }

    function test_timestampOutOfOrder_false() public {
        (Transaction memory t,) = _oMove(0, uint64(T0 + 1)); // equal to the parent: in order
        _falseClaim(DisputeKind.TimestampOutOfOrder, p1, t);
    }

    function test_timestampOutOfOrder_beforeForkGenesis() public {
        // the first transaction of fork 0 stamped before the channel's genesis timestamp
        (Transaction memory t,) = _tttMove(id, 0, 1, addrs[0], uint64(T0 - 1), g, 0);
        bytes memory sig = _issuerSig(t);
        StateProof memory gp = _genesisProof(g);
        vm.recordLogs();
        vm.prank(addrs[1]);
        m.proveFraud(id, DisputeKind.TimestampOutOfOrder, gp, t, sig);
        vm.assertEq(_record().target, addrs[0]);
    }

    /// A future stamp is no fraud kind: the chain judges it when it first sees the transaction (R3, R7).
    function test_timestampInFuture_notAFraudKind_refusedAtPost() public {
        (Transaction memory t,) = _oMove(0, uint64(block.timestamp + AGREE + 1));
        bytes memory sig = _issuerSig(t);
        StateProof memory p = p1;
        vm.prank(addrs[0]);
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.NotAFraudKind.selector, DisputeKind.TimestampInFuture)
        );
        m.proveFraud(id, DisputeKind.TimestampInFuture, p, t, sig);
        vm.expectRevert(
            abi.encodeWithSelector(
                IStateChannelEvents.BadTimestamp.selector, t.timestamp, T0 + 1, block.timestamp + AGREE
            )
        );
        m.postCalldata(t, sig, p);
        // once chain time has caught up, the same transaction is on time
        vm.warp(block.timestamp + 1);
        m.postCalldata(t, sig, p);
        vm.assertEq(m.getChannel(id).headHeight, 2);
    }

    // ------------------------------------------------------------------ wrong parent / genesis

    function test_wrongGenesis() public {
        Transaction memory t =
            Transaction(id, 0, 1, addrs[0], uint64(T0 + 1), keccak256("old fork state"), keccak256("s"), "");
        bytes memory sig = _issuerSig(t);
        StateProof memory gp = _genesisProof(g);
        vm.recordLogs();
        vm.prank(addrs[1]);
        m.proveFraud(id, DisputeKind.WrongParent, gp, t, sig);
        DisputeRecord memory d = _record();
        vm.assertEq(uint256(d.kind), uint256(DisputeKind.WrongParent));
        vm.assertEq(d.target, addrs[0]);
        vm.assertEq(d.stateHash, keccak256(g));
    }

    function test_wrongParent_signedPrev() public {
        Transaction memory t = _oClaim(abi.encodeCall(TicTacToe.play, (0)), keccak256("s"), T0 + 3);
        t.prevStateHash = keccak256("another height-1 state");
        DisputeRecord memory d = _fraud(DisputeKind.WrongParent, p1, t);
        vm.assertEq(d.target, addrs[1]);
    }

    function test_wrongParent_false_and_postedPrevRefused() public {
        (Transaction memory t,) = _oMove(0, T0 + 3);
        _falseClaim(DisputeKind.WrongParent, p1, t);
        // a posted state is not final: refused as the parent of a WrongParent proof
        bytes32 id2;
        bytes memory g2;
        (id2, g2) = _openRr(2, 10);
        (Transaction memory ta, bytes memory sa) = _rrAdd(id2, 0, 1, addrs[0], uint64(block.timestamp), g2, 1);
        m.postCalldata(ta, _issuerSig(ta), _genesisProof(g2));
        Transaction memory tb =
            Transaction(id2, 0, 2, addrs[1], uint64(block.timestamp), bytes32(0), bytes32(0), "");
        bytes memory sb = _issuerSig(tb);
        StateProof memory pp = _postedProof(ta, sa);
        vm.prank(addrs[0]);
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.ProofKindNotAllowed.selector, ProofKind.Posted)
        );
        m.proveFraud(id2, DisputeKind.WrongParent, pp, tb, sb);
    }

    // ------------------------------------------------------------------ interplay

    /// A fraud proof replaces a running timeout dispute; a second fraud proof waits.
    function test_fraudReplacesTimeout_butNotFraud() public {
        vm.warp(T0 + 1 + P2P + AGREE + FALLBACK + 1);
        StateProof memory p = p1;
        vm.prank(addrs[0]);
        m.disputeTimeout(id, p);
        Transaction memory t = _oClaim(abi.encodeCall(TicTacToe.play, (4)), keccak256("bad"), T0 + 3);
        DisputeRecord memory d = _fraud(DisputeKind.InvalidTransition, p1, t);
        vm.assertEq(uint256(d.kind), uint256(DisputeKind.InvalidTransition));
        bytes memory sig = _issuerSig(t);
        vm.prank(addrs[0]);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.DisputeActive.selector, id));
        m.proveFraud(id, DisputeKind.InvalidTransition, p, t, sig);
        // a later N-signed state replaces the enforced state of a fraud dispute, the target stays
        (Transaction memory t2, bytes memory s2) = _oMove(0, T0 + 3);
        vm.recordLogs();
        m.challenge(id, d, _signedProof(t2, s2, 2));
        DisputeRecord memory c = _record();
        vm.assertEq(c.target, addrs[1]);
        vm.assertEq(c.height, 2);
        vm.assertFalse(c.challenged);
    }
}
