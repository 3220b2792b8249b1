// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {AStateMachine} from "./AStateMachine.sol";
import {Intent, IntentHashing} from "./ChannelTypes.sol";

/// @title AIntentMachine
/// @notice The base of a machine in which nobody is obliged to write and any participant may: its
/// states name no next writer (`_nextToWriteOf` is address(0), so no timeout applies to an idle
/// participant), and participants' moves arrive as signed intents that the height's sequencer applies
/// in one transaction (`applyIntents`). The machine checks each intent (channel, signature, order,
/// expiry, the issuer's right to write) so that a sequencer, on chain or off, can apply only what the
/// issuers signed, each intent once.
/// @dev The author keeps each issuer's intent count in the state (`_intentNonceOf`, `_setIntentNonce`)
/// and never lowers it, also when a participant leaves and comes back.
abstract contract AIntentMachine is AStateMachine {
    /// @notice EIP-712 type of `Intent`.
    bytes32 public constant INTENT_TYPEHASH = IntentHashing.INTENT_TYPEHASH;
    /// @notice EIP-712 domain of intents: fixed, the channel id inside the struct binds chain and manager.
    bytes32 public constant INTENT_DOMAIN_SEPARATOR = IntentHashing.DOMAIN_SEPARATOR;

    /// @notice `applyIntents` got no intent, or not one signature per intent.
    error IntentCount(uint256 intents, uint256 signatures);
    /// @notice Intent `index` is for another channel.
    error IntentWrongChannel(uint256 index, bytes32 channelId);
    /// @notice Intent `index` is not signed by its issuer.
    error IntentBadSignature(uint256 index, address issuer);
    /// @notice Intent `index` is not the issuer's next one.
    error IntentNonce(uint256 index, address issuer, uint64 expected, uint64 nonce);
    /// @notice Intent `index` expired before the transaction's timestamp.
    error IntentExpired(uint256 index, uint64 notAfter, uint64 timestamp);
    /// @notice The issuer of intent `index` may not write in this state.
    error IntentMayNotWrite(uint256 index, address issuer);
    /// @notice Intent `index` asks for `applyIntents` itself.
    error IntentNested(uint256 index);

    /// @notice EIP-712 digest an issuer signs for `intent`.
    function intentDigest(Intent memory intent) public pure returns (bytes32) {
        return IntentHashing.digest(intent);
    }

    /// @notice The move of a sequencer: applies `intents` in order, each as its issuer's move, each
    /// checked against `signatures` (65 bytes, r || s || v, low s). One bad intent refuses them all.
    function applyIntents(Intent[] calldata intents, bytes[] calldata signatures) external onlyTransition {
        if (intents.length == 0 || intents.length != signatures.length) {
            revert IntentCount(intents.length, signatures.length);
        }
        bytes32 channel = _channelId();
        uint64 timestamp = _timestamp();
        for (uint256 i = 0; i < intents.length; i++) {
            Intent calldata intent = intents[i];
            if (intent.channelId != channel) revert IntentWrongChannel(i, intent.channelId);
            (address signer, ECDSA.RecoverError failure,) =
                ECDSA.tryRecover(intentDigest(intent), signatures[i]);
            if (failure != ECDSA.RecoverError.NoError || signer != intent.issuer || signer == address(0)) {
                revert IntentBadSignature(i, intent.issuer);
            }
            if (intent.notAfter < timestamp) revert IntentExpired(i, intent.notAfter, timestamp);
            if (!_mayWrite(intent.issuer)) revert IntentMayNotWrite(i, intent.issuer);
            uint64 expected = _intentNonceOf(intent.issuer);
            if (intent.nonce != expected) revert IntentNonce(i, intent.issuer, expected, intent.nonce);
            if (intent.data.length >= 4 && bytes4(intent.data[:4]) == this.applyIntents.selector) {
                revert IntentNested(i);
            }
            _setIntentNonce(intent.issuer, expected + 1);
            _runAs(intent.issuer, intent.data);
        }
    }

    /// @notice The nonce `issuer`'s next intent must carry.
    function intentNonceOf(address issuer) external view returns (uint64) {
        return _intentNonceOf(issuer);
    }

    /// @dev The number of `issuer`'s intents applied so far (0 for an address never seen).
    function _intentNonceOf(address issuer) internal view virtual returns (uint64);

    /// @dev Records that `issuer` has applied `nonce` intents.
    function _setIntentNonce(address issuer, uint64 nonce) internal virtual;
}
