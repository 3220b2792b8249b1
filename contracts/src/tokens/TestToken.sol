// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title TestToken
/// @notice An ERC20 for local chains and tests, in which anyone may mint: the token of the examples'
/// channels in a token (never deploy it where it could stand for value).
contract TestToken is ERC20 {
    constructor() ERC20("Entente Test Token", "ETT") {}

    /// @notice Mints `amount` to `to`.
    function mint(address to, uint256 amount) external {
        _mint(to, amount);
    }
}
