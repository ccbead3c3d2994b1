// SPDX-License-Identifier: MIT
pragma solidity 0.8.19;

/// @title LiqmonPriceFeed
/// @notice A Chainlink AggregatorV3-compatible price feed for the devnet, written for liqmon's tests:
///         liqmon reads `latestRoundData()` and `decimals()` of the feeds named in its config to detect
///         stale feeds and divergence from the protocol oracle. The owner sets answers; `setRoundData`
///         can back-date `updatedAt` to simulate a feed that stopped updating.
contract LiqmonPriceFeed {
    struct Round {
        int256 answer;
        uint256 startedAt;
        uint256 updatedAt;
    }

    uint8 public immutable decimals;
    string public description;
    uint256 public constant version = 4;
    address public owner;
    uint80 public latestRound;
    mapping(uint80 => Round) private rounds;

    event AnswerUpdated(int256 indexed current, uint256 indexed roundId, uint256 updatedAt);

    error NotOwner();
    error NoData();

    constructor(uint8 decimals_, string memory description_, int256 initialAnswer) {
        decimals = decimals_;
        description = description_;
        owner = msg.sender;
        _record(initialAnswer, block.timestamp);
    }

    function setAnswer(int256 answer) external {
        if (msg.sender != owner) revert NotOwner();
        _record(answer, block.timestamp);
    }

    function setRoundData(int256 answer, uint256 updatedAt) external {
        if (msg.sender != owner) revert NotOwner();
        _record(answer, updatedAt);
    }

    function latestAnswer() external view returns (int256) {
        return rounds[latestRound].answer;
    }

    function latestTimestamp() external view returns (uint256) {
        return rounds[latestRound].updatedAt;
    }

    function latestRoundData()
        external
        view
        returns (uint80 roundId, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        return getRoundData(latestRound);
    }

    function getRoundData(uint80 roundId)
        public
        view
        returns (uint80, int256 answer, uint256 startedAt, uint256 updatedAt, uint80 answeredInRound)
    {
        Round memory round = rounds[roundId];
        if (round.updatedAt == 0) revert NoData();
        return (roundId, round.answer, round.startedAt, round.updatedAt, roundId);
    }

    function _record(int256 answer, uint256 updatedAt) private {
        latestRound += 1;
        rounds[latestRound] = Round(answer, updatedAt, updatedAt);
        emit AnswerUpdated(answer, latestRound, updatedAt);
    }
}
