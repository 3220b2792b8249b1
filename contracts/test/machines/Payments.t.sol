// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ChannelTestBase} from "../utils/ChannelTestBase.sol";
import {Payments} from "../../src/machines/Payments.sol";
import {AIntentMachine, Intent} from "../../src/AIntentMachine.sol";
import {AStateMachine} from "../../src/AStateMachine.sol";
import {IStateChannelEvents} from "../../src/interfaces/IStateChannelEvents.sol";
import {Transaction, ChannelSpec, StateProof, Exit, Channel} from "../../src/ChannelTypes.sol";
import {TestToken} from "../../src/tokens/TestToken.sol";
import {PaymentsWithTurns} from "../utils/PaymentsWithTurns.sol";

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

    function test_court_nobodyCanBeTimedOut_theSequencerPosts_balancesPaid() public {
        (bytes32 id, bytes memory g) = _openPayments();
        vm.warp(T0 + 5);
        // participant 1, height 1's sequencer, posts a payment as its own transaction
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
        // sequencer 1 claims participant 2 paid it everything, signing the intent itself
        Intent memory forged = Intent(id, addrs[2], 0, uint64(block.timestamp + 60), _payCall(1, 10 ether));
        (Intent[] memory one, bytes[] memory sig) = _one(forged, _sign(keys[1], pay.intentDigest(forged)));
        Transaction memory t = Transaction(
            id,
            0,
            1,
            addrs[1],
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

    // ------------------------------------------------------------------ intents the court holds (O9)

    /// An intent of participant `who` in channel `id`, valid until `notAfter`, and its signature.
    function _courtIntent(bytes32 id, uint256 who, uint64 nonce, uint64 notAfter, bytes memory data)
        internal
        view
        returns (Intent memory intent, bytes memory sig)
    {
        intent = Intent(id, addrs[who], nonce, notAfter, data);
        sig = _sign(keys[who], pay.intentDigest(intent));
    }

    /// The state the court's forced transaction gives: the intent applied on `prev` by its issuer at
    /// timestamp `ts`.
    function _forced(
        bytes32 id,
        uint64 h,
        uint64 ts,
        bytes memory prev,
        Intent memory intent,
        bytes memory sig
    ) internal returns (Transaction memory t, bytes memory next) {
        (Intent[] memory one, bytes[] memory sigs) = _one(intent, sig);
        t = Transaction(
            id,
            0,
            h,
            intent.issuer,
            ts,
            keccak256(prev),
            bytes32(0),
            abi.encodeCall(AIntentMachine.applyIntents, (one, sigs))
        );
        payScratch.setState(prev);
        payScratch.stateTransition(t);
        next = payScratch.getState();
        t.stateHash = keccak256(next);
    }

    function test_court_aLeftOutIntentIsForcedOntoTheHead_andTheChannelGoesOn() public {
        (bytes32 id, bytes memory g) = _openPayments();
        vm.warp(T0 + 5);
        (Intent memory intent, bytes memory isig) =
            _courtIntent(id, 2, 0, uint64(block.timestamp + 1000), _payCall(1, 3 ether));
        vm.prank(addrs[2]);
        m.postIntent(intent, isig);
        (bytes32 digest, uint64 dueAt,) = m.postedIntent(id, 2);
        vm.assertEq(digest, pay.intentDigest(intent));
        vm.assertEq(dueAt, uint64(block.timestamp) + AGREE);
        // the peers get one agreementTime to include it
        vm.warp(dueAt - 1);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.IntentNotDue.selector, dueAt));
        m.forceIntent(id, 2, intent, isig, _genesisProof(g));
        // then anyone applies it on the head: the court writes the transaction (issuer 2, the head's stamp)
        vm.warp(dueAt);
        Channel memory before = m.getChannel(id);
        (Transaction memory ft, bytes memory fs) = _forced(id, 1, before.headTimestamp, g, intent, isig);
        vm.expectEmit(address(m));
        emit IStateChannelEvents.IntentForced(id, 0, 1, ft);
        vm.prank(addrs[0]);
        m.forceIntent(id, 2, intent, isig, _genesisProof(g));
        Channel memory c = m.getChannel(id);
        vm.assertEq(c.headHeight, 1);
        vm.assertEq(c.headStateHash, keccak256(fs));
        (digest,,) = m.postedIntent(id, 2);
        vm.assertEq(digest, bytes32(0));
        // it is applied once: forcing it again finds nothing held
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.NoPostedIntent.selector, 2));
        m.forceIntent(id, 2, intent, isig, _postedProof(ft, fs));
        // the channel goes on from the forced head: the next sequencer's post links to it, an N-signed
        // state closes it
        (Transaction memory t2, bytes memory s2) = _onChain(id, 2, 2, fs, _payCall(0, 1 ether));
        m.postCalldata(t2, _issuerSig(t2), _postedProof(ft, fs));
        (Transaction memory t3, bytes memory s3) = _onChain(id, 3, 0, s2, abi.encodeCall(Payments.settle, ()));
        m.close(id, _signedProof(t3, s3, 3));
        Exit[] memory exits = payScratch.exitsOf(s3);
        vm.assertEq(exits[0].amount, 11 ether);
        vm.assertEq(exits[1].amount, 13 ether);
        vm.assertEq(exits[2].amount, 6 ether);
    }

    function test_court_colludersCannotOutrunAPostedIntent() public {
        (bytes32 id, bytes memory g) = _openPayments();
        vm.warp(T0 + 5);
        uint64 notAfter = uint64(block.timestamp + AGREE);
        (Intent memory intent, bytes memory isig) = _courtIntent(id, 2, 0, notAfter, _payCall(1, 3 ether));
        m.postIntent(intent, isig);
        (, uint64 dueAt,) = m.postedIntent(id, 2);
        // (a stamp up to agreementTime ahead of chain time is taken otherwise)
        vm.warp(block.timestamp + 5);
        // before it is due the others may post, but not with a stamp that would expire it
        {
            (Transaction memory late,) =
                _txOn(address(payScratch), id, 0, 1, addrs[1], notAfter + 1, g, _payCall(0, 1 ether));
            bytes memory lateSig = _issuerSig(late);
            vm.expectRevert(
                abi.encodeWithSelector(
                    IStateChannelEvents.BadTimestamp.selector,
                    notAfter + 1,
                    m.getChannel(id).headTimestamp,
                    notAfter
                )
            );
            m.postCalldata(late, lateSig, _genesisProof(g));
        }
        (Transaction memory t1, bytes memory s1) = _onChain(id, 1, 1, g, _payCall(0, 1 ether));
        m.postCalldata(t1, _issuerSig(t1), _genesisProof(g));
        // once it is due, no post is taken until it is forced
        vm.warp(dueAt);
        {
            (Transaction memory t2,) = _onChain(id, 2, 2, s1, _payCall(0, 1 ether));
            bytes memory t2sig = _issuerSig(t2);
            vm.expectRevert(
                abi.encodeWithSelector(IStateChannelEvents.IntentDue.selector, 2, pay.intentDigest(intent))
            );
            m.postCalldata(t2, t2sig, _postedProof(t1, s1));
        }
        // it applies on whatever head the colluders made
        m.forceIntent(id, 2, intent, isig, _postedProof(t1, s1));
        vm.assertEq(m.getChannel(id).headHeight, 2);
        (Transaction memory ft, bytes memory fs) = _forced(id, 2, t1.timestamp, s1, intent, isig);
        vm.assertEq(m.getChannel(id).headStateHash, keccak256(fs));
        // and the next sequencer posts on it again
        (Transaction memory t3,) = _onChain(id, 3, 0, fs, _payCall(1, 1 ether));
        m.postCalldata(t3, _issuerSig(t3), _postedProof(ft, fs));
        vm.assertEq(m.getChannel(id).headHeight, 3);
    }

    function test_court_anIntentTheHeadAlreadyAppliedOrThatNoLongerAppliesIsLetGo() public {
        (bytes32 id, bytes memory g) = _openPayments();
        vm.warp(T0 + 5);
        (Intent memory intent, bytes memory isig) =
            _courtIntent(id, 2, 0, uint64(block.timestamp + 1000), _payCall(1, 3 ether));
        m.postIntent(intent, isig);
        // the sequencer includes it after all, on chain
        (Intent[] memory one, bytes[] memory sigs) = _one(intent, isig);
        (Transaction memory t1, bytes memory s1) =
            _onChain(id, 1, 1, g, abi.encodeCall(AIntentMachine.applyIntents, (one, sigs)));
        m.postCalldata(t1, _issuerSig(t1), _genesisProof(g));
        vm.warp(block.timestamp + AGREE);
        // forcing it finds its nonce used: let go, the head stays
        vm.expectEmit(address(m));
        emit IStateChannelEvents.IntentVoided(id, 0, 2, pay.intentDigest(intent));
        m.forceIntent(id, 2, intent, isig, _postedProof(t1, s1));
        vm.assertEq(m.getChannel(id).headHeight, 1);
        // a payment above the issuer's balance is let go the same way, and posts go on
        (Intent memory tooMuch, bytes memory tsig) =
            _courtIntent(id, 1, 0, uint64(block.timestamp + 1000), _payCall(0, 50 ether));
        m.postIntent(tooMuch, tsig);
        vm.warp(block.timestamp + AGREE);
        m.forceIntent(id, 1, tooMuch, tsig, _postedProof(t1, s1));
        vm.assertEq(m.getChannel(id).headHeight, 1);
        (Transaction memory t2,) = _onChain(id, 2, 2, s1, _payCall(0, 1 ether));
        m.postCalldata(t2, _issuerSig(t2), _postedProof(t1, s1));
        vm.assertEq(m.getChannel(id).headHeight, 2);
    }

    function test_court_aForcedHeadGivesWayToAnNSignedState() public {
        (bytes32 id, bytes memory g) = _openPayments();
        vm.warp(T0 + 5);
        // off chain, everyone signed height 1 (the issuer too, before it posted)
        (Transaction memory t1, bytes memory s1) = _onChain(id, 1, 0, g, _payCall(1, 1 ether));
        (Intent memory intent, bytes memory isig) =
            _courtIntent(id, 2, 0, uint64(block.timestamp + 1000), _payCall(1, 3 ether));
        m.postIntent(intent, isig);
        vm.warp(block.timestamp + AGREE);
        m.forceIntent(id, 2, intent, isig, _genesisProof(g));
        vm.assertEq(m.getChannel(id).headHeight, 1);
        // the N-signed state at the forced height replaces it, as it replaces any posted one
        m.checkpoint(id, _signedProof(t1, s1, 3));
        vm.assertEq(m.getChannel(id).headStateHash, keccak256(s1));
        // and the issuer posts its intent again on that head
        m.postIntent(intent, isig);
        vm.warp(block.timestamp + AGREE);
        m.forceIntent(id, 2, intent, isig, _signedProof(t1, s1, 3));
        vm.assertEq(m.getChannel(id).headHeight, 2);
    }

    function test_revert_postIntent_badInputs() public {
        (bytes32 id,) = _openPayments();
        vm.warp(T0 + 5);
        uint64 later = uint64(block.timestamp + 1000);
        // signed by someone else
        Intent memory forged = Intent(id, addrs[1], 0, later, _payCall(0, 1 ether));
        bytes memory fsig = _sign(keys[0], pay.intentDigest(forged));
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.SignerMismatch.selector, addrs[1], addrs[0])
        );
        m.postIntent(forged, fsig);
        // an outsider's
        (Intent memory outsider, bytes memory osig) = _courtIntent(id, 5, 0, later, _payCall(0, 1 ether));
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.NotAParticipant.selector, addrs[5]));
        m.postIntent(outsider, osig);
        // expired
        // (it must live until it is due)
        (Intent memory old, bytes memory oldSig) =
            _courtIntent(id, 1, 0, uint64(block.timestamp + AGREE - 1), _payCall(0, 1 ether));
        vm.expectRevert(
            abi.encodeWithSelector(
                IStateChannelEvents.IntentExpired.selector,
                uint64(block.timestamp + AGREE - 1),
                uint64(block.timestamp + AGREE)
            )
        );
        m.postIntent(old, oldSig);
        // for another channel
        (Intent memory other, bytes memory otherSig) =
            _courtIntent(keccak256("another"), 1, 0, later, _payCall(0, 1 ether));
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.UnknownChannel.selector, keccak256("another"))
        );
        m.postIntent(other, otherSig);
    }

    function test_revert_postIntent_heldOnlyItsIssuerReplacesIt_forceWhatIsNotHeldOrBadlySigned() public {
        (bytes32 id, bytes memory g) = _openPayments();
        vm.warp(T0 + 5);
        uint64 later = uint64(block.timestamp + 1000);
        (Intent memory ok, bytes memory okSig) = _courtIntent(id, 1, 0, later, _payCall(0, 1 ether));
        // held: another may not replace it, its issuer may
        m.postIntent(ok, okSig);
        (Intent memory second, bytes memory secondSig) = _courtIntent(id, 1, 0, later, _payCall(2, 1 ether));
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.IntentAlreadyPosted.selector, 1));
        m.postIntent(second, secondSig);
        vm.prank(addrs[1]);
        m.postIntent(second, secondSig);
        (bytes32 digest,,) = m.postedIntent(id, 1);
        vm.assertEq(digest, pay.intentDigest(second));
        // forcing what is not held, or what is held with another signature (it is never let go for that)
        vm.warp(block.timestamp + AGREE);
        bytes memory junkSig = _sign(keys[0], pay.intentDigest(second));
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.SignerMismatch.selector, addrs[1], addrs[0])
        );
        m.forceIntent(id, 1, second, junkSig, _genesisProof(g));
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.NoPostedIntent.selector, 1));
        m.forceIntent(id, 1, ok, okSig, _genesisProof(g));
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.NoPostedIntent.selector, 0));
        m.forceIntent(id, 0, second, secondSig, _genesisProof(g));
    }

    function test_court_heldIntentsHoldUpNoWriterOfATurnBasedGame() public {
        (bytes32 id, bytes memory g) = _openTtt();
        // a colluder gives the court an intent in a tic-tac-toe channel (no `applyIntents` there)
        Intent memory junk = Intent(id, addrs[1], 0, uint64(block.timestamp + 1000), hex"01");
        bytes memory jsig = _sign(keys[1], pay.intentDigest(junk));
        m.postIntent(junk, jsig);
        vm.warp(block.timestamp + AGREE);
        // the writer whose turn it is posts all the same: in a state that names a writer nothing is due
        (Transaction memory t1, bytes memory s1) = _tttMove(id, 0, 1, addrs[0], uint64(block.timestamp), g, 0);
        m.postCalldata(t1, _issuerSig(t1), _genesisProof(g));
        vm.assertEq(m.getChannel(id).headHeight, 1);
        // and forcing the junk lets it go, the head stays
        vm.expectEmit(address(m));
        emit IStateChannelEvents.IntentVoided(id, 0, 1, pay.intentDigest(junk));
        m.forceIntent(id, 1, junk, jsig, _postedProof(t1, s1));
        vm.assertEq(m.getChannel(id).headHeight, 1);
    }

    function test_court_heldIntentsAreForcedInTheOrderTheyFellDue_andStopHoldingPostsUp() public {
        (bytes32 id, bytes memory g) = _openPayments();
        vm.warp(T0 + 5);
        uint64 later = uint64(block.timestamp + 1000);
        (Intent memory first, bytes memory fsig) = _courtIntent(id, 0, 0, later, _payCall(1, 1 ether));
        m.postIntent(first, fsig);
        vm.warp(block.timestamp + 1);
        (Intent memory second, bytes memory ssig) = _courtIntent(id, 2, 0, later, _payCall(1, 2 ether));
        m.postIntent(second, ssig);
        vm.warp(block.timestamp + AGREE);
        // the one that fell due later waits for the earlier one (so colluders cannot jump the queue)
        vm.expectRevert(
            abi.encodeWithSelector(IStateChannelEvents.IntentDue.selector, 0, pay.intentDigest(first))
        );
        m.forceIntent(id, 2, second, ssig, _genesisProof(g));
        uint64 headTs = m.getChannel(id).headTimestamp;
        m.forceIntent(id, 0, first, fsig, _genesisProof(g));
        (Transaction memory f1, bytes memory fs1) = _forced(id, 1, headTs, g, first, fsig);
        vm.assertEq(m.getChannel(id).headStateHash, keccak256(fs1));
        // one agreementTime after it fell due, a held intent no longer holds posts up
        vm.warp(block.timestamp + AGREE);
        (Transaction memory t2,) = _onChain(id, 2, 2, fs1, _payCall(0, 1 ether));
        m.postCalldata(t2, _issuerSig(t2), _postedProof(f1, fs1));
        vm.assertEq(m.getChannel(id).headHeight, 2);
    }

    function test_court_aLapsedIntentIsNotForced_holdsNobodyUp_andAnyoneReplacesIt() public {
        (bytes32 id, bytes memory g) = _openPayments();
        vm.warp(T0 + 5);
        uint64 later = uint64(block.timestamp + 1000);
        (Intent memory lapsed, bytes memory lsig) = _courtIntent(id, 2, 0, later, _payCall(1, 2 ether));
        m.postIntent(lapsed, lsig);
        (, uint64 due,) = m.postedIntent(id, 2);
        // nobody forced it within its window: a late force could replace a height the peers confirmed
        // meanwhile, so it is refused
        vm.warp(due + AGREE);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.IntentLapsed.selector, due + AGREE));
        m.forceIntent(id, 2, lapsed, lsig, _genesisProof(g));
        // it holds nobody's force up, and anyone may replace it (here participant 0 posts it again)
        (Intent memory other, bytes memory osig) = _courtIntent(id, 1, 0, later, _payCall(0, 1 ether));
        m.postIntent(other, osig);
        vm.warp(block.timestamp + 1);
        vm.prank(addrs[0]);
        m.postIntent(lapsed, lsig);
        vm.warp(block.timestamp + AGREE);
        m.forceIntent(id, 1, other, osig, _genesisProof(g));
        vm.assertEq(m.getChannel(id).headHeight, 1);
    }

    function test_court_aLapsedIntentCapsNoStamp_inAnOpenOrATurnBasedChannel() public {
        // open channel: a junk intent that expires as early as the court allows, never forced
        (bytes32 id, bytes memory g) = _openPayments();
        vm.warp(T0 + 5);
        (Intent memory junk, bytes memory jsig) =
            _courtIntent(id, 2, 0, uint64(block.timestamp + AGREE), _payCall(1, 1 ether));
        m.postIntent(junk, jsig);
        (, uint64 due,) = m.postedIntent(id, 2);
        // once its window is over, a post stamped after its expiry is taken
        vm.warp(due + AGREE);
        (Transaction memory t1,) = _onChain(id, 1, 1, g, _payCall(0, 1 ether));
        vm.assertGt(t1.timestamp, junk.notAfter);
        m.postCalldata(t1, _issuerSig(t1), _genesisProof(g));
        vm.assertEq(m.getChannel(id).headHeight, 1);
        // turn-based channel: a held intent caps no stamp of the writer's move, even in its window
        (bytes32 ttt, bytes memory tg) = _openTtt();
        Intent memory tjunk = Intent(ttt, addrs[1], 0, uint64(block.timestamp + AGREE), hex"01");
        m.postIntent(tjunk, _sign(keys[1], pay.intentDigest(tjunk)));
        vm.warp(block.timestamp + AGREE + 1);
        (Transaction memory m1,) = _tttMove(ttt, 0, 1, addrs[0], uint64(block.timestamp), tg, 0);
        vm.assertGt(m1.timestamp, tjunk.notAfter);
        m.postCalldata(m1, _issuerSig(m1), _genesisProof(tg));
        vm.assertEq(m.getChannel(ttt).headHeight, 1);
    }

    function test_revert_inAStateThatNamesNoWriter_onlyTheHeightsSequencerPosts() public {
        (bytes32 id, bytes memory g) = _openPayments();
        vm.warp(T0 + 5);
        // height 1 is participant 1's: participant 0 or 2 posting there is refused, whatever it writes
        for (uint256 w = 0; w < 3; w += 2) {
            (Transaction memory t,) = _onChain(id, 1, w, g, _payCall(1, 1 ether));
            bytes memory sig = _issuerSig(t);
            vm.expectRevert(
                abi.encodeWithSelector(IStateChannelEvents.NotSequencer.selector, addrs[1], addrs[w])
            );
            m.postCalldata(t, sig, _genesisProof(g));
        }
        (Transaction memory t1, bytes memory s1) = _onChain(id, 1, 1, g, _payCall(0, 1 ether));
        m.postCalldata(t1, _issuerSig(t1), _genesisProof(g));
        // height 2 is participant 2's
        (Transaction memory t2,) = _onChain(id, 2, 1, s1, _payCall(0, 1 ether));
        bytes memory sig2 = _issuerSig(t2);
        vm.expectRevert(abi.encodeWithSelector(IStateChannelEvents.NotSequencer.selector, addrs[2], addrs[1]));
        m.postCalldata(t2, sig2, _postedProof(t1, s1));
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

/// The court in a machine whose states alternate between naming a writer and naming none.
contract PaymentsWithTurnsTest is ChannelTestBase {
    PaymentsWithTurns internal pay;
    PaymentsWithTurns internal scratch;
    address[] internal ps;

    function setUp() public override {
        super.setUp();
        pay = new PaymentsWithTurns();
        scratch = new PaymentsWithTurns();
        for (uint256 i = 0; i < 3; i++) {
            ps.push(addrs[i]);
        }
    }

    function _tx(bytes32 id, uint64 h, uint256 writer, bytes memory prev, bytes memory data)
        internal
        returns (Transaction memory t, bytes memory next)
    {
        return _txOn(address(scratch), id, 0, h, addrs[writer], uint64(block.timestamp), prev, data);
    }

    function _pay(uint256 to, uint256 amount) internal view returns (bytes memory) {
        return abi.encodeCall(Payments.pay, (addrs[to], amount));
    }

    function test_court_aForceInAStateThatNamesAWriterIsLetGo_notLandedBesideTheWritersMove() public {
        uint256[] memory deps = new uint256[](3);
        for (uint256 i = 0; i < 3; i++) {
            deps[i] = 10 ether;
        }
        bytes memory g = pay.initialState(ps, deps);
        bytes32 id = _openFunded(_spec(address(pay), address(0), ps, deps), g);
        vm.warp(T0 + 5);
        // participant 0 gives the court its intent, which the sequencers left out
        Intent memory intent = Intent(id, addrs[0], 0, uint64(block.timestamp + 1000), _pay(1, 3 ether));
        bytes memory isig = _sign(keys[0], pay.intentDigest(intent));
        m.postIntent(intent, isig);
        (, uint64 dueAt,) = m.postedIntent(id, 0);
        // off chain, everyone signs height 1, after which participant 0 is the named writer; participant 0
        // writes height 2 and everyone confirms it
        (Transaction memory t1, bytes memory s1) = _tx(id, 1, 1, g, _pay(0, 1));
        vm.assertEq(scratch.nextToWriteOf(s1), addrs[0]);
        (Transaction memory t2, bytes memory s2) = _tx(id, 2, 0, s1, _pay(1, 1));
        vm.assertEq(scratch.nextToWriteOf(s2), address(0));
        // a colluder forces the intent on height 1: it would land at height 2, beside the confirmed move
        // there (which participant 0 signed). The court lets it go instead.
        vm.warp(dueAt);
        vm.expectEmit(address(m));
        emit IStateChannelEvents.IntentVoided(id, 0, 0, pay.intentDigest(intent));
        vm.prank(addrs[1]);
        m.forceIntent(id, 0, intent, isig, _signedProof(t1, s1, 3));
        Channel memory c = m.getChannel(id);
        vm.assertEq(c.headHeight, 1);
        vm.assertEq(c.headStateHash, keccak256(s1));
        // the confirmed height 2 stands on it; in that state, which names nobody, the intent is forced
        m.checkpoint(id, _signedProof(t2, s2, 3));
        m.postIntent(intent, isig);
        (, dueAt,) = m.postedIntent(id, 0);
        vm.warp(dueAt);
        m.forceIntent(id, 0, intent, isig, _signedProof(t2, s2, 3));
        vm.assertEq(m.getChannel(id).headHeight, 3);
    }
}
