// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ChannelTestBase} from "../utils/ChannelTestBase.sol";
import {Payments} from "../../src/machines/Payments.sol";
import {AIntentMachine, Intent} from "../../src/AIntentMachine.sol";
import {AStateMachine} from "../../src/AStateMachine.sol";
import {IStateChannelEvents} from "../../src/interfaces/IStateChannelEvents.sol";
import {Transaction, ChannelSpec, StateProof, Exit} from "../../src/ChannelTypes.sol";
import {TestToken} from "../../src/tokens/TestToken.sol";

/// The payment machine alone (any participant pays at any time, as its own transaction or as an intent a
/// sequencer applies) and in the court (nobody can be timed out, any participant can post, the balances
/// are paid out).
contract PaymentsTest is ChannelTestBase {
    Payments internal pay;
    Payments internal payScratch;
    address[] internal ps;
    uint256[] internal deps;
    bytes32 internal constant CHANNEL = keccak256("payments channel");
    uint64 internal height;

    function setUp() public override {
        super.setUp();
        pay = new Payments();
        payScratch = new Payments();
        for (uint256 i = 0; i < 3; i++) {
            ps.push(addrs[i]);
            deps.push(10 ether);
        }
        pay.setState(pay.initialState(ps, deps));
    }

    // ------------------------------------------------------------------ helpers

    function _intent(uint256 who, uint64 nonce, bytes memory data)
        internal
        view
        returns (Intent memory intent, bytes memory sig)
    {
        intent = Intent(CHANNEL, addrs[who], nonce, uint64(T0 + 1000), data);
        sig = _sign(keys[who], pay.intentDigest(intent));
    }

    function _payCall(uint256 to, uint256 amount) internal view returns (bytes memory) {
        return abi.encodeCall(Payments.pay, (addrs[to], amount));
    }

    function _apply(uint256 sequencer, Intent[] memory intents, bytes[] memory sigs) internal {
        height++;
        Transaction memory t;
        t.channelId = CHANNEL;
        t.height = height;
        t.participant = addrs[sequencer];
        t.timestamp = uint64(T0 + height);
        t.data = abi.encodeCall(AIntentMachine.applyIntents, (intents, sigs));
        pay.stateTransition(t);
    }

    function _direct(uint256 who, bytes memory data) internal {
        height++;
        Transaction memory t;
        t.channelId = CHANNEL;
        t.height = height;
        t.participant = addrs[who];
        t.timestamp = uint64(T0 + height);
        t.data = data;
        pay.stateTransition(t);
    }

    function _one(Intent memory intent, bytes memory sig)
        internal
        pure
        returns (Intent[] memory intents, bytes[] memory sigs)
    {
        intents = new Intent[](1);
        sigs = new bytes[](1);
        intents[0] = intent;
        sigs[0] = sig;
    }

    function _balances() internal view returns (uint256[] memory) {
        return pay.getPaymentState().balances;
    }

    // ------------------------------------------------------------------ the machine

    function test_nobodyIsObliged_anyParticipantMayPay() public {
        vm.assertEq(pay.getNextToWrite(), address(0));
        _direct(2, _payCall(0, 1 ether));
        _direct(2, _payCall(1, 1 ether));
        _direct(0, _payCall(2, 3 ether));
        uint256[] memory b = _balances();
        vm.assertEq(b[0], 8 ether);
        vm.assertEq(b[1], 11 ether);
        vm.assertEq(b[2], 11 ether);
        vm.assertEq(pay.getNextToWrite(), address(0));
        vm.assertFalse(pay.isGameOver());
    }

    function test_revert_outsiderMayNotWrite() public {
        vm.expectRevert(abi.encodeWithSelector(AStateMachine.NotYourTurn.selector, addrs[5], address(0)));
        _direct(5, _payCall(0, 1));
    }

    function test_revert_badPayments() public {
        vm.expectRevert(
            abi.encodeWithSelector(Payments.InsufficientBalance.selector, addrs[0], 10 ether, 11 ether)
        );
        _direct(0, _payCall(1, 11 ether));
        vm.expectRevert(Payments.InvalidPayment.selector);
        _direct(0, _payCall(0, 1));
        vm.expectRevert(Payments.InvalidPayment.selector);
        _direct(0, _payCall(1, 0));
        vm.expectRevert(abi.encodeWithSelector(Payments.NotAParticipant.selector, addrs[6]));
        _direct(0, abi.encodeCall(Payments.pay, (addrs[6], 1)));
    }

    function test_sequencerAppliesOthersIntentsInOneTransaction() public {
        Intent[] memory intents = new Intent[](3);
        bytes[] memory sigs = new bytes[](3);
        (intents[0], sigs[0]) = _intent(1, 0, _payCall(0, 2 ether));
        (intents[1], sigs[1]) = _intent(2, 0, _payCall(0, 1 ether));
        (intents[2], sigs[2]) = _intent(1, 1, _payCall(2, 1 ether));
        _apply(0, intents, sigs);
        uint256[] memory b = _balances();
        vm.assertEq(b[0], 13 ether);
        vm.assertEq(b[1], 7 ether);
        vm.assertEq(b[2], 10 ether);
        vm.assertEq(pay.intentNonceOf(addrs[1]), 2);
        vm.assertEq(pay.intentNonceOf(addrs[2]), 1);
        vm.assertEq(pay.intentNonceOf(addrs[0]), 0);
    }

    function test_revert_anIntentAppliesOnce_andInOrder() public {
        (Intent memory i0, bytes memory s0) = _intent(1, 0, _payCall(0, 1 ether));
        (Intent[] memory one, bytes[] memory sig) = _one(i0, s0);
        _apply(0, one, sig);
        // again: its nonce is used
        vm.expectRevert(abi.encodeWithSelector(AIntentMachine.IntentNonce.selector, 0, addrs[1], 1, 0));
        _apply(2, one, sig);
        // a later one first
        (Intent memory i2, bytes memory s2) = _intent(1, 2, _payCall(0, 1 ether));
        (one, sig) = _one(i2, s2);
        vm.expectRevert(abi.encodeWithSelector(AIntentMachine.IntentNonce.selector, 0, addrs[1], 1, 2));
        _apply(2, one, sig);
    }

    function test_revert_forgedOrForeignIntents() public {
        // signed by someone else than its issuer: a sequencer cannot pay from another's balance
        Intent memory forged = Intent(CHANNEL, addrs[1], 0, uint64(T0 + 1000), _payCall(0, 5 ether));
        bytes memory bySequencer = _sign(keys[0], pay.intentDigest(forged));
        (Intent[] memory one, bytes[] memory sig) = _one(forged, bySequencer);
        vm.expectRevert(abi.encodeWithSelector(AIntentMachine.IntentBadSignature.selector, 0, addrs[1]));
        _apply(0, one, sig);
        // a malleable (high-s) copy of a good signature
        (Intent memory good, bytes memory goodSig) = _intent(1, 0, _payCall(0, 1));
        (one, sig) = _one(good, _highS(goodSig));
        vm.expectRevert(abi.encodeWithSelector(AIntentMachine.IntentBadSignature.selector, 0, addrs[1]));
        _apply(0, one, sig);
        // for another channel
        Intent memory other = Intent(keccak256("other"), addrs[1], 0, uint64(T0 + 1000), _payCall(0, 1));
        (one, sig) = _one(other, _sign(keys[1], pay.intentDigest(other)));
        vm.expectRevert(
            abi.encodeWithSelector(AIntentMachine.IntentWrongChannel.selector, 0, keccak256("other"))
        );
        _apply(0, one, sig);
        // expired
        Intent memory old = Intent(CHANNEL, addrs[1], 0, uint64(T0), _payCall(0, 1));
        (one, sig) = _one(old, _sign(keys[1], pay.intentDigest(old)));
        vm.expectRevert(
            abi.encodeWithSelector(
                AIntentMachine.IntentExpired.selector, 0, uint64(T0), uint64(T0 + height + 1)
            )
        );
        _apply(0, one, sig);
        // from an outsider
        (Intent memory outsider, bytes memory outsiderSig) = _intent(5, 0, _payCall(0, 1));
        (one, sig) = _one(outsider, outsiderSig);
        vm.expectRevert(abi.encodeWithSelector(AIntentMachine.IntentMayNotWrite.selector, 0, addrs[5]));
        _apply(0, one, sig);
        // nested
        (Intent memory nested, bytes memory nestedSig) =
            _intent(1, 0, abi.encodeCall(AIntentMachine.applyIntents, (new Intent[](0), new bytes[](0))));
        (one, sig) = _one(nested, nestedSig);
        vm.expectRevert(abi.encodeWithSelector(AIntentMachine.IntentNested.selector, 0));
        _apply(0, one, sig);
        // not a move
        (Intent memory view_, bytes memory viewSig) = _intent(1, 0, abi.encodeCall(Payments.getState, ()));
        (one, sig) = _one(view_, viewSig);
        vm.expectRevert(AStateMachine.NotAMove.selector);
        _apply(0, one, sig);
        // none, or a signature short
        vm.expectRevert(abi.encodeWithSelector(AIntentMachine.IntentCount.selector, 0, 0));
        _apply(0, new Intent[](0), new bytes[](0));
        vm.assertEq(_balances()[1], 10 ether, "nothing of it applied");
    }

    function test_oneBadIntentRefusesTheBatch() public {
        Intent[] memory intents = new Intent[](2);
        bytes[] memory sigs = new bytes[](2);
        (intents[0], sigs[0]) = _intent(1, 0, _payCall(0, 1 ether));
        (intents[1], sigs[1]) = _intent(2, 0, _payCall(0, 100 ether));
        vm.expectRevert(
            abi.encodeWithSelector(Payments.InsufficientBalance.selector, addrs[2], 10 ether, 100 ether)
        );
        _apply(0, intents, sigs);
        vm.assertEq(pay.intentNonceOf(addrs[1]), 0);
    }

    function test_settle_endsIt_andTheBalancesAreTheExits() public {
        _direct(1, _payCall(0, 4 ether));
        (Intent memory i, bytes memory s) = _intent(2, 0, abi.encodeCall(Payments.settle, ()));
        (Intent[] memory one, bytes[] memory sig) = _one(i, s);
        _apply(0, one, sig);
        vm.assertTrue(pay.isGameOver());
        Exit[] memory e = pay.getExits();
        vm.assertEq(e[0].amount, 14 ether);
        vm.assertEq(e[1].amount, 6 ether);
        vm.assertEq(e[2].amount, 10 ether);
        vm.expectRevert(abi.encodeWithSelector(AStateMachine.NotYourTurn.selector, addrs[0], address(0)));
        _direct(0, _payCall(1, 1));
    }

    function test_aNonceOutlivesALeave_noReplayAfterRejoining() public {
        (Intent memory i0, bytes memory s0) = _intent(1, 0, _payCall(0, 1 ether));
        (Intent[] memory one, bytes[] memory sig) = _one(i0, s0);
        _apply(0, one, sig);
        Exit[] memory out = pay.removeParticipant(addrs[1]);
        vm.assertEq(out[0].amount, 9 ether);
        pay.joinParticipant(addrs[1], 5 ether, "");
        vm.expectRevert(abi.encodeWithSelector(AIntentMachine.IntentNonce.selector, 0, addrs[1], 1, 0));
        _apply(0, one, sig);
    }

    function test_slash_sharesTheBalance() public {
        Exit[] memory out = pay.slashParticipant(addrs[2]);
        vm.assertEq(out[0].amount, 0);
        uint256[] memory b = _balances();
        vm.assertEq(b.length, 2);
        vm.assertEq(b[0] + b[1], 30 ether);
    }

    function testFuzz_paymentsConserveTheTotal(uint256 seed) public {
        for (uint256 k = 0; k < 12; k++) {
            seed = uint256(keccak256(abi.encode(seed)));
            uint256 from = seed % 3;
            uint256 to = (from + 1 + (seed >> 8) % 2) % 3;
            uint256 amount = (seed >> 16) % (_balances()[from] + 2);
            if (amount == 0 || amount > _balances()[from]) {
                vm.expectRevert();
                _direct(from, _payCall(to, amount));
                height--;
                continue;
            }
            _direct(from, _payCall(to, amount));
            uint256[] memory b = _balances();
            vm.assertEq(b[0] + b[1] + b[2], 30 ether);
        }
    }

    // ------------------------------------------------------------------ in the court

    function _openPayments() internal returns (bytes32 id, bytes memory genesis) {
        ChannelSpec memory s = _spec(address(pay), address(0), ps, deps);
        genesis = pay.initialState(ps, deps);
        for (uint256 i = 0; i < 3; i++) {
            vm.deal(addrs[i], 100 ether);
        }
        id = _openFunded(s, genesis);
    }

    function _onChain(bytes32 id, uint64 h, uint256 writer, bytes memory prev, bytes memory data)
        internal
        returns (Transaction memory t, bytes memory next)
    {
        return _txOn(address(payScratch), id, 0, h, addrs[writer], uint64(block.timestamp), prev, data);
    }

    function test_court_nobodyCanBeTimedOut_anyoneCanPost_balancesPaid() public {
        (bytes32 id, bytes memory g) = _openPayments();
        vm.warp(T0 + 5);
        // participant 1 posts a payment as its own transaction (an escape: no sequencer needed)
        (Transaction memory t1, bytes memory s1) = _onChain(id, 1, 1, g, _payCall(0, 2 ether));
        m.postCalldata(t1, _issuerSig(t1), _genesisProof(g));
        // nobody is obliged to write: no timeout, however long everyone is idle
        vm.warp(T0 + 100_000);
        vm.prank(addrs[0]);
        vm.expectRevert(IStateChannelEvents.NoWriterExpected.selector);
        m.disputeTimeout(id, _postedProof(t1, s1));
        // participant 2's intent, applied by sequencer 0 off chain, then the N-signed settlement
        Intent memory intent = Intent(id, addrs[2], 0, uint64(block.timestamp + 60), _payCall(1, 3 ether));
        bytes memory isig = _sign(keys[2], pay.intentDigest(intent));
        (Intent[] memory one, bytes[] memory sig) = _one(intent, isig);
        (, bytes memory s2) = _onChain(id, 2, 0, s1, abi.encodeCall(AIntentMachine.applyIntents, (one, sig)));
        (Transaction memory t3, bytes memory s3) = _onChain(id, 3, 1, s2, abi.encodeCall(Payments.settle, ()));
        m.close(id, _signedProof(t3, s3, 3));
        Exit[] memory exits = payScratch.exitsOf(s3);
        vm.assertEq(exits[0].amount, 12 ether);
        vm.assertEq(exits[1].amount, 11 ether);
        vm.assertEq(exits[2].amount, 7 ether);
        for (uint256 i = 0; i < 3; i++) {
            uint256 before = addrs[i].balance;
            vm.prank(addrs[i]);
            m.withdraw(id, exits, i);
            vm.assertEq(addrs[i].balance, before + exits[i].amount);
        }
    }

    function test_court_aSequencerCannotPostAForgedIntent() public {
        (bytes32 id, bytes memory g) = _openPayments();
        vm.warp(T0 + 5);
        // sequencer 0 claims participant 1 paid it everything, signing the intent itself
        Intent memory forged = Intent(id, addrs[1], 0, uint64(block.timestamp + 60), _payCall(0, 10 ether));
        (Intent[] memory one, bytes[] memory sig) = _one(forged, _sign(keys[0], pay.intentDigest(forged)));
        Transaction memory t = Transaction(
            id,
            0,
            1,
            addrs[0],
            uint64(block.timestamp),
            keccak256(g),
            keccak256("whatever it claims"),
            abi.encodeCall(AIntentMachine.applyIntents, (one, sig))
        );
        bytes memory tsig = _issuerSig(t);
        vm.expectRevert(
            abi.encodeWithSelector(
                IStateChannelEvents.InvalidTransition.selector, keccak256("whatever it claims"), bytes32(0)
            )
        );
        m.postCalldata(t, tsig, _genesisProof(g));
    }
}

/// The payment machine in a channel whose deposits are an ERC20: the manager takes each deposit by the
/// participant's allowance and pays the balances out in the token.
contract PaymentsInATokenTest is ChannelTestBase {
    function test_tokenChannel_depositsByAllowance_balancesPaidInTheToken() public {
        TestToken token = new TestToken();
        Payments pay = new Payments();
        Payments scratch = new Payments();
        address[] memory ps = new address[](2);
        uint256[] memory deps = new uint256[](2);
        for (uint256 i = 0; i < 2; i++) {
            ps[i] = addrs[i];
            deps[i] = 5 ether;
            token.mint(addrs[i], 5 ether);
            vm.prank(addrs[i]);
            token.approve(address(manager), 5 ether);
        }
        ChannelSpec memory s = _spec(address(pay), address(token), ps, deps);
        bytes memory g = pay.initialState(ps, deps);
        vm.prank(ps[0]);
        bytes32 id = m.open(s, g);
        vm.prank(ps[1]);
        m.deposit(id, 1);
        vm.assertEq(token.balanceOf(address(manager)), 10 ether);
        // p1 pays p0 2 tokens, then settles; both sign the final state.
        vm.warp(T0 + 5);
        (, bytes memory s1) = _txOn(
            address(scratch),
            id,
            0,
            1,
            ps[1],
            uint64(T0 + 5),
            g,
            abi.encodeCall(Payments.pay, (ps[0], 2 ether))
        );
        (Transaction memory t2, bytes memory s2) =
            _txOn(address(scratch), id, 0, 2, ps[0], uint64(T0 + 5), s1, abi.encodeCall(Payments.settle, ()));
        m.close(id, _signedProof(t2, s2, 2));
        Exit[] memory exits = scratch.exitsOf(s2);
        for (uint256 i = 0; i < 2; i++) {
            vm.prank(ps[i]);
            m.withdraw(id, exits, i);
        }
        vm.assertEq(token.balanceOf(ps[0]), 7 ether);
        vm.assertEq(token.balanceOf(ps[1]), 3 ether);
        vm.assertEq(token.balanceOf(address(manager)), 0);
    }
}
