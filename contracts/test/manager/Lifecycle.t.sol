// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ChannelTestBase} from "../utils/ChannelTestBase.sol";
import {TestToken, FeeToken, ReentrantToken, ReentrantReceiver} from "../utils/Mocks.sol";
import {IStateChannelEvents} from "../../src/interfaces/IStateChannelEvents.sol";
import {IStateChannelManager} from "../../src/interfaces/IStateChannelManager.sol";
import {ChannelExtension} from "../../src/manager/ChannelExtension.sol";
import {StateChannelManager} from "../../src/StateChannelManager.sol";
import {VerdictExtension} from "../../src/manager/VerdictExtension.sol";
import {
    Transaction,
    ChannelSpec,
    StateProof,
    ProofKind,
    Exit,
    Channel,
    ChannelStatus
} from "../../src/ChannelTypes.sol";

/// @notice Open, deposit, cancel, reclaim, cooperative close, withdrawals, and every refusal on the way.
contract LifecycleTest is ChannelTestBase {
    // ------------------------------------------------------------------ open

    function test_open_recordsAndTakesOpenerDeposit() public {
        (ChannelSpec memory s, bytes memory g) = _tttSpec();
        bytes32 expected = m.computeChannelId(s, g);
        vm.expectEmit(address(manager));
        emit IStateChannelEvents.ChannelOpened(expected, addrs[0], s, g);
        vm.prank(addrs[0]);
        bytes32 id = m.open{value: STAKE}(s, g);
        vm.assertEq(id, expected);
        Channel memory c = m.getChannel(id);
        vm.assertEq(uint256(c.status), uint256(ChannelStatus.Funding));
        vm.assertEq(c.locked, STAKE);
        vm.assertEq(c.fundedCount, 1);
        vm.assertEq(c.timestamp, T0 + FUNDING);
        vm.assertEq(c.genesisStateHash, keccak256(g));
        vm.assertEq(address(manager).balance, STAKE);
        vm.assertEq(m.getParticipants(id)[1], addrs[1]);
    }

    function test_deposit_lastActivates() public {
        (ChannelSpec memory s, bytes memory g) = _tttSpec();
        vm.prank(addrs[0]);
        bytes32 id = m.open{value: STAKE}(s, g);
        vm.warp(T0 + 100);
        vm.expectEmit(address(manager));
        emit IStateChannelEvents.Deposited(id, addrs[1], STAKE);
        vm.expectEmit(address(manager));
        emit IStateChannelEvents.ChannelActivated(id, uint64(T0 + 100));
        vm.prank(addrs[1]);
        m.deposit{value: STAKE}(id, 1);
        Channel memory c = m.getChannel(id);
        vm.assertEq(uint256(c.status), uint256(ChannelStatus.Open));
        vm.assertEq(c.timestamp, T0 + 100);
        vm.assertEq(c.locked, 2 * STAKE);
    }

    /// Every participant has something to lose: a zero deposit is refused (R12, attack 8).
    function test_open_zeroDepositRefused() public {
        (ChannelSpec memory r,) = _rrSpec(2, 10);
        r.deposits[1] = 0;
        bytes memory rg = rr.initialState(r.participants, r.deposits, 10);
        _expectSpec(r, rg, "zero deposit");
    }

    /// A gas limit too small for N participants is refused (R12, attack 8).
    function test_open_machineGasFloorGrowsWithN() public {
        (ChannelSpec memory r, bytes memory rg) = _rrSpec(4, 10);
        r.machineGasLimit = uint64(m.MIN_MACHINE_GAS() + 4 * m.MACHINE_GAS_PER_PARTICIPANT() - 1);
        _expectSpec(r, rg, "machine gas");
        r.machineGasLimit += 1;
        vm.prank(addrs[0]);
        m.open{value: STAKE}(r, rg);
    }

    function test_open_refusals() public {
        (ChannelSpec memory s, bytes memory g) = _tttSpec();
        // not a participant
        vm.prank(addrs[5]);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.NotAParticipant.selector, addrs[5]));
        m.open{value: STAKE}(s, g);
        // wrong value
        vm.prank(addrs[0]);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.WrongAmount.selector, STAKE, 1));
        m.open{value: 1}(s, g);
        // genesis of other participants
        bytes memory swapped = ttt.initialState(addrs[1], addrs[0], STAKE);
        vm.prank(addrs[0]);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.InvalidGenesis.selector, "participants"));
        m.open{value: STAKE}(s, swapped);
        // genesis with other stakes
        bytes memory richer = ttt.initialState(addrs[0], addrs[1], 2 * STAKE);
        vm.prank(addrs[0]);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.InvalidGenesis.selector, "exits"));
        m.open{value: STAKE}(s, richer);
        // already open
        vm.prank(addrs[0]);
        m.open{value: STAKE}(s, g);
        bytes32 id = m.computeChannelId(s, g);
        vm.prank(addrs[0]);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.ChannelExists.selector, id));
        m.open{value: STAKE}(s, g);
    }

    function test_open_specRefusals() public {
        (ChannelSpec memory s, bytes memory g) = _tttSpec();
        _expectSpec(_mutate(s, 0), g, "participant count");
        _expectSpec(_mutate(s, 1), g, "deposits length");
        _expectSpec(_mutate(s, 2), g, "state machine has no code");
        _expectSpec(_mutate(s, 3), g, "zero time parameter");
        _expectSpec(_mutate(s, 4), g, "zero funding period");
        _expectSpec(_mutate(s, 5), g, "machine gas");
        _expectSpec(_mutate(s, 6), g, "duplicate participant");
        _expectSpec(_mutate(s, 7), g, "zero participant");
        _expectSpec(_mutate(s, 8), g, "deposit too large");
        _expectSpec(_mutate(s, 9), g, "token has no code");
        _expectSpec(_mutate(s, 10), g, "machine gas");
    }

    function _mutate(ChannelSpec memory base, uint256 what) internal pure returns (ChannelSpec memory s) {
        s = ChannelSpec(
            new address[](base.participants.length),
            new uint256[](base.deposits.length),
            base.stateMachine,
            base.token,
            base.p2pTime,
            base.agreementTime,
            base.chainFallbackTime,
            base.challengeTime,
            base.fundingPeriod,
            base.machineGasLimit,
            base.salt
        );
        for (uint256 i = 0; i < s.participants.length; i++) {
            s.participants[i] = base.participants[i];
            s.deposits[i] = base.deposits[i];
        }
        if (what == 0) s.participants = new address[](1);
        if (what == 1) s.deposits = new uint256[](3);
        if (what == 2) s.stateMachine = address(0x1234);
        if (what == 3) s.challengeTime = 0;
        if (what == 4) s.fundingPeriod = 0;
        if (what == 5) s.machineGasLimit = 0;
        if (what == 6) s.participants[1] = s.participants[0];
        if (what == 7) s.participants[1] = address(0);
        if (what == 8) s.deposits[1] = uint256(type(uint88).max) + 1;
        if (what == 9) s.token = address(0x4321);
        if (what == 10) s.machineGasLimit = 200_000; // below the floor for two participants
    }

    function _expectSpec(ChannelSpec memory s, bytes memory g, string memory reason) internal {
        vm.prank(addrs[0]);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.InvalidSpec.selector, reason));
        m.open{value: STAKE}(s, g);
    }

    function test_deposit_refusals() public {
        (ChannelSpec memory s, bytes memory g) = _tttSpec();
        vm.prank(addrs[0]);
        bytes32 id = m.open{value: STAKE}(s, g);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.WrongAmount.selector, STAKE, STAKE - 1));
        m.deposit{value: STAKE - 1}(id, 1);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.AlreadyFunded.selector, 0));
        m.deposit{value: STAKE}(id, 0);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.IndexOutOfRange.selector, 2));
        m.deposit{value: STAKE}(id, 2);
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.UnknownChannel.selector, bytes32(uint256(1)))
        );
        m.deposit{value: STAKE}(bytes32(uint256(1)), 0);
        // late
        vm.warp(T0 + FUNDING + 1);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.TooLate.selector, T0 + FUNDING));
        m.deposit{value: STAKE}(id, 1);
    }

    function test_deposit_afterActive_refused() public {
        (bytes32 id,) = _openTtt();
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.WrongStatus.selector, id, ChannelStatus.Open)
        );
        m.deposit{value: STAKE}(id, 1);
    }

    // ------------------------------------------------------------------ cancel and reclaim

    function test_cancel_andReclaim() public {
        (ChannelSpec memory s, bytes memory g) = _rrSpec(3, 10);
        vm.prank(addrs[0]);
        bytes32 id = m.open{value: STAKE}(s, g);
        vm.prank(addrs[1]);
        m.deposit{value: STAKE}(id, 1);
        // early
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.TooEarly.selector, T0 + FUNDING + 1));
        m.cancelFunding(id);
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.WrongStatus.selector, id, ChannelStatus.Funding)
        );
        m.reclaimDeposit(id, 0);
        vm.warp(T0 + FUNDING + 1);
        vm.expectEmit(address(manager));
        emit IStateChannelEvents.FundingCancelled(id);
        m.cancelFunding(id);
        uint256 b0 = addrs[0].balance;
        m.reclaimDeposit(id, 0);
        vm.assertEq(addrs[0].balance, b0 + STAKE);
        m.reclaimDeposit(id, 1);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.NotFunded.selector, 1));
        m.reclaimDeposit(id, 1);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.NotFunded.selector, 2));
        m.reclaimDeposit(id, 2);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.IndexOutOfRange.selector, 3));
        m.reclaimDeposit(id, 3);
        vm.assertEq(address(manager).balance, 0);
        vm.assertEq(_locked(id), 0);
    }

    // ------------------------------------------------------------------ close and withdraw

    function test_close_winnerTakesAll() public {
        (bytes32 id, bytes memory g) = _openTtt();
        (Transaction memory t, bytes memory s) = _tttXWins(id, g);
        StateProof memory p = _signedProof(t, s, 2);
        Exit[] memory exits = ttt.exitsOf(s);
        vm.expectEmit(address(manager));
        emit IStateChannelEvents.ChannelClosed(id, 0, 5, exits);
        m.close(id, p);
        vm.assertEq(uint256(_status(id)), uint256(ChannelStatus.Closed));
        uint256 b0 = addrs[0].balance;
        uint256 b1 = addrs[1].balance;
        m.withdraw(id, exits, 0);
        m.withdraw(id, exits, 1); // zero exit: nothing moves
        vm.assertEq(addrs[0].balance, b0 + 2 * STAKE);
        vm.assertEq(addrs[1].balance, b1);
        vm.assertTrue(m.isClaimed(id, 0));
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.AlreadyClaimed.selector, 0));
        m.withdraw(id, exits, 0);
        vm.assertEq(address(manager).balance, 0);
        vm.assertEq(_locked(id), 0);
    }

    function test_withdraw_refusals() public {
        (bytes32 id, bytes memory g) = _openTtt();
        (Transaction memory t, bytes memory s) = _tttXWins(id, g);
        Exit[] memory exits = ttt.exitsOf(s);
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.WrongStatus.selector, id, ChannelStatus.Open)
        );
        m.withdraw(id, exits, 0);
        m.close(id, _signedProof(t, s, 2));
        Exit[] memory forged = ttt.exitsOf(s);
        forged[1].amount = 1;
        vm.expectRevert();
        m.withdraw(id, forged, 1);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.IndexOutOfRange.selector, 2));
        m.withdraw(id, exits, 2);
        vm.expectRevert(IStateChannelEvents.NothingToWithdraw.selector);
        m.withdrawPending(address(0));
    }

    function test_close_refusals() public {
        (bytes32 id, bytes memory g) = _openTtt();
        (Transaction memory t, bytes memory s) = _tttXWins(id, g);
        bytes32 digest = m.transactionDigest(t);
        StateProof memory p = _signedProof(t, s, 2);

        // missing signature
        StateProof memory q = _signedProof(t, s, 2);
        q.signatures = new bytes[](1);
        q.signatures[0] = p.signatures[0];
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.SignatureCountMismatch.selector, 2, 1));
        m.close(id, q);

        // wrong signer (participant 2 is not in the channel)
        q.signatures = new bytes[](2);
        q.signatures[0] = p.signatures[0];
        q.signatures[1] = _sign(keys[2], digest);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.InvalidSignature.selector, 1));
        m.close(id, q);

        // signatures in the wrong order
        q.signatures[0] = p.signatures[1];
        q.signatures[1] = p.signatures[0];
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.InvalidSignature.selector, 0));
        m.close(id, q);

        // high-s (malleated) signature
        q.signatures[0] = p.signatures[0];
        q.signatures[1] = _highS(p.signatures[1]);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.InvalidSignature.selector, 1));
        m.close(id, q);

        // malformed length
        q.signatures[1] = hex"1234";
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.InvalidSignature.selector, 1));
        m.close(id, q);

        // not a final state
        (Transaction memory t1, bytes memory s1) = _tttMove(id, 0, 1, addrs[0], uint64(T0 + 1), g, 4);
        StateProof memory notFinal = _signedProof(t1, s1, 2);
        vm.expectRevert(IStateChannelEvents.NotFinal.selector);
        m.close(id, notFinal);

        // genesis / posted proofs are not N signatures
        StateProof memory gp = _genesisProof(g);
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.ProofKindNotAllowed.selector, ProofKind.Genesis)
        );
        m.close(id, gp);

        // state bytes that do not hash to the transaction's state
        q = _signedProof(t, s, 2);
        q.state = s1;
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.StateHashMismatch.selector, t.stateHash, keccak256(s1))
        );
        m.close(id, q);

        m.close(id, p);
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.WrongStatus.selector, id, ChannelStatus.Closed)
        );
        m.close(id, p);
    }

    bytes32 internal fid;
    Transaction internal ft;
    bytes internal fs;

    function _finished() internal {
        bytes memory g;
        (fid, g) = _openTtt();
        (Transaction memory t, bytes memory s) = _tttXWins(fid, g);
        ft = t;
        fs = s;
    }

    /// Signatures made for another channel never verify here.
    function test_replay_otherChannel() public {
        _finished();
        (ChannelSpec memory spec2, bytes memory g2) = _tttSpec();
        spec2.salt = keccak256("other");
        bytes32 id2 = _openFunded(spec2, g2);
        StateProof memory p = _signedProof(ft, fs, 2); // signed for channel `fid`
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.WrongChannel.selector, id2, fid));
        m.close(id2, p);
        // the same signatures on the transaction re-labelled for id2: digests differ
        p.transaction.channelId = id2;
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.InvalidSignature.selector, 0));
        m.close(id2, p);
        m.close(fid, _signedProof(ft, fs, 2));
    }

    /// A signature on fork 1 does not verify for fork 0 and vice versa.
    function test_replay_otherFork() public {
        _finished();
        Transaction memory tf = ft;
        tf.forkCnt = 1;
        StateProof memory pf = _signedProof(tf, fs, 2);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.WrongFork.selector, 0, 1));
        m.close(fid, pf);
        pf.transaction.forkCnt = 0;
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.InvalidSignature.selector, 0));
        m.close(fid, pf);
    }

    /// Signatures made under another chain id do not verify.
    function test_replay_otherChain() public {
        _finished();
        uint256 here = block.chainid;
        vm.chainId(1);
        StateProof memory pc = _signedProof(ft, fs, 2);
        vm.chainId(here);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.InvalidSignature.selector, 0));
        m.close(fid, pc);
    }

    /// Signatures made for another manager do not verify.
    function test_replay_otherManager() public {
        _finished();
        IStateChannelManager other = IStateChannelManager(
            address(new StateChannelManager(address(new ChannelExtension()), address(new VerdictExtension())))
        );
        StateProof memory po = _signedProof(ft, fs, 2);
        po.signatures[0] = _sign(keys[0], other.transactionDigest(ft));
        po.signatures[1] = _sign(keys[1], other.transactionDigest(ft));
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.InvalidSignature.selector, 0));
        m.close(fid, po);
    }

    // ------------------------------------------------------------------ ERC20 channels

    function test_erc20_fullCycle() public {
        TestToken tok = new TestToken();
        (ChannelSpec memory s, bytes memory g) = _tttSpec();
        s.token = address(tok);
        for (uint256 i = 0; i < 2; i++) {
            tok.mint(addrs[i], 10 ether);
            vm.prank(addrs[i]);
            tok.approve(address(manager), type(uint256).max);
        }
        vm.prank(addrs[0]);
        vm.expectRevert(IStateChannelEvents.UnexpectedValue.selector);
        m.open{value: 1}(s, g);
        vm.prank(addrs[0]);
        bytes32 id = m.open(s, g);
        vm.prank(addrs[1]);
        m.deposit(id, 1);
        vm.assertEq(tok.balanceOf(address(manager)), 2 * STAKE);
        (Transaction memory t, bytes memory st) = _tttXWins(id, g);
        m.close(id, _signedProof(t, st, 2));
        m.withdraw(id, ttt.exitsOf(st), 0);
        vm.assertEq(tok.balanceOf(addrs[0]), 11 ether);
        vm.assertEq(tok.balanceOf(address(manager)), 0);
    }

    function test_erc20_feeOnTransferRefused() public {
        FeeToken tok = new FeeToken();
        (ChannelSpec memory s, bytes memory g) = _tttSpec();
        s.token = address(tok);
        tok.mint(addrs[0], 10 ether);
        vm.prank(addrs[0]);
        tok.approve(address(manager), type(uint256).max);
        vm.prank(addrs[0]);
        vm.expectRevert(IStateChannelEvents.UnsupportedToken.selector);
        m.open(s, g);
    }

    // ------------------------------------------------------------------ reentrancy

    /// A malicious token re-enters `withdraw` while the manager pays it out: the guard stops it, and the
    /// exit is paid exactly once.
    function test_reentrancy_tokenWithdraw() public {
        ReentrantToken tok = new ReentrantToken();
        (ChannelSpec memory s, bytes memory g) = _tttSpec();
        s.token = address(tok);
        for (uint256 i = 0; i < 2; i++) {
            tok.mint(addrs[i], 10 ether);
            vm.prank(addrs[i]);
            tok.approve(address(manager), type(uint256).max);
        }
        vm.prank(addrs[0]);
        bytes32 id = m.open(s, g);
        vm.prank(addrs[1]);
        m.deposit(id, 1);
        (Transaction memory t, bytes memory st) = _tttXWins(id, g);
        m.close(id, _signedProof(t, st, 2));
        Exit[] memory exits = ttt.exitsOf(st);
        tok.arm(address(manager), abi.encodeCall(IStateChannelManager.withdraw, (id, exits, 0)));
        m.withdraw(id, exits, 0);
        vm.assertFalse(tok.reentered());
        vm.assertEq(bytes4(tok.lastError()), bytes4(keccak256("ReentrancyGuardReentrantCall()")));
        vm.assertEq(tok.balanceOf(addrs[0]), 11 ether);
        vm.assertEq(tok.balanceOf(address(manager)), 0);
    }

    /// A participant contract re-enters on its ETH payout (withdraw, withdrawPending, reclaim): refused.
    function test_reentrancy_receiver() public {
        ReentrantReceiver rc = new ReentrantReceiver();
        vm.deal(address(rc), 10 ether);
        address[] memory ps = new address[](2);
        ps[0] = address(rc);
        ps[1] = addrs[1];
        uint256[] memory deps = new uint256[](2);
        deps[0] = STAKE;
        deps[1] = STAKE;
        ChannelSpec memory s = _spec(address(rr), address(0), ps, deps);
        bytes memory g = rr.initialState(ps, deps, 10);
        bytes32 id = abi.decode(
            rc.call(address(manager), STAKE, abi.encodeCall(IStateChannelManager.open, (s, g))), (bytes32)
        );
        vm.warp(T0 + FUNDING + 1);
        m.cancelFunding(id);
        rc.arm(address(manager), abi.encodeCall(IStateChannelManager.reclaimDeposit, (id, 0)));
        m.reclaimDeposit(id, 0);
        vm.assertFalse(rc.reenterSucceeded());
        vm.assertEq(address(rc).balance, 10 ether);
        vm.assertEq(address(manager).balance, 0);
        // a refusing receiver: the payout reverts and stays owed
        // (nothing to reclaim any more here; covered in the invariant suite)
    }

    function test_receive_refusesPlainEther() public {
        (bool ok,) = address(manager).call{value: 1}("");
        vm.assertFalse(ok);
        (ok,) = address(manager).call{value: 1}(hex"12345678");
        vm.assertFalse(ok);
    }

    function test_extension_refusesDirectCalls() public {
        (bytes32 id,) = _openTtt();
        StateProof memory p;
        IStateChannelManager ext = IStateChannelManager(manager.extension());
        vm.expectRevert(ChannelExtension.OnlyThroughManager.selector);
        ext.requestExit(id, p);
    }
}

