// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

/// @notice The smallest contract the toolchain check deploys: proves the Solidity build, the exported
/// artifacts and the Rust bindings agree.
contract Greeter {
    event Greeted(address indexed from, string greeting);

    string public greeting;

    constructor(string memory initial) {
        greeting = initial;
    }

    function setGreeting(string calldata next) external {
        greeting = next;
        emit Greeted(msg.sender, next);
    }
}
