"""The Morpho Blue events that change a followed position, decoded exactly.

Signatures and indexed parameters as ``@morpho-org/morpho-blue`` ``src/libraries/EventsLib.sol``
declares them (``Id`` is ``bytes32``, always the first topic after topic0). Morpho's events carry
the share and asset amounts it stored, so a position's change follows from the event alone:

- ``Supply`` / ``Withdraw``: ``supplyShares`` of ``onBehalf`` +/- ``shares``;
- ``Borrow`` / ``Repay``: ``borrowShares`` of ``onBehalf`` +/- ``shares``;
- ``SupplyCollateral`` / ``WithdrawCollateral``: ``collateral`` of ``onBehalf`` +/- ``assets``;
- ``Liquidate``: the borrower's ``borrowShares`` - ``repaidShares`` - ``badDebtShares`` (Morpho
  zeroes the rest of the shares when the collateral reaches 0) and ``collateral`` - ``seizedAssets``.

Market events (``AccrueInterest``, ``CreateMarket``, ``SetFee``) change no position; the market's
totals are read every block. ``SetAuthorization``, ``FlashLoan``, ``IncrementNonce`` and the
owner's events are not asked for. Every decoder checks the topic count and the data length: a
log that does not fit is a :class:`~monitor.errors.DecodeError`, never a guess.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from eth_utils import to_checksum_address

from monitor.chain.abi import event_topic
from monitor.chain.logs import Log
from monitor.errors import DecodeError
from monitor.positions.aave_events import _address, _topics, _word_address, _words

SUPPLY = "Supply(bytes32,address,address,uint256,uint256)"
WITHDRAW = "Withdraw(bytes32,address,address,address,uint256,uint256)"
BORROW = "Borrow(bytes32,address,address,address,uint256,uint256)"
REPAY = "Repay(bytes32,address,address,uint256,uint256)"
SUPPLY_COLLATERAL = "SupplyCollateral(bytes32,address,address,uint256)"
WITHDRAW_COLLATERAL = "WithdrawCollateral(bytes32,address,address,address,uint256)"
LIQUIDATE = "Liquidate(bytes32,address,address,uint256,uint256,uint256,uint256,uint256)"
ACCRUE_INTEREST = "AccrueInterest(bytes32,uint256,uint256,uint256)"
CREATE_MARKET = "CreateMarket(bytes32,(address,address,address,address,uint256))"
SET_FEE = "SetFee(bytes32,uint256)"

T_SUPPLY = event_topic(SUPPLY)
T_WITHDRAW = event_topic(WITHDRAW)
T_BORROW = event_topic(BORROW)
T_REPAY = event_topic(REPAY)
T_SUPPLY_COLLATERAL = event_topic(SUPPLY_COLLATERAL)
T_WITHDRAW_COLLATERAL = event_topic(WITHDRAW_COLLATERAL)
T_LIQUIDATE = event_topic(LIQUIDATE)
T_ACCRUE_INTEREST = event_topic(ACCRUE_INTEREST)
T_CREATE_MARKET = event_topic(CREATE_MARKET)
T_SET_FEE = event_topic(SET_FEE)

POSITION_TOPICS: tuple[str, ...] = (
    T_SUPPLY, T_WITHDRAW, T_BORROW, T_REPAY, T_SUPPLY_COLLATERAL, T_WITHDRAW_COLLATERAL, T_LIQUIDATE,
)  # fmt: skip
MARKET_TOPICS: tuple[str, ...] = (T_ACCRUE_INTEREST, T_CREATE_MARKET, T_SET_FEE)
# ONE eth_getLogs asks for all of them (topic0 OR-list), topic1 = the followed market ids
WATCHED_TOPICS: tuple[str, ...] = POSITION_TOPICS + MARKET_TOPICS


@dataclass(frozen=True, slots=True)
class PositionChange:
    """What one event did to ``account``'s position in market ``market_id`` (signed deltas)."""

    kind: str  # "supply", "withdraw", "borrow", "repay", "supply_collateral", "withdraw_collateral", "liquidate"
    market_id: str  # 0x + 64 lower-case hex
    account: str  # onBehalf, or the liquidated borrower
    block: int
    log_index: int
    supply_shares: int = 0
    borrow_shares: int = 0
    collateral: int = 0
    caller: str = ""
    bad_debt_shares: int = 0  # Liquidate: the shares Morpho wrote off (included in ``borrow_shares``)

    @property
    def order(self) -> tuple[int, int]:
        return (self.block, self.log_index)


@dataclass(frozen=True, slots=True)
class MarketEvent:
    """``AccrueInterest`` / ``CreateMarket`` / ``SetFee``: the market's totals moved (read every block)."""

    kind: str
    market_id: str
    block: int
    log_index: int


MorphoEvent = PositionChange | MarketEvent


def _market_id(topic: str) -> str:
    if len(topic) != 66:
        raise DecodeError(f"topic {topic!r} is not a market id")
    return topic.lower()


def decode_log(log: Log) -> MorphoEvent | None:
    """The event of one Morpho Blue log; ``None`` for events that change no followed position."""
    if not log.topics:
        return None
    t0 = log.topics[0]
    at = (log.block_number, log.log_index)
    if t0 in (T_SUPPLY, T_REPAY):
        what = "Supply" if t0 == T_SUPPLY else "Repay"
        topics = _topics(log, 4, what)
        _assets, shares = _words(log, 2, what)
        caller, account = _address(topics[2]), _address(topics[3])
        if t0 == T_SUPPLY:
            return PositionChange("supply", _market_id(topics[1]), account, *at, supply_shares=shares, caller=caller)
        return PositionChange("repay", _market_id(topics[1]), account, *at, borrow_shares=-shares, caller=caller)
    if t0 in (T_WITHDRAW, T_BORROW):
        what = "Withdraw" if t0 == T_WITHDRAW else "Borrow"
        topics = _topics(log, 4, what)
        caller_word, _assets, shares = _words(log, 3, what)
        caller, account = _word_address(caller_word, f"{what}.caller"), _address(topics[2])
        _address(topics[3])  # the receiver: checked, not followed
        if t0 == T_WITHDRAW:
            return PositionChange("withdraw", _market_id(topics[1]), account, *at, supply_shares=-shares, caller=caller)
        return PositionChange("borrow", _market_id(topics[1]), account, *at, borrow_shares=shares, caller=caller)
    if t0 == T_SUPPLY_COLLATERAL:
        topics = _topics(log, 4, "SupplyCollateral")
        (assets,) = _words(log, 1, "SupplyCollateral")
        return PositionChange("supply_collateral", _market_id(topics[1]), _address(topics[3]), *at,
                              collateral=assets, caller=_address(topics[2]))  # fmt: skip
    if t0 == T_WITHDRAW_COLLATERAL:
        topics = _topics(log, 4, "WithdrawCollateral")
        caller_word, assets = _words(log, 2, "WithdrawCollateral")
        _address(topics[3])
        caller = _word_address(caller_word, "WithdrawCollateral.caller")
        return PositionChange("withdraw_collateral", _market_id(topics[1]), _address(topics[2]), *at,
                              collateral=-assets, caller=caller)  # fmt: skip
    if t0 == T_LIQUIDATE:
        topics = _topics(log, 4, "Liquidate")
        _repaid_assets, repaid_shares, seized, _bad_assets, bad_shares = _words(log, 5, "Liquidate")
        return PositionChange("liquidate", _market_id(topics[1]), _address(topics[3]), *at,
                              borrow_shares=-(repaid_shares + bad_shares), collateral=-seized,
                              caller=_address(topics[2]), bad_debt_shares=bad_shares)  # fmt: skip
    if t0 == T_ACCRUE_INTEREST:
        topics = _topics(log, 2, "AccrueInterest")
        _words(log, 3, "AccrueInterest")
        return MarketEvent("accrue_interest", _market_id(topics[1]), *at)
    if t0 == T_CREATE_MARKET:
        topics = _topics(log, 2, "CreateMarket")
        _words(log, 5, "CreateMarket")
        return MarketEvent("create_market", _market_id(topics[1]), *at)
    if t0 == T_SET_FEE:
        topics = _topics(log, 2, "SetFee")
        _words(log, 1, "SetFee")
        return MarketEvent("set_fee", _market_id(topics[1]), *at)
    return None


def decode_logs(logs: Iterable[Log], morpho: str) -> list[MorphoEvent]:
    """Decode ``logs`` of the Morpho contract ``morpho`` in chain order (block, logIndex); a log of
    another contract is a DecodeError (the node answered something the filter did not ask for)."""
    want = to_checksum_address(morpho)
    events: list[MorphoEvent] = []
    for log in sorted(logs, key=lambda item: (item.block_number, item.log_index)):
        if to_checksum_address(log.address) != want:
            raise DecodeError(f"log {log.log_index} of block {log.block_number} from {log.address}: not Morpho {want}")
        event = decode_log(log)
        if event is not None:
            events.append(event)
    return events
