// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ChannelTestBase} from "../utils/ChannelTestBase.sol";
import {IStateChannelEvents} from "../../src/interfaces/IStateChannelEvents.sol";
import {IStateChannelManager} from "../../src/interfaces/IStateChannelManager.sol";
import {Vm} from "../utils/Test.sol";
import {
    Transaction,
    StateProof,
    ProofKind,
    Exit,
    DisputeRecord,
    DisputeKind,
    JoinApproval,
    LeaveApproval,
    Channel,
    ChannelStatus
} from "../../src/ChannelTypes.sol";

/// @notice Calldata posts, timeout disputes, forced exits, challenges, finalization, join and leave.
contract DisputesTest is ChannelTestBase {
    bytes32 internal id;
    bytes internal g;
    Transaction internal t1;
    bytes internal s1;

    uint64 internal constant DEADLINE_GAP = P2P + AGREE + FALLBACK;

    /// TicTacToe channel; X played cell 4 at T0+1, signed by both. O is to move.
    function _tttAfterOneMove() internal {
        (id, g) = _openTtt();
        (Transaction memory t, bytes memory s) = _tttMove(id, 0, 1, addrs[0], uint64(T0 + 1), g, 4);
        t1 = t;
        s1 = s;
    }

    function _timeoutOnO() internal returns (DisputeRecord memory d) {
        _tttAfterOneMove();
        StateProof memory p = _signedProof(t1, s1, 2);
        vm.warp(T0 + 1 + DEADLINE_GAP + 1);
        vm.recordLogs();
        vm.prank(addrs[0]);
        m.disputeTimeout(id, p);
        d = _record();
    }

    // ------------------------------------------------------------------ calldata

    /// O's move posted on top of X's N-signed move (checkpointed in the same call): the chain runs it and
    /// the posted state becomes the head; O's window for the next move starts at the post.
    function test_postCalldata_executesAndMovesHead() public {
        _tttAfterOneMove();
        (Transaction memory t2, bytes memory s2) = _tttMove(id, 0, 2, addrs[1], uint64(T0 + 20), s1, 0);
        bytes memory sig = _issuerSig(t2);
        vm.warp(T0 + 30);
        vm.expectEmit(address(manager));
        emit IStateChannelEvents.CalldataPosted(id, 0, 2, t2, sig);
        m.postCalldata(t2, sig, _signedProof(t1, s1, 2));
        vm.assertEq(m.postedAt(m.transactionDigest(t2)), T0 + 30);
        Channel memory c = m.getChannel(id);
        vm.assertEq(c.headHeight, 2);
        vm.assertEq(c.headStateHash, keccak256(s2));
        vm.assertEq(c.headTimestamp, T0 + 20);
        vm.assertEq(c.headSince, T0 + 30);
        vm.assertGt(c.headHeight, c.anchorHeight); // the head came from a post
        // the same post again no longer links to the head
        StateProof memory head = _postedProof(t2, s2);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.WrongHeight.selector, 3, 2));
        m.postCalldata(t2, sig, head);
        // the next move links to the posted head
        (Transaction memory t3,) = _tttMove(id, 0, 3, addrs[0], uint64(T0 + 31), s2, 1);
        m.postCalldata(t3, _issuerSig(t3), head);
        vm.assertEq(m.getChannel(id).headHeight, 3);
    }

    function test_postCalldata_refusals() public {
        _tttAfterOneMove();
        vm.warp(T0 + 30);
        StateProof memory parent = _signedProof(t1, s1, 2);
        (Transaction memory t2,) = _tttMove(id, 0, 2, addrs[1], uint64(T0 + 20), s1, 0);
        bytes memory sg = _sign(keys[0], m.transactionDigest(t2));
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.SignerMismatch.selector, addrs[1], addrs[0])
        );
        m.postCalldata(t2, sg, parent);
        sg = _highS(_issuerSig(t2));
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.InvalidSignature.selector, 0));
        m.postCalldata(t2, sg, parent);
        // not the writer whose turn it is (an outsider): the machine refuses it
        Transaction memory x = _copy(t2);
        x.participant = addrs[5];
        sg = _sign(keys[5], m.transactionDigest(x));
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.InvalidTransition.selector, t2.stateHash, 0)
        );
        m.postCalldata(x, sg, parent);
        // wrong fork, genesis height
        x = _copy(t2);
        x.forkCnt = 1;
        sg = _issuerSig(x);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.WrongFork.selector, 0, 1));
        m.postCalldata(x, sg, parent);
        x = _copy(t2);
        x.height = 0;
        sg = _issuerSig(x);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.WrongHeight.selector, 1, 0));
        m.postCalldata(x, sg, parent);
        // unknown channel
        x = _copy(t2);
        x.channelId = bytes32(uint256(5));
        sg = _issuerSig(x);
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.UnknownChannel.selector, bytes32(uint256(5)))
        );
        m.postCalldata(x, sg, parent);
    }

    function test_postCalldata_refusals_state() public {
        _tttAfterOneMove();
        vm.warp(T0 + 30);
        StateProof memory parent = _signedProof(t1, s1, 2);
        (Transaction memory t2, bytes memory s2) = _tttMove(id, 0, 2, addrs[1], uint64(T0 + 20), s1, 0);
        // a parent that is not the head (nor N-signed)
        bytes memory sg = _issuerSig(t2);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.StaleProof.selector, 0, keccak256(s1)));
        m.postCalldata(t2, sg, _postedProof(t1, s1));
        // a claimed state the move does not produce
        Transaction memory tl = _copy(t2);
        tl.stateHash = keccak256("pays O everything");
        sg = _issuerSig(tl);
        vm.expectRevert(
            abi.encodeWithSelector(
                IStateChannelEvents.InvalidTransition.selector, tl.stateHash, keccak256(s2)
            )
        );
        m.postCalldata(tl, sg, parent);
        // stamped before its parent, or beyond chain time plus agreementTime
        (Transaction memory tb,) = _tttMove(id, 0, 2, addrs[1], uint64(T0), s1, 0);
        sg = _issuerSig(tb);
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.BadTimestamp.selector, T0, T0 + 1, T0 + 30 + AGREE)
        );
        m.postCalldata(tb, sg, parent);
        (Transaction memory tz,) = _tttMove(id, 0, 2, addrs[1], uint64(T0 + 30 + AGREE + 1), s1, 0);
        sg = _issuerSig(tz);
        vm.expectRevert(
            abi.encodeWithSelector(
                IStateChannelEvents.BadTimestamp.selector, T0 + 30 + AGREE + 1, T0 + 1, T0 + 30 + AGREE
            )
        );
        m.postCalldata(tz, sg, parent);
        // the head did not move
        vm.assertEq(m.getChannel(id).headHeight, 0);
    }

    /// The log data of `CalldataPosted` decodes to exactly the checked transaction and signature.
    function test_postCalldata_logDecodes() public {
        _tttAfterOneMove();
        vm.warp(T0 + 30);
        (Transaction memory t2,) = _tttMove(id, 0, 2, addrs[1], uint64(T0 + 20), s1, 0);
        bytes memory sig = _issuerSig(t2);
        vm.recordLogs();
        m.postCalldata(t2, sig, _signedProof(t1, s1, 2));
        Vm.Log[] memory logs = vm.getRecordedLogs();
        Vm.Log memory posted;
        for (uint256 i = 0; i < logs.length; i++) {
            if (logs[i].topics[0] == IStateChannelEvents.CalldataPosted.selector) posted = logs[i];
        }
        vm.assertEq(posted.topics[1], id);
        vm.assertEq(uint256(posted.topics[3]), 2);
        (Transaction memory d, bytes memory dsig) = abi.decode(posted.data, (Transaction, bytes));
        vm.assertEq(keccak256(abi.encode(d)), keccak256(abi.encode(t2)));
        vm.assertEq(dsig, sig);
        vm.assertEq(keccak256(posted.data), keccak256(abi.encode(t2, sig)));
    }

    // ------------------------------------------------------------------ timeout

    function test_timeout_removesAccused_afterChallengePeriod() public {
        DisputeRecord memory d = _timeoutOnO();
        vm.assertEq(uint256(d.kind), uint256(DisputeKind.Timeout));
        vm.assertEq(d.target, addrs[1]);
        vm.assertEq(d.submitter, addrs[0]);
        vm.assertEq(d.height, 1);
        vm.assertEq(d.writerDeadline, T0 + 1 + DEADLINE_GAP);
        vm.assertEq(d.deadline, block.timestamp + CHALLENGE);
        vm.assertEq(uint256(_status(id)), uint256(ChannelStatus.Disputed));

        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.TooEarly.selector, uint256(d.deadline) + 1)
        );
        m.finalizeDispute(id, d, s1);
        vm.warp(d.deadline + 1);
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.StateHashMismatch.selector, d.stateHash, keccak256(g))
        );
        m.finalizeDispute(id, d, g);
        DisputeRecord memory forged = _copy(d);
        forged.target = addrs[0];
        vm.expectRevert(IStateChannelEvents.DisputeMismatch.selector);
        m.finalizeDispute(id, forged, s1);

        m.finalizeDispute(id, d, s1);
        // O forfeits: one player left, the game is over, X takes both stakes.
        vm.assertEq(uint256(_status(id)), uint256(ChannelStatus.Closed));
        Exit[] memory exits = new Exit[](1);
        exits[0] = Exit(addrs[0], 2 * STAKE);
        uint256 b = addrs[0].balance;
        m.withdraw(id, exits, 0);
        vm.assertEq(addrs[0].balance, b + 2 * STAKE);
        vm.assertEq(address(manager).balance, 0);
    }

    function test_timeout_refusals() public {
        _tttAfterOneMove();
        StateProof memory p = _signedProof(t1, s1, 2);
        // too early
        vm.prank(addrs[0]);
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.TooEarly.selector, T0 + 1 + DEADLINE_GAP + 1)
        );
        m.disputeTimeout(id, p);
        vm.warp(T0 + 1 + DEADLINE_GAP + 1);
        // the accused cannot accuse itself
        vm.prank(addrs[1]);
        vm.expectRevert(IStateChannelEvents.CannotAccuseSelf.selector);
        m.disputeTimeout(id, p);
        // outsiders cannot dispute
        vm.prank(addrs[5]);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.NotAParticipant.selector, addrs[5]));
        m.disputeTimeout(id, p);
        // a proof with one signature missing
        StateProof memory q = _signedProof(t1, s1, 2);
        q.signatures = new bytes[](1);
        q.signatures[0] = p.signatures[0];
        vm.prank(addrs[0]);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.SignatureCountMismatch.selector, 2, 1));
        m.disputeTimeout(id, q);
        // a "posted" proof of a state that is not the head
        StateProof memory np = _postedProof(t1, s1);
        vm.prank(addrs[0]);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.StaleProof.selector, 0, keccak256(s1)));
        m.disputeTimeout(id, np);
        // second dispute while one runs
        vm.prank(addrs[0]);
        m.disputeTimeout(id, p);
        vm.prank(addrs[0]);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.DisputeActive.selector, id));
        m.disputeTimeout(id, p);
    }

    function test_timeout_noWriterOnFinishedGame() public {
        (id, g) = _openTtt();
        (Transaction memory t, bytes memory s) = _tttXWins(id, g);
        StateProof memory p = _signedProof(t, s, 2);
        vm.warp(T0 + 1000);
        vm.prank(addrs[0]);
        vm.expectRevert(IStateChannelEvents.NoWriterExpected.selector);
        m.disputeTimeout(id, p);
    }

    function test_timeout_fromGenesis() public {
        (id, g) = _openTtt();
        vm.warp(T0 + DEADLINE_GAP + 1);
        vm.prank(addrs[1]);
        vm.recordLogs();
        m.disputeTimeout(id, _genesisProof(g));
        DisputeRecord memory d = _record();
        vm.assertEq(d.target, addrs[0]);
        vm.assertEq(d.height, 0);
    }

    // ------------------------------------------------------------------ challenges

    /// O did move (both signed it): the accuser is slashed instead.
    function test_challenge_laterSignedState_slashesAccuser() public {
        DisputeRecord memory d = _timeoutOnO();
        (Transaction memory t2, bytes memory s2) = _tttMove(id, 0, 2, addrs[1], uint64(T0 + 20), s1, 0);
        StateProof memory later = _signedProof(t2, s2, 2);
        vm.warp(block.timestamp + 100);
        vm.recordLogs();
        m.challenge(id, d, later);
        DisputeRecord memory c = _record();
        vm.assertTrue(c.challenged);
        vm.assertTrue(c.slash);
        vm.assertEq(c.target, addrs[0]);
        vm.assertEq(c.height, 2);
        vm.assertEq(c.stateHash, keccak256(s2));
        vm.assertEq(c.deadline, block.timestamp + CHALLENGE);
        // the old record is gone
        vm.expectRevert(IStateChannelEvents.DisputeMismatch.selector);
        m.challenge(id, d, later);
        // the same state again is not a challenge
        vm.expectRevert(IStateChannelEvents.NotAChallenge.selector);
        m.challenge(id, c, later);
        vm.warp(c.deadline + 1);
        m.finalizeDispute(id, c, s2);
        // X slashed: forfeits to O.
        Exit[] memory exits = new Exit[](1);
        exits[0] = Exit(addrs[1], 2 * STAKE);
        m.withdraw(id, exits, 0);
        vm.assertEq(address(manager).balance, 0);
    }

    /// O posted its move as calldata within its deadline: the head moved, so a timeout from the older state
    /// is stale, and X (the next writer) has a whole window from the post.
    function test_timelyPost_blocksTimeout() public {
        _tttAfterOneMove();
        StateProof memory p = _signedProof(t1, s1, 2);
        (Transaction memory t2, bytes memory s2) = _tttMove(id, 0, 2, addrs[1], uint64(T0 + 20), s1, 0);
        vm.warp(T0 + 1 + DEADLINE_GAP); // exactly at the deadline
        m.postCalldata(t2, _issuerSig(t2), p);
        vm.warp(T0 + 1 + DEADLINE_GAP + 1);
        vm.prank(addrs[0]);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.StaleProof.selector, 2, keccak256(s1)));
        m.disputeTimeout(id, p);
        // O cannot accuse X before X's window (from the post) is over
        StateProof memory head = _postedProof(t2, s2);
        vm.prank(addrs[1]);
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.TooEarly.selector, T0 + 1 + 2 * DEADLINE_GAP + 1)
        );
        m.disputeTimeout(id, head);
        vm.warp(T0 + 1 + 2 * DEADLINE_GAP + 1);
        vm.recordLogs();
        vm.prank(addrs[1]);
        m.disputeTimeout(id, head);
        DisputeRecord memory d = _record();
        vm.assertEq(d.target, addrs[0]);
        vm.assertEq(d.height, 2);
    }

    /// A post after the writer's deadline still moves the game on while no timeout runs; once a timeout
    /// runs, posts are refused, and only an N-signed state above the head answers it.
    function test_latePost_and_postsDuringTimeout() public {
        _tttAfterOneMove();
        StateProof memory p = _signedProof(t1, s1, 2);
        (Transaction memory t2, bytes memory s2) = _tttMove(id, 0, 2, addrs[1], uint64(T0 + 20), s1, 0);
        vm.warp(T0 + 1 + DEADLINE_GAP + 5); // late
        m.postCalldata(t2, _issuerSig(t2), p);
        vm.assertEq(m.getChannel(id).headSince, T0 + 1 + DEADLINE_GAP + 5);
        // X then stays silent: O accuses it after X's window
        vm.warp(T0 + 1 + 2 * DEADLINE_GAP + 6);
        vm.recordLogs();
        vm.prank(addrs[1]);
        m.disputeTimeout(id, _postedProof(t2, s2));
        DisputeRecord memory d = _record();
        (Transaction memory t3, bytes memory s3) = _tttMove(id, 0, 3, addrs[0], uint64(T0 + 30), s2, 1);
        StateProof memory head = _postedProof(t2, s2);
        bytes memory sig3 = _issuerSig(t3);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.DisputeActive.selector, id));
        m.postCalldata(t3, sig3, head);
        // a posted proof or the genesis is never a challenge; nor is anything after the deadline
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.ProofKindNotAllowed.selector, ProofKind.Posted)
        );
        m.challenge(id, d, head);
        StateProof memory gp = _genesisProof(g);
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.ProofKindNotAllowed.selector, ProofKind.Genesis)
        );
        m.challenge(id, d, gp);
        vm.warp(d.deadline + 1);
        StateProof memory later = _signedProof(t3, s3, 2);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.TooLate.selector, d.deadline));
        m.challenge(id, d, later);
    }

    // ------------------------------------------------------------------ N-party forks

    /// Round robin with 3: participant 1 times out, is removed with its deposit, and the two others
    /// continue on fork 1 from the enforced state.
    function test_timeout_nParty_newFork() public {
        (id, g) = _openRr(3, 100);
        (Transaction memory ta, bytes memory sa) = _rrAdd(id, 0, 1, addrs[0], uint64(T0 + 1), g, 3);
        StateProof memory p = _signedProof(ta, sa, 3);
        vm.warp(T0 + 1 + DEADLINE_GAP + 1);
        vm.recordLogs();
        vm.prank(addrs[2]);
        m.disputeTimeout(id, p);
        DisputeRecord memory d = _record();
        vm.assertEq(d.target, addrs[1]);
        vm.warp(d.deadline + 1);
        rrScratch.setState(sa);
        rrScratch.removeParticipant(addrs[1]);
        bytes memory genesis1 = rrScratch.getState();
        address[] memory ps = new address[](2);
        ps[0] = addrs[0];
        ps[1] = addrs[2];
        vm.expectEmit(address(manager));
        emit IStateChannelEvents.SetState(id, 1, 1, uint64(block.timestamp), genesis1, ps);
        m.finalizeDispute(id, d, sa);
        Channel memory c = m.getChannel(id);
        vm.assertEq(c.forkCnt, 1);
        vm.assertEq(c.genesisHeight, 1);
        vm.assertEq(c.genesisStateHash, keccak256(genesis1));
        vm.assertEq(uint256(c.status), uint256(ChannelStatus.Open));
        vm.assertEq(c.locked, 2 * STAKE);
        vm.assertEq(m.pendingBalance(addrs[1], address(0)), STAKE);
        uint256 b = addrs[1].balance;
        vm.prank(addrs[1]);
        m.withdrawPending(address(0));
        vm.assertEq(addrs[1].balance, b + STAKE);

        _fork1GoesOn(sa, genesis1);
    }

    /// Fork 1 goes on: the next writer is participant 2 (index 1 of the new list).
    function _fork1GoesOn(bytes memory sa, bytes memory genesis1) internal {
        (Transaction memory tb,) = _rrAdd(id, 1, 2, addrs[2], uint64(block.timestamp), genesis1, 2);
        StateProof memory head = _genesisProof(genesis1);
        // the removed participant cannot write: the machine refuses it
        Transaction memory tr = _copy(tb);
        tr.participant = addrs[1];
        bytes memory sr = _issuerSig(tr);
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.InvalidTransition.selector, tr.stateHash, 0)
        );
        m.postCalldata(tr, sr, head);
        m.postCalldata(tb, _issuerSig(tb), head);
        // fork-0 signatures are dead
        (Transaction memory old,) = _rrAdd(id, 0, 2, addrs[1], uint64(T0 + 5), sa, 1);
        bytes memory so = _issuerSig(old);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.WrongFork.selector, 1, 0));
        m.postCalldata(old, so, head);
    }

    // ------------------------------------------------------------------ forced exit

    function test_requestExit_removesRequester() public {
        (id, g) = _openRr(3, 100);
        (Transaction memory ta, bytes memory sa) = _rrAdd(id, 0, 1, addrs[0], uint64(T0 + 1), g, 3);
        StateProof memory p = _signedProof(ta, sa, 3);
        vm.recordLogs();
        vm.prank(addrs[2]);
        m.requestExit(id, p);
        DisputeRecord memory d = _record();
        vm.assertEq(uint256(d.kind), uint256(DisputeKind.Exit));
        vm.assertEq(d.target, addrs[2]);
        vm.warp(d.deadline + 1);
        m.finalizeDispute(id, d, sa);
        vm.assertEq(m.pendingBalance(addrs[2], address(0)), STAKE);
        vm.assertEq(m.getParticipants(id).length, 2);
        vm.assertEq(m.getChannel(id).forkCnt, 1);
    }

    function test_requestExit_staleState_slashed() public {
        (id, g) = _openRr(3, 100);
        (Transaction memory ta, bytes memory sa) = _rrAdd(id, 0, 1, addrs[0], uint64(T0 + 1), g, 3);
        vm.recordLogs();
        vm.prank(addrs[2]);
        m.requestExit(id, _genesisProof(g));
        DisputeRecord memory d = _record();
        vm.recordLogs();
        m.challenge(id, d, _signedProof(ta, sa, 3));
        DisputeRecord memory c = _record();
        vm.assertEq(c.target, addrs[2]);
        vm.assertTrue(c.slash);
        vm.warp(c.deadline + 1);
        m.finalizeDispute(id, c, sa);
        // slashed: leaves with nothing, its deposit shared by the two others
        vm.assertEq(m.pendingBalance(addrs[2], address(0)), 0);
        vm.assertEq(m.getChannel(id).locked, 3 * STAKE);
        vm.assertEq(m.getParticipants(id).length, 2);
    }

    function test_requestExit_finishedGame_settles() public {
        (id, g) = _openTtt();
        (Transaction memory t, bytes memory s) = _tttXWins(id, g);
        StateProof memory p = _signedProof(t, s, 2);
        vm.recordLogs();
        vm.prank(addrs[1]);
        m.requestExit(id, p);
        DisputeRecord memory d = _record();
        vm.warp(d.deadline + 1);
        m.finalizeDispute(id, d, s);
        vm.assertEq(uint256(_status(id)), uint256(ChannelStatus.Closed));
        m.withdraw(id, ttt.exitsOf(s), 0);
        vm.assertEq(address(manager).balance, 0);
    }

    /// A cooperative close ends a running dispute.
    function test_close_duringDispute() public {
        DisputeRecord memory d = _timeoutOnO();
        d;
        bytes memory s = s1;
        uint8[4] memory cells = [0, 1, 2, 7];
        Transaction memory t;
        for (uint256 i = 0; i < 4; i++) {
            (t, s) = _tttMove(id, 0, uint64(i + 2), addrs[(i + 1) % 2], uint64(T0 + i + 2), s, cells[i]);
        }
        // O: 0, X: 1, O: 2, X: 7 -> X wins the middle column
        vm.assertTrue(ttt.isGameOverOf(s));
        m.close(id, _signedProof(t, s, 2));
        vm.assertEq(uint256(_status(id)), uint256(ChannelStatus.Closed));
    }

    /// Once a challenge defeats a timeout dispute, the accuser's slash must be carried out: neither a
    /// cooperative close nor a fraud proof can replace it.
    function test_defeatedTimeout_cannotBeClosedOver() public {
        DisputeRecord memory d = _timeoutOnO();
        (Transaction memory t, bytes memory s) = _tttMove(id, 0, 2, addrs[1], uint64(T0 + 2), s1, 0);
        vm.recordLogs();
        m.challenge(id, d, _signedProof(t, s, 2));
        DisputeRecord memory c = _record();
        vm.assertTrue(c.slash);
        vm.assertEq(c.target, addrs[0]);
        vm.assertTrue(m.getChannel(id).fraudDispute);
        uint8[3] memory cells = [1, 2, 7];
        for (uint256 i = 0; i < 3; i++) {
            (t, s) = _tttMove(id, 0, uint64(i + 3), addrs[i % 2], uint64(T0 + i + 3), s, cells[i]);
        }
        vm.assertTrue(ttt.isGameOverOf(s));
        StateProof memory fin = _signedProof(t, s, 2);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.DisputeActive.selector, id));
        m.close(id, fin);
        // the later state still replaces the enforced one; the target stays the accuser
        vm.recordLogs();
        m.challenge(id, c, fin);
        DisputeRecord memory c2 = _record();
        vm.assertEq(c2.target, addrs[0]);
        vm.assertTrue(c2.slash);
        vm.warp(c2.deadline + 1);
        m.finalizeDispute(id, c2, s);
        vm.assertEq(uint256(_status(id)), uint256(ChannelStatus.Closed));
        // X slashed: O takes both stakes.
        Exit[] memory exits = new Exit[](1);
        exits[0] = Exit(addrs[1], 2 * STAKE);
        m.withdraw(id, exits, 0);
        vm.assertEq(address(manager).balance, 0);
    }

    // ------------------------------------------------------------------ join and leave

    function _joinApproval(bytes32 cid, bytes memory state, address who, uint256 amount)
        internal
        view
        returns (JoinApproval memory a)
    {
        a = JoinApproval(cid, 0, 0, keccak256(state), who, amount, "", uint64(block.timestamp + 600));
    }

    function test_join_addsParticipant() public {
        (id, g) = _openRr(3, 100);
        JoinApproval memory a = _joinApproval(id, g, addrs[3], 2 * STAKE);
        bytes[] memory sigs = _signAll(m.joinApprovalDigest(a), 3);
        vm.prank(addrs[3]);
        m.joinChannel{value: 2 * STAKE}(a, g, sigs);
        vm.assertEq(m.getParticipants(id).length, 4);
        vm.assertEq(m.getParticipants(id)[3], addrs[3]);
        vm.assertEq(m.getChannel(id).locked, 5 * STAKE);
        vm.assertEq(m.getChannel(id).forkCnt, 1);
        vm.assertEq(address(manager).balance, 5 * STAKE);
        // the N-of-N commitment follows the new participant list
        vm.assertEq(m.getChannel(id).participantsHash, keccak256(abi.encodePacked(m.getParticipants(id))));
    }

    /// After a fork the N-of-N check uses the new participant list (`participantsHash`).
    function test_join_newSetSigns() public {
        (id, g) = _openRr(3, 100);
        JoinApproval memory a = _joinApproval(id, g, addrs[3], STAKE);
        bytes[] memory sigs = _signAll(m.joinApprovalDigest(a), 3);
        vm.recordLogs();
        vm.prank(addrs[3]);
        m.joinChannel{value: STAKE}(a, g, sigs);
        Vm.Log[] memory logs = vm.getRecordedLogs();
        bytes memory s;
        for (uint256 i = 0; i < logs.length; i++) {
            if (logs[i].topics[0] == IStateChannelEvents.SetState.selector) {
                (,,, s,) = abi.decode(logs[i].data, (uint64, uint64, uint64, bytes, address[]));
            }
        }
        JoinApproval memory b = JoinApproval(id, 1, 0, keccak256(s), addrs[4], STAKE, "", a.deadline);
        bytes32 digest = m.joinApprovalDigest(b);
        // the old set (3 signatures)
        vm.prank(addrs[4]);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.SignatureCountMismatch.selector, 4, 3));
        m.joinChannel{value: STAKE}(b, s, _signAll(digest, 3));
        // four signatures, the last by an outsider
        uint256[] memory idx = new uint256[](4);
        idx[0] = 0;
        idx[1] = 1;
        idx[2] = 2;
        idx[3] = 5;
        bytes[] memory wrong = _signWith(digest, idx);
        vm.prank(addrs[4]);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.InvalidSignature.selector, 3));
        m.joinChannel{value: STAKE}(b, s, wrong);
        // the new set
        vm.prank(addrs[4]);
        m.joinChannel{value: STAKE}(b, s, _signAll(digest, 4));
        vm.assertEq(m.getParticipants(id).length, 5);
        vm.assertEq(m.getChannel(id).participantsHash, keccak256(abi.encodePacked(m.getParticipants(id))));
    }

    function test_join_refusals() public {
        (id, g) = _openRr(3, 100);
        JoinApproval memory a = _joinApproval(id, g, addrs[3], STAKE);
        bytes[] memory sigs = _signAll(m.joinApprovalDigest(a), 3);
        // someone else than the joiner
        vm.prank(addrs[4]);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.NotJoiner.selector, addrs[3], addrs[4]));
        m.joinChannel{value: STAKE}(a, g, sigs);
        // wrong value
        vm.prank(addrs[3]);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.WrongAmount.selector, STAKE, 1));
        m.joinChannel{value: 1}(a, g, sigs);
        // one signature missing
        bytes[] memory two = new bytes[](2);
        two[0] = sigs[0];
        two[1] = sigs[1];
        vm.prank(addrs[3]);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.SignatureCountMismatch.selector, 3, 2));
        m.joinChannel{value: STAKE}(a, g, two);
        // a transaction signature is not a join approval
        bytes[] memory wrong = _signAll(keccak256("not a join"), 3);
        vm.prank(addrs[3]);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.InvalidSignature.selector, 0));
        m.joinChannel{value: STAKE}(a, g, wrong);
        // already a participant
        JoinApproval memory b = _joinApproval(id, g, addrs[1], STAKE);
        bytes[] memory sb = _signAll(m.joinApprovalDigest(b), 3);
        vm.prank(addrs[1]);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.AlreadyParticipant.selector, addrs[1]));
        m.joinChannel{value: STAKE}(b, g, sb);
        // late
        vm.warp(block.timestamp + 601);
        vm.prank(addrs[3]);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.TooLate.selector, a.deadline));
        m.joinChannel{value: STAKE}(a, g, sigs);
    }

    function test_leave_byAgreement() public {
        (id, g) = _openRr(3, 100);
        LeaveApproval memory a =
            LeaveApproval(id, 0, 0, keccak256(g), addrs[1], uint64(block.timestamp + 600));
        bytes[] memory sigs = _signAll(m.leaveApprovalDigest(a), 3);
        vm.recordLogs();
        m.leaveChannel(a, g, sigs);
        DisputeRecord memory d = _record();
        vm.assertEq(uint256(d.kind), uint256(DisputeKind.Leave));
        vm.assertEq(d.target, addrs[1]);
        // nothing happens before the challenge period is over
        vm.assertEq(m.pendingBalance(addrs[1], address(0)), 0);
        vm.warp(d.deadline + 1);
        m.finalizeDispute(id, d, g);
        vm.assertEq(m.pendingBalance(addrs[1], address(0)), STAKE);
        vm.assertEq(m.getParticipants(id).length, 2);
        vm.assertEq(m.getChannel(id).locked, 2 * STAKE);
        // the approval cannot be used twice (fork moved on)
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.WrongFork.selector, 1, 0));
        m.leaveChannel(a, g, sigs);
    }

    /// A leave approved at a state the channel has moved past is cancelled by the later N-signed state.
    function test_leave_staleApproval_cancelled() public {
        (id, g) = _openRr(3, 100);
        LeaveApproval memory a =
            LeaveApproval(id, 0, 0, keccak256(g), addrs[1], uint64(block.timestamp + 600));
        bytes[] memory sigs = _signAll(m.leaveApprovalDigest(a), 3);
        vm.recordLogs();
        m.leaveChannel(a, g, sigs);
        DisputeRecord memory d = _record();
        (Transaction memory ta, bytes memory sa) = _rrAdd(id, 0, 1, addrs[0], uint64(T0 + 1), g, 3);
        vm.recordLogs();
        m.challenge(id, d, _signedProof(ta, sa, 3));
        DisputeRecord memory c = _record();
        vm.assertTrue(c.challenged);
        vm.assertEq(c.target, address(0));
        vm.assertFalse(c.slash);
        vm.warp(c.deadline + 1);
        m.finalizeDispute(id, c, sa);
        // nobody left: a new fork from the later state with all three
        vm.assertEq(m.getParticipants(id).length, 3);
        vm.assertEq(m.getChannel(id).forkCnt, 1);
        vm.assertEq(m.getChannel(id).genesisStateHash, keccak256(sa));
        vm.assertEq(m.pendingBalance(addrs[1], address(0)), 0);
    }

    function test_leave_lastButOne_settles() public {
        (id, g) = _openRr(2, 100);
        LeaveApproval memory a =
            LeaveApproval(id, 0, 0, keccak256(g), addrs[0], uint64(block.timestamp + 600));
        bytes[] memory sigs = _signAll(m.leaveApprovalDigest(a), 2);
        // the leaver's signature is required too
        bytes[] memory bad = new bytes[](2);
        bad[0] = sigs[1];
        bad[1] = sigs[1];
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.InvalidSignature.selector, 0));
        m.leaveChannel(a, g, bad);
        vm.recordLogs();
        m.leaveChannel(a, g, sigs);
        DisputeRecord memory d = _record();
        vm.warp(d.deadline + 1);
        m.finalizeDispute(id, d, g);
        vm.assertEq(uint256(_status(id)), uint256(ChannelStatus.Closed));
        Exit[] memory exits = new Exit[](1);
        exits[0] = Exit(addrs[1], STAKE);
        m.withdraw(id, exits, 0);
        vm.prank(addrs[0]);
        m.withdrawPending(address(0));
        vm.assertEq(address(manager).balance, 0);
    }
}
