// SPDX-License-Identifier: MIT
pragma solidity 0.8.19;

/// @title LiqmonMulticall
/// @notice liqmon's own call aggregator. It exposes the same external interface
///         (function signatures, selectors and return ABI) as the canonical
///         Multicall3 deployed at 0xcA11bde05977b3631167028862bE2a173976CA11,
///         so the same client code works against either.
/// @dev Stateless: no constructor, no immutables, no storage. The devnet installs
///      this contract's runtime bytecode at the canonical address with
///      anvil_setCode, which only works because nothing is set up at deploy time.
contract LiqmonMulticall {
    struct Call {
        address target;
        bytes callData;
    }

    struct Call3 {
        address target;
        bool allowFailure;
        bytes callData;
    }

    struct Call3Value {
        address target;
        bool allowFailure;
        uint256 value;
        bytes callData;
    }

    struct Result {
        bool success;
        bytes returnData;
    }

    /// @dev Same revert reasons as Multicall3, so clients matching on them keep working.
    string private constant CALL_FAILED = "Multicall3: call failed";
    string private constant VALUE_MISMATCH = "Multicall3: value mismatch";

    // ------------------------------------------------------------------ batches

    /// @notice Run every call; revert if any fails.
    /// @return blockNumber the current block number
    /// @return returnData the return data of each call, in order
    function aggregate(Call[] calldata calls)
        external
        payable
        returns (uint256 blockNumber, bytes[] memory returnData)
    {
        uint256 n = calls.length;
        returnData = new bytes[](n);
        for (uint256 i; i < n; ) {
            (bool ok, bytes memory ret) = calls[i].target.call(calls[i].callData);
            require(ok, CALL_FAILED);
            returnData[i] = ret;
            unchecked {
                ++i;
            }
        }
        blockNumber = block.number;
    }

    /// @notice Run every call; if `requireSuccess`, revert when any fails.
    function tryAggregate(bool requireSuccess, Call[] calldata calls)
        public
        payable
        returns (Result[] memory returnData)
    {
        uint256 n = calls.length;
        returnData = new Result[](n);
        for (uint256 i; i < n; ) {
            (bool ok, bytes memory ret) = calls[i].target.call(calls[i].callData);
            if (requireSuccess) {
                require(ok, CALL_FAILED);
            }
            returnData[i] = Result(ok, ret);
            unchecked {
                ++i;
            }
        }
    }

    /// @notice tryAggregate, plus the current block number and hash.
    function tryBlockAndAggregate(bool requireSuccess, Call[] calldata calls)
        public
        payable
        returns (uint256 blockNumber, bytes32 blockHash, Result[] memory returnData)
    {
        blockNumber = block.number;
        blockHash = blockhash(block.number);
        returnData = tryAggregate(requireSuccess, calls);
    }

    /// @notice tryBlockAndAggregate with every call required to succeed.
    function blockAndAggregate(Call[] calldata calls)
        external
        payable
        returns (uint256 blockNumber, bytes32 blockHash, Result[] memory returnData)
    {
        (blockNumber, blockHash, returnData) = tryBlockAndAggregate(true, calls);
    }

    /// @notice Run every call; a call may fail only if its `allowFailure` is set.
    function aggregate3(Call3[] calldata calls)
        external
        payable
        returns (Result[] memory returnData)
    {
        uint256 n = calls.length;
        returnData = new Result[](n);
        for (uint256 i; i < n; ) {
            Call3 calldata c = calls[i];
            (bool ok, bytes memory ret) = c.target.call(c.callData);
            if (!ok && !c.allowFailure) {
                revert(CALL_FAILED);
            }
            returnData[i] = Result(ok, ret);
            unchecked {
                ++i;
            }
        }
    }

    /// @notice aggregate3 with ETH forwarded per call; msg.value must equal the sum.
    function aggregate3Value(Call3Value[] calldata calls)
        external
        payable
        returns (Result[] memory returnData)
    {
        uint256 n = calls.length;
        uint256 total;
        returnData = new Result[](n);
        for (uint256 i; i < n; ) {
            Call3Value calldata c = calls[i];
            total += c.value;
            (bool ok, bytes memory ret) = c.target.call{value: c.value}(c.callData);
            if (!ok && !c.allowFailure) {
                revert(CALL_FAILED);
            }
            returnData[i] = Result(ok, ret);
            unchecked {
                ++i;
            }
        }
        require(msg.value == total, VALUE_MISMATCH);
    }

    // ------------------------------------------------------------ block views

    function getBlockHash(uint256 blockNumber) external view returns (bytes32 blockHash) {
        blockHash = blockhash(blockNumber);
    }

    function getBlockNumber() external view returns (uint256 blockNumber) {
        blockNumber = block.number;
    }

    function getCurrentBlockCoinbase() external view returns (address coinbase) {
        coinbase = block.coinbase;
    }

    /// @dev Post-merge the DIFFICULTY opcode returns PREVRANDAO; same opcode either way.
    function getCurrentBlockDifficulty() external view returns (uint256 difficulty) {
        difficulty = block.prevrandao;
    }

    function getCurrentBlockGasLimit() external view returns (uint256 gaslimit) {
        gaslimit = block.gaslimit;
    }

    function getCurrentBlockTimestamp() external view returns (uint256 timestamp) {
        timestamp = block.timestamp;
    }

    function getEthBalance(address addr) external view returns (uint256 balance) {
        balance = addr.balance;
    }

    function getLastBlockHash() external view returns (bytes32 blockHash) {
        unchecked {
            blockHash = blockhash(block.number - 1);
        }
    }

    function getBasefee() external view returns (uint256 basefee) {
        basefee = block.basefee;
    }

    function getChainId() external view returns (uint256 chainid) {
        chainid = block.chainid;
    }
}
