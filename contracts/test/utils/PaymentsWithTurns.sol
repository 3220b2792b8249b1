// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Payments} from "../../src/machines/Payments.sol";

/// @notice A payment machine whose states alternate between naming a writer and naming none: while
/// participant 0's balance is odd (in wei), participant 0 is the next writer and the only one who may
/// write; otherwise anyone may, as in `Payments`. For the court's tests of a state that names a writer
/// in an intent machine.
contract PaymentsWithTurns is Payments {
    function _nextToWriteOf(bytes memory state) internal pure override returns (address) {
        State memory st = decode(state);
        return st.balances[0] % 2 == 1 ? st.participants[0] : address(0);
    }

    function _mayWrite(address issuer) internal view override returns (bool) {
        address named = _nextToWriteOf(getState());
        return named == address(0) ? super._mayWrite(issuer) : issuer == named;
    }
}
