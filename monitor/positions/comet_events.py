"""The Compound III (Comet) events that change a followed account, decoded exactly.

Signatures and indexed parameters as Compound's ``CometMainInterface.sol`` declares them (the
devnet's ``CometLike`` emits the same). What each one means for the account, as ``Comet.sol``
emits them:

- ``Supply(from, dst, amount)`` (``supplyBase``): ``dst``'s present value + ``amount``, back to a
  principal at the block's indices; ``Withdraw(src, to, amount)`` (``withdrawBase``): ``src``'s
  present value - ``amount`` (a borrow rounds up);
- ``Transfer(from, to, amount)`` of the base token: ``Transfer(src, 0, v)`` is supply principal
  withdrawn from ``src`` and ``Transfer(0, dst, v)`` supply principal added to ``dst``, ``v`` the
  present value of that principal. Right after a ``Supply`` / ``Withdraw`` / ``AbsorbDebt`` of the
  same account it repeats what that event said (:attr:`CometEvent.companion`); alone it is one
  half of a ``transferBase``. The borrow halves of a ``transferBase`` emit NO event (a debt that
  grows, or is repaid, by a base transfer): see :mod:`monitor.positions.comet_follow` for how
  they are found;
- ``SupplyCollateral`` / ``WithdrawCollateral`` / ``TransferCollateral``: collateral balances
  (``assetsIn`` follows a balance's 0 / non-0 transitions);
- ``AbsorbCollateral(absorber, borrower, asset, amount, usd)``: the borrower's ``asset`` seized;
  ``AbsorbDebt(absorber, borrower, basePaidOut, usd)``: its balance + ``basePaidOut`` (floored at
  0 by Comet), ``assetsIn`` cleared;
- ``BuyCollateral``, ``WithdrawReserves``: protocol reserves only (no account changes);
- ``Upgraded(implementation)`` of the Comet's proxy (``TransparentUpgradeableProxy``, the
  address users call): a new implementation, i.e. new asset infos, feeds or rate model from the
  Configurator; the follower reads the whole market again.

Every decoder checks the topic count and the data length: a log that does not fit is a
:class:`~monitor.errors.DecodeError`, never a guess.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from eth_utils import to_checksum_address

from monitor.chain.abi import event_topic
from monitor.chain.logs import Log
from monitor.errors import DecodeError
from monitor.positions.aave_events import _address, _topics, _words

ZERO = "0x0000000000000000000000000000000000000000"

SUPPLY = "Supply(address,address,uint256)"
TRANSFER = "Transfer(address,address,uint256)"
WITHDRAW = "Withdraw(address,address,uint256)"
SUPPLY_COLLATERAL = "SupplyCollateral(address,address,address,uint256)"
TRANSFER_COLLATERAL = "TransferCollateral(address,address,address,uint256)"
WITHDRAW_COLLATERAL = "WithdrawCollateral(address,address,address,uint256)"
ABSORB_DEBT = "AbsorbDebt(address,address,uint256,uint256)"
ABSORB_COLLATERAL = "AbsorbCollateral(address,address,address,uint256,uint256)"
BUY_COLLATERAL = "BuyCollateral(address,address,uint256,uint256)"
WITHDRAW_RESERVES = "WithdrawReserves(address,uint256)"
UPGRADED = "Upgraded(address)"  # ERC1967 / TransparentUpgradeableProxy

T_SUPPLY = event_topic(SUPPLY)
T_TRANSFER = event_topic(TRANSFER)
T_WITHDRAW = event_topic(WITHDRAW)
T_SUPPLY_COLLATERAL = event_topic(SUPPLY_COLLATERAL)
T_TRANSFER_COLLATERAL = event_topic(TRANSFER_COLLATERAL)
T_WITHDRAW_COLLATERAL = event_topic(WITHDRAW_COLLATERAL)
T_ABSORB_DEBT = event_topic(ABSORB_DEBT)
T_ABSORB_COLLATERAL = event_topic(ABSORB_COLLATERAL)
T_BUY_COLLATERAL = event_topic(BUY_COLLATERAL)
T_WITHDRAW_RESERVES = event_topic(WITHDRAW_RESERVES)
T_UPGRADED = event_topic(UPGRADED)

# ONE eth_getLogs on the Comet asks for all of them (topic0 OR-list)
WATCHED_TOPICS: tuple[str, ...] = (
    T_SUPPLY, T_TRANSFER, T_WITHDRAW, T_SUPPLY_COLLATERAL, T_TRANSFER_COLLATERAL, T_WITHDRAW_COLLATERAL,
    T_ABSORB_DEBT, T_ABSORB_COLLATERAL, T_BUY_COLLATERAL, T_WITHDRAW_RESERVES, T_UPGRADED,
)  # fmt: skip
BASE_KINDS = frozenset({"supply", "withdraw", "transfer_in", "transfer_out", "absorb_debt"})  # move a principal


@dataclass(frozen=True, slots=True)
class CometEvent:
    """One decoded Comet log.

    ``account`` is whose principal or collateral changes (``dst`` of a supply, ``src`` of a
    withdraw, the sender of a ``transfer_out`` / ``transfer_collateral``, the recipient of a
    ``transfer_in``, the absorbed borrower); ``other`` the counterparty (the recipient of a
    ``transfer_collateral``, the ``from`` / ``to`` / absorber otherwise)."""

    kind: str
    block: int
    log_index: int
    account: str
    other: str = ""
    asset: str = ""
    amount: int = 0
    companion: bool = False  # a base Transfer repeating the Supply / Withdraw / AbsorbDebt just before it

    @property
    def order(self) -> tuple[int, int]:
        return (self.block, self.log_index)

    @property
    def moves_base(self) -> bool:
        return self.kind in BASE_KINDS and not self.companion


def decode_log(log: Log) -> CometEvent | None:
    """The event of one Comet log; ``None`` for events of no interest (``Approval``, ...)."""
    if not log.topics:
        return None
    t0 = log.topics[0]
    at = (log.block_number, log.log_index)
    if t0 in (T_SUPPLY, T_WITHDRAW, T_TRANSFER):
        what = {T_SUPPLY: "Supply", T_WITHDRAW: "Withdraw", T_TRANSFER: "Transfer"}[t0]
        topics = _topics(log, 3, what)
        (amount,) = _words(log, 1, what)
        first, second = _address(topics[1]), _address(topics[2])
        if t0 == T_SUPPLY:
            return CometEvent("supply", *at, account=second, other=first, amount=amount)
        if t0 == T_WITHDRAW:
            return CometEvent("withdraw", *at, account=first, other=second, amount=amount)
        if first == ZERO and second == ZERO:
            raise DecodeError(f"Transfer from and to the zero address at block {log.block_number} log {log.log_index}")
        if second == ZERO:
            return CometEvent("transfer_out", *at, account=first, amount=amount)
        if first == ZERO:
            return CometEvent("transfer_in", *at, account=second, amount=amount)
        return CometEvent("transfer_both", *at, account=first, other=second, amount=amount)  # not Comet's: read both
    if t0 in (T_SUPPLY_COLLATERAL, T_WITHDRAW_COLLATERAL, T_TRANSFER_COLLATERAL):
        what = {T_SUPPLY_COLLATERAL: "SupplyCollateral", T_WITHDRAW_COLLATERAL: "WithdrawCollateral",
                T_TRANSFER_COLLATERAL: "TransferCollateral"}[t0]  # fmt: skip
        topics = _topics(log, 4, what)
        (amount,) = _words(log, 1, what)
        first, second, asset = _address(topics[1]), _address(topics[2]), _address(topics[3])
        if t0 == T_SUPPLY_COLLATERAL:
            return CometEvent("supply_collateral", *at, account=second, other=first, asset=asset, amount=amount)
        if t0 == T_WITHDRAW_COLLATERAL:
            return CometEvent("withdraw_collateral", *at, account=first, other=second, asset=asset, amount=amount)
        return CometEvent("transfer_collateral", *at, account=first, other=second, asset=asset, amount=amount)
    if t0 == T_ABSORB_DEBT:
        topics = _topics(log, 3, "AbsorbDebt")
        paid, _usd = _words(log, 2, "AbsorbDebt")
        return CometEvent("absorb_debt", *at, account=_address(topics[2]), other=_address(topics[1]), amount=paid)
    if t0 == T_ABSORB_COLLATERAL:
        topics = _topics(log, 4, "AbsorbCollateral")
        seized, _usd = _words(log, 2, "AbsorbCollateral")
        return CometEvent("absorb_collateral", *at, account=_address(topics[2]), other=_address(topics[1]),
                          asset=_address(topics[3]), amount=seized)  # fmt: skip
    if t0 == T_BUY_COLLATERAL:
        topics = _topics(log, 3, "BuyCollateral")
        _base, amount = _words(log, 2, "BuyCollateral")
        return CometEvent("buy_collateral", *at, account="", other=_address(topics[1]), asset=_address(topics[2]),
                          amount=amount)  # fmt: skip
    if t0 == T_WITHDRAW_RESERVES:
        topics = _topics(log, 2, "WithdrawReserves")
        (amount,) = _words(log, 1, "WithdrawReserves")
        return CometEvent("withdraw_reserves", *at, account="", other=_address(topics[1]), amount=amount)
    if t0 == T_UPGRADED:
        topics = _topics(log, 2, "Upgraded")
        _words(log, 0, "Upgraded")
        return CometEvent("upgraded", *at, account="", other=_address(topics[1]))
    return None


def _companion(event: CometEvent, previous: CometEvent | None) -> bool:
    """Whether the base Transfer ``event`` repeats ``previous`` (the log right before it)."""
    if previous is None or previous.block != event.block or previous.log_index != event.log_index - 1:
        return False
    if event.kind == "transfer_in":
        return previous.kind in ("supply", "absorb_debt") and previous.account == event.account
    if event.kind == "transfer_out":
        return previous.kind == "withdraw" and previous.account == event.account
    return False


def decode_logs(logs: Iterable[Log], comet: str) -> list[CometEvent]:
    """Decode ``logs`` of the Comet ``comet`` in chain order (block, logIndex), each base Transfer
    that repeats the event before it marked :attr:`CometEvent.companion`; a log of another
    contract is a DecodeError."""
    want = to_checksum_address(comet)
    events: list[CometEvent] = []
    previous: CometEvent | None = None
    for log in sorted(logs, key=lambda item: (item.block_number, item.log_index)):
        if to_checksum_address(log.address) != want:
            raise DecodeError(f"log {log.log_index} of block {log.block_number} from {log.address}: not Comet {want}")
        event = decode_log(log)
        if event is None:
            previous = None
            continue
        if _companion(event, previous):
            event = replace(event, companion=True)
        events.append(event)
        previous = event
    return events
