"""The Aave V3 events that change what a followed account holds, decoded exactly.

Signatures checked against both sources (``@aave/core-v3`` 1.19.3 = Aave 3.0, and
``@aave-dao/aave-v3-origin`` 3.6.0 ``src/contracts/interfaces``):

- Pool (``IPool.sol``, the same signatures in 3.0 and 3.6): ``Supply``, ``Withdraw``, ``Borrow``
  (``interestRateMode`` is a ``uint8`` enum: 1 stable (3.0/3.1 only), 2 variable), ``Repay``,
  ``LiquidationCall``, ``ReserveUsedAsCollateralEnabled`` / ``Disabled``, ``UserEModeSet``,
  ``ReserveDataUpdated`` (stored indexes and rates; 3.2+ emits 0 as the stable rate); 3.0 only:
  ``SwapBorrowRateMode``, ``RebalanceStableBorrowRate``, ``MintUnbacked``; 3.3+: ``DeficitCreated``.
- aToken / variable debt token (``IScaledBalanceToken.sol``, ``IAToken.sol``, identical in both):
  ``Mint(caller, onBehalfOf, value, balanceIncrease, index)``, ``Burn(from, target, value,
  balanceIncrease, index)``, ``BalanceTransfer(from, to, value, index)``. Their meaning changed:
  3.0-3.4 (``ScaledBalanceTokenBase._mintScaled(amount)``) ``value = amount + balanceIncrease``
  and the scaled amount is ``amount.rayDiv(index)`` (half up); ``BalanceTransfer.value`` is
  ``amount.rayDiv(index)``. 3.5+ (TokenMath) the Pool passes the scaled amount and ``value =
  balance(scaled + delta, index) - balance(scaled, previousIndex)``, so the scaled delta follows
  only from the holder's scaled balance before the event (``TokenMint.amount``);
  ``BalanceTransfer.value`` is the scaled amount itself. A burn of less than the accrued
  interest emits ``Mint`` (``value < balanceIncrease``) in every revision.
- PoolConfigurator / PoolAddressesProvider: the events after which the market's reserves,
  eMode categories or addresses must be read again (:data:`CONFIG_EVENTS`, :data:`PROVIDER_EVENTS`).

Every decoder checks the topic count and the data length: a log that does not fit is a
:class:`~monitor.errors.DecodeError`, never a guess.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from eth_utils import to_checksum_address

from monitor.chain.abi import event_topic
from monitor.chain.logs import Log
from monitor.errors import DecodeError

Role = Literal["pool", "a_token", "variable_debt_token", "configurator", "provider"]

# -- signatures ---------------------------------------------------------------------------

SUPPLY = "Supply(address,address,address,uint256,uint16)"
WITHDRAW = "Withdraw(address,address,address,uint256)"
BORROW = "Borrow(address,address,address,uint256,uint8,uint256,uint16)"
REPAY = "Repay(address,address,address,uint256,bool)"
LIQUIDATION_CALL = "LiquidationCall(address,address,address,uint256,uint256,address,bool)"
COLLATERAL_ENABLED = "ReserveUsedAsCollateralEnabled(address,address)"
COLLATERAL_DISABLED = "ReserveUsedAsCollateralDisabled(address,address)"
USER_EMODE_SET = "UserEModeSet(address,uint8)"
RESERVE_DATA_UPDATED = "ReserveDataUpdated(address,uint256,uint256,uint256,uint256,uint256)"
SWAP_BORROW_RATE_MODE = "SwapBorrowRateMode(address,address,uint8)"  # 3.0 / 3.1
REBALANCE_STABLE_BORROW_RATE = "RebalanceStableBorrowRate(address,address)"  # 3.0 / 3.1
MINT_UNBACKED = "MintUnbacked(address,address,address,uint256,uint16)"  # 3.0 / 3.1 bridges
DEFICIT_CREATED = "DeficitCreated(address,address,uint256)"  # 3.3+
TOKEN_MINT = "Mint(address,address,uint256,uint256,uint256)"
TOKEN_BURN = "Burn(address,address,uint256,uint256,uint256)"
BALANCE_TRANSFER = "BalanceTransfer(address,address,uint256,uint256)"

# IPoolConfigurator.sol (3.0 and 3.6): what changes a Reserve / EModeCategory as liqmon models
# them (LTV, LT, bonus, protocol fee, active / frozen / paused, grace period, eMode membership
# and parameters, the token contracts). Caps, premiums, rate strategies and reserve factors
# change no position's HF directly (the indexes they move are read every block).
CONFIG_EVENTS: tuple[str, ...] = (
    "ReserveInitialized(address,address,address,address,address)",
    "ReserveDropped(address)",
    "ReserveBorrowing(address,bool)",
    "CollateralConfigurationChanged(address,uint256,uint256,uint256)",
    "PendingLtvChanged(address,uint256)",  # 3.1+
    "ReserveActive(address,bool)",
    "ReserveFrozen(address,bool)",
    "ReservePaused(address,bool)",
    "LiquidationProtocolFeeChanged(address,uint256,uint256)",
    "LiquidationGracePeriodChanged(address,uint40)",  # 3.1+
    "LiquidationGracePeriodDisabled(address)",  # 3.1+
    "EModeAssetCategoryChanged(address,uint8,uint8)",  # 3.0 / 3.1
    "EModeCategoryAdded(uint8,uint256,uint256,uint256,address,string)",
    "AssetCollateralInEModeChanged(address,uint8,bool)",  # 3.2+
    "AssetBorrowableInEModeChanged(address,uint8,bool)",  # 3.2+
    "AssetLtvzeroInEModeChanged(address,uint8,bool)",  # 3.6+
    "ATokenUpgraded(address,address,address)",
    "VariableDebtTokenUpgraded(address,address,address)",
    "StableDebtTokenUpgraded(address,address,address)",  # 3.0 / 3.1
)
# IPoolAddressesProvider.sol: a new Pool implementation (revision), oracle, configurator or
# data provider; the followed market is read again from scratch.
PROVIDER_EVENTS: tuple[str, ...] = (
    "PoolUpdated(address,address)",
    "PoolConfiguratorUpdated(address,address)",
    "PriceOracleUpdated(address,address)",
    "PoolDataProviderUpdated(address,address)",
)

T_SUPPLY = event_topic(SUPPLY)
T_WITHDRAW = event_topic(WITHDRAW)
T_BORROW = event_topic(BORROW)
T_REPAY = event_topic(REPAY)
T_LIQUIDATION_CALL = event_topic(LIQUIDATION_CALL)
T_COLLATERAL_ENABLED = event_topic(COLLATERAL_ENABLED)
T_COLLATERAL_DISABLED = event_topic(COLLATERAL_DISABLED)
T_USER_EMODE_SET = event_topic(USER_EMODE_SET)
T_RESERVE_DATA_UPDATED = event_topic(RESERVE_DATA_UPDATED)
T_SWAP_BORROW_RATE_MODE = event_topic(SWAP_BORROW_RATE_MODE)
T_REBALANCE_STABLE_BORROW_RATE = event_topic(REBALANCE_STABLE_BORROW_RATE)
T_MINT_UNBACKED = event_topic(MINT_UNBACKED)
T_DEFICIT_CREATED = event_topic(DEFICIT_CREATED)
T_TOKEN_MINT = event_topic(TOKEN_MINT)
T_TOKEN_BURN = event_topic(TOKEN_BURN)
T_BALANCE_TRANSFER = event_topic(BALANCE_TRANSFER)
CONFIG_TOPICS: dict[str, str] = {event_topic(s): s for s in CONFIG_EVENTS}
PROVIDER_TOPICS: dict[str, str] = {event_topic(s): s for s in PROVIDER_EVENTS}

POOL_TOPICS: tuple[str, ...] = (
    T_SUPPLY, T_WITHDRAW, T_BORROW, T_REPAY, T_LIQUIDATION_CALL, T_COLLATERAL_ENABLED, T_COLLATERAL_DISABLED,
    T_USER_EMODE_SET, T_RESERVE_DATA_UPDATED, T_SWAP_BORROW_RATE_MODE, T_REBALANCE_STABLE_BORROW_RATE,
    T_MINT_UNBACKED, T_DEFICIT_CREATED,
)  # fmt: skip
TOKEN_TOPICS: tuple[str, ...] = (T_TOKEN_MINT, T_TOKEN_BURN, T_BALANCE_TRANSFER)
# every topic0 of every watched contract: ONE eth_getLogs asks for all of them (topic0 OR-list)
WATCHED_TOPICS: tuple[str, ...] = POOL_TOPICS + TOKEN_TOPICS + tuple(CONFIG_TOPICS) + tuple(PROVIDER_TOPICS)

STABLE_RATE_MODE = 1  # DataTypes.InterestRateMode.STABLE (3.0 / 3.1; __DEPRECATED from 3.2)


# -- decoded events -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """Where a decoded log was: emitter, block and position in the block."""

    address: str
    block: int
    log_index: int

    @property
    def order(self) -> tuple[int, int]:
        return (self.block, self.log_index)


@dataclass(frozen=True, slots=True)
class TokenMint(Event):
    """aToken / variable debt token ``Mint``: the balance of ``on_behalf_of`` grew by
    ``value - balance_increase`` beyond its interest, or (a burn smaller than the interest)
    shrank by ``balance_increase - value``."""

    asset: str
    debt: bool  # True: the variable debt token of ``asset``; False: its aToken
    caller: str
    on_behalf_of: str
    value: int
    balance_increase: int
    index: int

    @property
    def amount(self) -> int:
        """The signed change of the balance at ``index`` (negative: a burn smaller than the interest)."""
        return self.value - self.balance_increase

    @property
    def account(self) -> str:
        return self.on_behalf_of


@dataclass(frozen=True, slots=True)
class TokenBurn(Event):
    """aToken / variable debt token ``Burn``: the balance of ``owner`` shrank by ``value +
    balance_increase`` at ``index``."""

    asset: str
    debt: bool
    owner: str  # the ``from`` of the event
    target: str
    value: int
    balance_increase: int
    index: int

    @property
    def amount(self) -> int:
        return -(self.value + self.balance_increase)

    @property
    def account(self) -> str:
        return self.owner


@dataclass(frozen=True, slots=True)
class BalanceTransfer(Event):
    """aToken ``BalanceTransfer``: ``scaled`` moved from ``sender`` to ``recipient`` (both
    revisions emit the scaled amount the token moved)."""

    asset: str
    sender: str
    recipient: str
    scaled: int
    index: int


@dataclass(frozen=True, slots=True)
class Supply(Event):
    reserve: str
    user: str
    on_behalf_of: str
    amount: int
    referral: int


@dataclass(frozen=True, slots=True)
class Withdraw(Event):
    reserve: str
    user: str
    to: str
    amount: int


@dataclass(frozen=True, slots=True)
class Borrow(Event):
    reserve: str
    user: str
    on_behalf_of: str
    amount: int
    rate_mode: int  # 1 stable (3.0 / 3.1), 2 variable
    borrow_rate: int
    referral: int


@dataclass(frozen=True, slots=True)
class Repay(Event):
    reserve: str
    user: str  # the account whose debt is repaid
    repayer: str
    amount: int
    use_a_tokens: bool


@dataclass(frozen=True, slots=True)
class LiquidationCall(Event):
    collateral_asset: str
    debt_asset: str
    user: str
    debt_to_cover: int
    liquidated_collateral: int
    liquidator: str
    receive_a_token: bool


@dataclass(frozen=True, slots=True)
class CollateralFlag(Event):
    """``ReserveUsedAsCollateralEnabled`` (``enabled``) or ``...Disabled``."""

    reserve: str
    user: str
    enabled: bool


@dataclass(frozen=True, slots=True)
class UserEModeSet(Event):
    user: str
    category: int


@dataclass(frozen=True, slots=True)
class ReserveDataUpdated(Event):
    reserve: str
    liquidity_rate: int
    stable_borrow_rate: int
    variable_borrow_rate: int
    liquidity_index: int  # stored (ray)
    variable_borrow_index: int  # stored (ray)


@dataclass(frozen=True, slots=True)
class StableRateChange(Event):
    """3.0 / 3.1 ``SwapBorrowRateMode`` / ``RebalanceStableBorrowRate``: the user's stable debt
    changed in a way no scaled balance records (the account is re-read)."""

    reserve: str
    user: str


@dataclass(frozen=True, slots=True)
class MintUnbacked(Event):
    reserve: str
    user: str
    on_behalf_of: str
    amount: int


@dataclass(frozen=True, slots=True)
class DeficitCreated(Event):
    user: str
    debt_asset: str
    amount: int


@dataclass(frozen=True, slots=True)
class MarketChanged(Event):
    """A PoolConfigurator (``refresh``: read reserves and eMode categories again) or
    PoolAddressesProvider (``resync``: read the whole market again) event."""

    signature: str
    resync: bool


AaveEvent = (
    TokenMint | TokenBurn | BalanceTransfer | Supply | Withdraw | Borrow | Repay | LiquidationCall
    | CollateralFlag | UserEModeSet | ReserveDataUpdated | StableRateChange | MintUnbacked
    | DeficitCreated | MarketChanged
)  # fmt: skip


# -- decoding -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Watched:
    """One watched contract: its role and, for a token, the reserve's underlying asset."""

    role: Role
    asset: str = ""


def _address(topic: str) -> str:
    raw = topic[2:] if topic.startswith("0x") else topic
    if len(raw) != 64 or int(raw[:24], 16) != 0:
        raise DecodeError(f"topic {topic!r} is not an address")
    return to_checksum_address("0x" + raw[24:])


def _words(log: Log, count: int, what: str) -> list[int]:
    if len(log.data) != 32 * count:
        raise DecodeError(
            f"{what} at block {log.block_number} log {log.log_index}: {len(log.data)} bytes of data, "
            f"expected {32 * count}"
        )
    return [int.from_bytes(log.data[32 * i : 32 * i + 32], "big") for i in range(count)]


def _topics(log: Log, count: int, what: str) -> tuple[str, ...]:
    if len(log.topics) != count:
        raise DecodeError(
            f"{what} at block {log.block_number} log {log.log_index}: {len(log.topics)} topics, expected {count}"
        )
    return log.topics


def _word_address(word: int, what: str) -> str:
    if word >> 160:
        raise DecodeError(f"{what}: {word:#x} is not an address word")
    return to_checksum_address(f"0x{word:040x}")


def _word_bool(word: int, what: str) -> bool:
    if word > 1:
        raise DecodeError(f"{what}: {word} is not a bool")
    return bool(word)


def _small(word: int, bits: int, what: str) -> int:
    if word >> bits:
        raise DecodeError(f"{what}: {word} does not fit uint{bits}")
    return word


def decode_log(log: Log, watched: Watched) -> AaveEvent | None:
    """The event of ``log`` emitted by a contract playing ``watched.role``; ``None`` for
    events that change nothing liqmon follows (ERC20 ``Transfer``, flash loans, ...)."""
    if not log.topics:
        return None
    t0 = log.topics[0]
    at = (to_checksum_address(log.address), log.block_number, log.log_index)
    if watched.role in ("a_token", "variable_debt_token"):
        return _decode_token(log, t0, at, watched)
    if watched.role == "pool":
        return _decode_pool(log, t0, at)
    if watched.role == "configurator" and t0 in CONFIG_TOPICS:
        return MarketChanged(*at, CONFIG_TOPICS[t0], False)
    if watched.role == "provider" and t0 in PROVIDER_TOPICS:
        return MarketChanged(*at, PROVIDER_TOPICS[t0], True)
    return None


def _decode_token(log: Log, t0: str, at: tuple[str, int, int], watched: Watched) -> AaveEvent | None:
    debt = watched.role == "variable_debt_token"
    if t0 == T_TOKEN_MINT:
        topics = _topics(log, 3, "Mint")
        value, increase, index = _words(log, 3, "Mint")
        return TokenMint(*at, watched.asset, debt, _address(topics[1]), _address(topics[2]), value, increase, index)
    if t0 == T_TOKEN_BURN:
        topics = _topics(log, 3, "Burn")
        value, increase, index = _words(log, 3, "Burn")
        return TokenBurn(*at, watched.asset, debt, _address(topics[1]), _address(topics[2]), value, increase, index)
    if t0 == T_BALANCE_TRANSFER and not debt:
        topics = _topics(log, 3, "BalanceTransfer")
        scaled, index = _words(log, 2, "BalanceTransfer")
        return BalanceTransfer(*at, watched.asset, _address(topics[1]), _address(topics[2]), scaled, index)
    return None


def _decode_pool(log: Log, t0: str, at: tuple[str, int, int]) -> AaveEvent | None:
    if t0 == T_SUPPLY:
        topics = _topics(log, 4, "Supply")
        user, amount = _words(log, 2, "Supply")
        referral = _small(int(topics[3], 16), 16, "Supply.referralCode")
        return Supply(*at, _address(topics[1]), _word_address(user, "Supply.user"), _address(topics[2]), amount,
                      referral)  # fmt: skip
    if t0 == T_WITHDRAW:
        topics = _topics(log, 4, "Withdraw")
        (amount,) = _words(log, 1, "Withdraw")
        return Withdraw(*at, _address(topics[1]), _address(topics[2]), _address(topics[3]), amount)
    if t0 == T_BORROW:
        topics = _topics(log, 4, "Borrow")
        user, amount, mode, rate = _words(log, 4, "Borrow")
        return Borrow(*at, _address(topics[1]), _word_address(user, "Borrow.user"), _address(topics[2]), amount,
                      _small(mode, 8, "Borrow.interestRateMode"), rate,
                      _small(int(topics[3], 16), 16, "Borrow.referralCode"))  # fmt: skip
    if t0 == T_REPAY:
        topics = _topics(log, 4, "Repay")
        amount, use_a = _words(log, 2, "Repay")
        return Repay(*at, _address(topics[1]), _address(topics[2]), _address(topics[3]), amount,
                     _word_bool(use_a, "Repay.useATokens"))  # fmt: skip
    if t0 == T_LIQUIDATION_CALL:
        topics = _topics(log, 4, "LiquidationCall")
        debt, collateral, liquidator, receive = _words(log, 4, "LiquidationCall")
        return LiquidationCall(*at, _address(topics[1]), _address(topics[2]), _address(topics[3]), debt, collateral,
                               _word_address(liquidator, "LiquidationCall.liquidator"),
                               _word_bool(receive, "LiquidationCall.receiveAToken"))  # fmt: skip
    if t0 in (T_COLLATERAL_ENABLED, T_COLLATERAL_DISABLED):
        enabled = t0 == T_COLLATERAL_ENABLED
        what = "ReserveUsedAsCollateralEnabled" if enabled else "ReserveUsedAsCollateralDisabled"
        topics = _topics(log, 3, what)
        _words(log, 0, what)
        return CollateralFlag(*at, _address(topics[1]), _address(topics[2]), enabled)
    if t0 == T_USER_EMODE_SET:
        topics = _topics(log, 2, "UserEModeSet")
        (category,) = _words(log, 1, "UserEModeSet")
        return UserEModeSet(*at, _address(topics[1]), _small(category, 8, "UserEModeSet.categoryId"))
    if t0 == T_RESERVE_DATA_UPDATED:
        topics = _topics(log, 2, "ReserveDataUpdated")
        words = _words(log, 5, "ReserveDataUpdated")
        return ReserveDataUpdated(*at, _address(topics[1]), *words)
    if t0 in (T_SWAP_BORROW_RATE_MODE, T_REBALANCE_STABLE_BORROW_RATE):
        swap = t0 == T_SWAP_BORROW_RATE_MODE
        topics = _topics(log, 3, "SwapBorrowRateMode" if swap else "RebalanceStableBorrowRate")
        _words(log, 1 if swap else 0, "SwapBorrowRateMode" if swap else "RebalanceStableBorrowRate")
        return StableRateChange(*at, _address(topics[1]), _address(topics[2]))
    if t0 == T_MINT_UNBACKED:
        topics = _topics(log, 4, "MintUnbacked")
        user, amount = _words(log, 2, "MintUnbacked")
        return MintUnbacked(*at, _address(topics[1]), _word_address(user, "MintUnbacked.user"), _address(topics[2]),
                            amount)  # fmt: skip
    if t0 == T_DEFICIT_CREATED:
        topics = _topics(log, 3, "DeficitCreated")
        (amount,) = _words(log, 1, "DeficitCreated")
        return DeficitCreated(*at, _address(topics[1]), _address(topics[2]), amount)
    return None


def decode_logs(logs: Iterable[Log], watched: Mapping[str, Watched]) -> list[AaveEvent]:
    """Decode ``logs`` (from any watched contract, keyed by lower-case address) in chain order
    (block, logIndex); logs of contracts not in ``watched`` are a DecodeError (the node
    answered something the filter did not ask for)."""
    events: list[AaveEvent] = []
    for log in sorted(logs, key=lambda item: (item.block_number, item.log_index)):
        role = watched.get(log.address.lower())
        if role is None:
            raise DecodeError(
                f"log {log.log_index} of block {log.block_number} from {log.address}: not a watched contract"
            )
        event = decode_log(log, role)
        if event is not None:
            events.append(event)
    return events


def user_accounts(event: AaveEvent) -> Sequence[str]:
    """The accounts whose state ``event`` changes (or may change)."""
    if isinstance(event, TokenMint | TokenBurn):
        return (event.account,)
    if isinstance(event, BalanceTransfer):
        return (event.sender, event.recipient)
    if isinstance(event, Supply | Borrow | MintUnbacked):
        return (event.on_behalf_of,)
    if isinstance(event, Withdraw | CollateralFlag | UserEModeSet | StableRateChange | DeficitCreated):
        return (event.user,)
    if isinstance(event, Repay):
        return (event.user, event.repayer) if event.use_a_tokens else (event.user,)
    if isinstance(event, LiquidationCall):
        return (event.user, event.liquidator)
    return ()
