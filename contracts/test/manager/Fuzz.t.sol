// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ChannelTestBase} from "../utils/ChannelTestBase.sol";
import {IStateChannelManager} from "../../src/interfaces/IStateChannelManager.sol";
import {IStateChannelEvents} from "../../src/interfaces/IStateChannelEvents.sol";
import {
    Transaction,
    StateProof,
    ProofKind,
    DisputeRecord,
    DisputeKind,
    ChannelStatus
} from "../../src/ChannelTypes.sol";

/// @notice Arbitrary bytes on every external entry point, from arbitrary senders with arbitrary value,
/// against a manager holding a live, a disputed and a funding channel: it never ends up owing more (or
/// less) than it holds, and the channels' records do not move.
contract FuzzTest is ChannelTestBase {
    bytes32 internal live;
    bytes32 internal disputed;
    bytes32 internal funding;
    bytes32 internal liveRecord;
    bytes32 internal disputedRecord;

    function setUp() public override {
        super.setUp();
        (live,) = _openTtt();
        bytes memory g;
        (disputed, g) = _openRr(3, 100);
        vm.warp(T0 + P2P + AGREE + FALLBACK + 1);
        vm.prank(addrs[1]);
        m.disputeTimeout(disputed, _genesisProof(g));
        (bytes32 f,) = _openFundingOnly();
        funding = f;
        liveRecord = keccak256(abi.encode(m.getChannel(live)));
        disputedRecord = keccak256(abi.encode(m.getChannel(disputed)));
    }

    function _openFundingOnly() internal returns (bytes32 id, bytes memory g) {
        (address[] memory ps, uint256[] memory deps) = _pair();
        ps[1] = addrs[4];
        deps[1] = 3 ether;
        g = rr.initialState(ps, deps, 10);
        vm.prank(ps[0]);
        id = m.open{value: deps[0]}(_spec(address(rr), address(0), ps, deps), g);
    }

    function _owed() internal view returns (uint256) {
        return
            uint256(m.getChannel(live).locked) + m.getChannel(disputed).locked + m.getChannel(funding).locked;
    }

    function _selector(uint256 which) internal pure returns (bytes4) {
        bytes4[22] memory s = [
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
            IStateChannelManager.withdrawTo.selector,
            IStateChannelManager.withdrawPendingTo.selector,
            IStateChannelManager.machineInstance.selector,
            bytes4(0),
            bytes4(0xffffffff)
        ];
        return s[which % s.length];
    }

    /// Random calldata behind a real selector (with the channel ids planted in the first words, so the
    /// calls reach past the channel lookup), random sender and value.
    function testFuzz_randomCalldata(
        uint256 which,
        uint256 idChoice,
        bytes calldata tail,
        uint256 value,
        uint256 who
    ) public {
        bytes32 id = idChoice % 3 == 0 ? live : idChoice % 3 == 1 ? disputed : funding;
        address from = who % 2 == 0 ? addrs[who % 8] : address(uint160(who));
        value = bound(value, 0, 5 ether);
        vm.deal(from, value);
        vm.warp(block.timestamp + (who % 100_000));
        vm.prank(from);
        (bool ok,) = address(manager).call{value: value}(bytes.concat(_selector(which), id, tail));
        ok;
        vm.assertEq(address(manager).balance, _owed());
    }

    /// Pure noise.
    function testFuzz_noise(bytes calldata data, uint256 value) public {
        value = bound(value, 0, 1 ether);
        (bool ok,) = address(manager).call{value: value}(data);
        ok;
        vm.assertEq(address(manager).balance, _owed());
    }
}

/// @notice Property fuzzing of signatures, timestamps and the challenge period.
contract FuzzPropertiesTest is ChannelTestBase {
    /// Random signature bytes never settle a channel.
    function testFuzz_close_randomSignatures(bytes calldata s0, bytes calldata s1) public {
        (bytes32 id, bytes memory g) = _openTtt();
        (Transaction memory t, bytes memory s) = _tttXWins(id, g);
        StateProof memory p = _signedProof(t, s, 2);
        vm.assume(keccak256(s0) != keccak256(p.signatures[0]) || keccak256(s1) != keccak256(p.signatures[1]));
        p.signatures[0] = s0;
        p.signatures[1] = s1;
        vm.expectRevert();
        m.close(id, p);
    }

    /// The out-of-order claim holds exactly when the timestamp is below the parent's; otherwise it reverts.
    function testFuzz_timestampOrder(uint64 ts) public {
        (bytes32 id, bytes memory g) = _openTtt();
        (Transaction memory t1, bytes memory s1) = _tttMove(id, 0, 1, addrs[0], uint64(T0 + 100), g, 4);
        StateProof memory p1 = _signedProof(t1, s1, 2);
        (Transaction memory t2,) = _tttMove(id, 0, 2, addrs[1], ts, s1, 0);
        bytes memory sig = _issuerSig(t2);
        if (ts < T0 + 100) {
            vm.recordLogs();
            vm.prank(addrs[0]);
            m.proveFraud(id, DisputeKind.TimestampOutOfOrder, p1, t2, sig);
            DisputeRecord memory d = _record();
            vm.assertEq(uint256(d.kind), uint256(DisputeKind.TimestampOutOfOrder));
            vm.assertEq(d.target, addrs[1]);
        } else {
            vm.prank(addrs[0]);
            vm.expectRevert(
                abi.encodeWithSelector(
                    IStateChannelEvents.ClaimDoesNotHold.selector, DisputeKind.TimestampOutOfOrder
                )
            );
            m.proveFraud(id, DisputeKind.TimestampOutOfOrder, p1, t2, sig);
        }
    }

    /// Finalization is refused at every time up to the deadline.
    function testFuzz_finalizeNotBeforeDeadline(uint256 dt) public {
        (bytes32 id, bytes memory g) = _openRr(2, 100);
        vm.warp(T0 + P2P + AGREE + FALLBACK + 1);
        vm.recordLogs();
        vm.prank(addrs[1]);
        m.disputeTimeout(id, _genesisProof(g));
        DisputeRecord memory d = _record();
        dt = bound(dt, 0, CHALLENGE);
        vm.warp(block.timestamp + dt);
        vm.expectRevert();
        m.finalizeDispute(id, d, g);
        vm.assertEq(uint256(_status(id)), uint256(ChannelStatus.Disputed));
    }
}
