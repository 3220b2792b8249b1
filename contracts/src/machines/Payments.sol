// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {AIntentMachine} from "../AIntentMachine.sol";
import {Exit} from "../ChannelTypes.sol";

/// @title Payments
/// @notice An N-party payment channel: any participant pays any other at any time (`pay`), nobody is
/// ever obliged to write, and the balances are the exits. Works for a channel in ETH or in an ERC20 (the
/// manager holds the token; the machine counts). Any participant may end it (`settle`): everyone then
/// leaves with its balance. Participants may join (with their deposit as balance) and leave (with
/// their balance); a slashed participant's balance is shared by the others.
/// @dev State: `abi.encode(State)`. Moves come as intents (`applyIntents`) written by the height's
/// sequencer, or as a participant's own transaction (an on-chain escape).
contract Payments is AIntentMachine {
    struct State {
        address[] participants; // signing order
        uint256[] balances; // aligned with `participants`
        address[] issuers; // every address whose intents were applied, never removed
        uint64[] nonces; // aligned with `issuers`
        bool settled;
    }

    /// @notice The payer's balance is below the amount.
    error InsufficientBalance(address payer, uint256 balance, uint256 amount);
    /// @notice The address is not a participant.
    error NotAParticipant(address who);
    /// @notice The address is already a participant.
    error AlreadyParticipant(address who);
    /// @notice A payment of nothing, or to oneself.
    error InvalidPayment();
    /// @notice The channel is settled: no more payments.
    error Settled();
    /// @notice A genesis state needs aligned, non-empty, duplicate-free lists of non-zero addresses.
    error InvalidGenesis();

    State internal s;

    /// @notice The genesis state: `participants` with their `deposits` as balances.
    function initialState(address[] calldata participants, uint256[] calldata deposits)
        external
        pure
        returns (bytes memory)
    {
        if (participants.length == 0 || participants.length != deposits.length) revert InvalidGenesis();
        for (uint256 i = 0; i < participants.length; i++) {
            if (participants[i] == address(0)) revert InvalidGenesis();
            for (uint256 j = 0; j < i; j++) {
                if (participants[i] == participants[j]) revert InvalidGenesis();
            }
        }
        return abi.encode(State(participants, deposits, new address[](0), new uint64[](0), false));
    }

    /// @notice The move: the issuer pays `amount` of its balance to participant `to`.
    function pay(address to, uint256 amount) external onlyTransition {
        if (s.settled) revert Settled();
        address payer = _issuer();
        if (amount == 0 || to == payer) revert InvalidPayment();
        uint256 from = _indexOf(payer);
        uint256 into = _indexOf(to);
        uint256 balance = s.balances[from];
        if (balance < amount) revert InsufficientBalance(payer, balance, amount);
        s.balances[from] = balance - amount;
        s.balances[into] += amount;
    }

    /// @notice The move that ends the channel: everyone leaves with its balance.
    function settle() external onlyTransition {
        if (s.settled) revert Settled();
        s.settled = true;
    }

    /// @notice The decoded current state.
    function getPaymentState() external view returns (State memory) {
        return s;
    }

    /// @notice Decodes an encoded state.
    function decode(bytes memory state) public pure returns (State memory) {
        return abi.decode(state, (State));
    }

    /// @notice The encoded current state.
    function getState() public view override returns (bytes memory) {
        return abi.encode(s);
    }

    function _setState(bytes memory state) internal override {
        s = abi.decode(state, (State));
    }

    function _participantsOf(bytes memory state) internal pure override returns (address[] memory) {
        return decode(state).participants;
    }

    /// @dev Nobody is ever obliged to write.
    function _nextToWriteOf(bytes memory) internal pure virtual override returns (address) {
        return address(0);
    }

    /// @dev Any participant, until the channel is settled.
    function _mayWrite(address issuer) internal view virtual override returns (bool) {
        if (s.settled || issuer == address(0)) return false;
        for (uint256 i = 0; i < s.participants.length; i++) {
            if (s.participants[i] == issuer) return true;
        }
        return false;
    }

    function _isGameOverOf(bytes memory state) internal pure override returns (bool) {
        return decode(state).settled;
    }

    function _exitsOf(bytes memory state) internal pure override returns (Exit[] memory exits) {
        State memory st = decode(state);
        exits = new Exit[](st.participants.length);
        for (uint256 i = 0; i < exits.length; i++) {
            exits[i] = Exit(st.participants[i], st.balances[i]);
        }
    }

    function _intentNonceOf(address issuer) internal view override returns (uint64) {
        for (uint256 i = 0; i < s.issuers.length; i++) {
            if (s.issuers[i] == issuer) return s.nonces[i];
        }
        return 0;
    }

    function _setIntentNonce(address issuer, uint64 nonce) internal override {
        for (uint256 i = 0; i < s.issuers.length; i++) {
            if (s.issuers[i] == issuer) {
                s.nonces[i] = nonce;
                return;
            }
        }
        s.issuers.push(issuer);
        s.nonces.push(nonce);
    }

    /// @dev Appends the joiner with its deposit as balance.
    function _joinParticipant(address participant, uint256 amount, bytes memory)
        internal
        override
        returns (Exit[] memory exits)
    {
        if (participant == address(0)) revert NotAParticipant(participant);
        for (uint256 i = 0; i < s.participants.length; i++) {
            if (s.participants[i] == participant) revert AlreadyParticipant(participant);
        }
        s.participants.push(participant);
        s.balances.push(amount);
        return exits;
    }

    /// @dev The leaver takes its balance.
    function _removeParticipant(address participant) internal override returns (Exit[] memory exits) {
        uint256 amount = _drop(participant);
        exits = new Exit[](1);
        exits[0] = Exit(participant, amount);
    }

    /// @dev The slashed participant leaves with nothing; its balance is shared by the others (the first
    /// ones get the remainder).
    function _slashParticipant(address participant) internal override returns (Exit[] memory exits) {
        uint256 amount = _drop(participant);
        uint256 n = s.participants.length;
        exits = new Exit[](1);
        exits[0] = Exit(participant, 0);
        if (n == 0) {
            exits[0].amount = amount; // nobody to share with
            return exits;
        }
        uint256 share = amount / n;
        uint256 rest = amount % n;
        for (uint256 i = 0; i < n; i++) {
            s.balances[i] += share + (i < rest ? 1 : 0);
        }
    }

    function _indexOf(address who) private view returns (uint256) {
        for (uint256 i = 0; i < s.participants.length; i++) {
            if (s.participants[i] == who) return i;
        }
        revert NotAParticipant(who);
    }

    /// @dev Removes `participant` keeping the order; returns its balance.
    function _drop(address participant) private returns (uint256 amount) {
        uint256 idx = _indexOf(participant);
        uint256 n = s.participants.length;
        amount = s.balances[idx];
        for (uint256 i = idx; i + 1 < n; i++) {
            s.participants[i] = s.participants[i + 1];
            s.balances[i] = s.balances[i + 1];
        }
        s.participants.pop();
        s.balances.pop();
    }
}
