// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {Test} from "./utils/Test.sol";
import {Greeter} from "../src/Greeter.sol";

contract GreeterTest is Test {
    Greeter internal greeter;

    function setUp() public {
        greeter = new Greeter("hello");
    }

    function test_setGreeting_updatesAndEmits() public {
        vm.expectEmit(true, false, false, true);
        emit Greeter.Greeted(address(this), "entente");
        greeter.setGreeting("entente");
        vm.assertEq(greeter.greeting(), "entente");
    }

    function testFuzz_setGreeting(string calldata next) public {
        greeter.setGreeting(next);
        vm.assertEq(greeter.greeting(), next);
    }
}
