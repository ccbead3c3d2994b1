"""Slots dataclasses for one market snapshot: exact integers, one block.

Units:
- token amounts are in the token's smallest unit (wei for 18-decimal tokens);
- prices and ``*_base`` values are in the market's base currency unit
  (Aave V3 on Ethereum: USD with 8 decimals, ``base_currency_unit = 10**8``);
- ``health_factor`` is a WAD (1e18 == 1.0); no debt is ``MAX_UINT256`` as Aave returns it;
- LTV, liquidation threshold and bonus are basis points (8250 == 82.5 %, bonus 10500 == +5 %);
- indexes are RAYs (1e27).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from monitor.wadray import RAY as RAY  # re-exported: models name their units
from monitor.wadray import WAD as WAD

MAX_UINT256 = 2**256 - 1


def format_wad(value: int) -> str:
    """A WAD integer as a decimal string with exactly 18 decimals; MAX_UINT256 is ``"inf"``."""
    if value == MAX_UINT256:
        return "inf"
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), WAD)
    return f"{sign}{whole}.{frac:018d}"


def format_units(value: int, decimals: int) -> str:
    """An integer amount of a token with ``decimals`` as an exact decimal string."""
    if decimals == 0:
        return str(value)
    sign = "-" if value < 0 else ""
    whole, frac = divmod(abs(value), 10**decimals)
    return f"{sign}{whole}.{frac:0{decimals}d}"


@dataclass(frozen=True, slots=True)
class EModeCategory:
    """An Aave V3 efficiency-mode category (id 0 is "no eMode" and is never listed)."""

    id: int
    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    price_source: str  # zero address when the category has no price source of its own
    label: str
    # Aave V3.2+ "liquid eMode": the category's LTV / LT / bonus apply only to reserves whose
    # bit (reserve_id) is set in ``collateral_bitmap``; ``None`` = pre-3.2 membership by the
    # reserve-config eMode bits (``Reserve.emode_category``).
    collateral_bitmap: int | None = None
    borrowable_bitmap: int | None = None
    ltv_zero_bitmap: int = 0  # 3.6+: reserves whose LTV is 0 inside this category

    def covers(self, reserve: Reserve) -> bool:
        """Whether the category's parameters apply to ``reserve`` as collateral."""
        if self.collateral_bitmap is None:
            return reserve.emode_category == self.id
        return bool((self.collateral_bitmap >> reserve.reserve_id) & 1)


@dataclass(frozen=True, slots=True)
class Reserve:
    """One reserve of a market as configured and priced at the snapshot block."""

    asset: str  # checksummed underlying address
    symbol: str
    decimals: int
    reserve_id: int  # index in the user-configuration bitmap
    ltv: int
    liquidation_threshold: int
    liquidation_bonus: int
    emode_category: int
    active: bool
    frozen: bool
    borrowing_enabled: bool
    a_token: str
    stable_debt_token: str
    variable_debt_token: str
    liquidity_index: int  # normalized income at the block (ray)
    variable_borrow_index: int  # normalized variable debt at the block (ray)
    price: int  # oracle price in base currency units
    liquidation_protocol_fee: int = 0  # bps of the liquidation bonus to the treasury (config bits 152-167)
    paused: bool = False  # config bit 60: liquidationCall reverts
    liquidation_grace_period_until: int = 0  # 3.1+: no liquidation with this reserve before this timestamp

    def as_row(self, market: str, block: int) -> dict[str, Any]:
        return {
            "market": market,
            "asset": self.asset,
            "symbol": self.symbol,
            "decimals": self.decimals,
            "reserve_id": self.reserve_id,
            "ltv": self.ltv,
            "liquidation_threshold": self.liquidation_threshold,
            "liquidation_bonus": self.liquidation_bonus,
            "emode_category": self.emode_category,
            "active": int(self.active),
            "frozen": int(self.frozen),
            "borrowing_enabled": int(self.borrowing_enabled),
            "a_token": self.a_token,
            "stable_debt_token": self.stable_debt_token,
            "variable_debt_token": self.variable_debt_token,
            "updated_block": block,
        }


@dataclass(frozen=True, slots=True)
class AssetLeg:
    """One account's balances in one reserve at the snapshot block (exact integers)."""

    asset: str
    symbol: str
    scaled_collateral: int  # aToken scaledBalanceOf
    collateral: int  # scaled_collateral rayMul liquidity_index (== aToken balanceOf)
    scaled_variable_debt: int
    variable_debt: int  # scaled_variable_debt rayMul variable_borrow_index
    stable_debt: int  # StableDebtToken balanceOf at the block
    used_as_collateral: bool  # the user-configuration bit

    @property
    def debt(self) -> int:
        return self.variable_debt + self.stable_debt

    def as_dict(self) -> dict[str, Any]:
        return {
            "asset": self.asset,
            "symbol": self.symbol,
            "scaled_collateral": str(self.scaled_collateral),
            "collateral": str(self.collateral),
            "scaled_variable_debt": str(self.scaled_variable_debt),
            "variable_debt": str(self.variable_debt),
            "stable_debt": str(self.stable_debt),
            "used_as_collateral": self.used_as_collateral,
        }


@dataclass(frozen=True, slots=True)
class Position:
    """An account in a market at one block, as ``Pool.getUserAccountData`` reports it."""

    market: str
    account: str  # checksummed
    block: int
    health_factor: int  # WAD, MAX_UINT256 without debt
    total_collateral_base: int
    total_debt_base: int
    available_borrows_base: int
    current_liquidation_threshold: int  # bps, collateral-weighted
    ltv: int  # bps, collateral-weighted
    emode_category: int
    user_configuration: int  # the Aave user-configuration bitmap
    legs: tuple[AssetLeg, ...] = field(default_factory=tuple)
    # Compound V3: the HF at the STORED (last accrued) borrow index, what ``isLiquidatable`` answers
    # now; ``health_factor`` is after accrual to the block's timestamp, what ``absorb`` (which accrues
    # first) sees. None where the protocol has one verdict.
    health_factor_stored_index: int | None = None

    @property
    def has_debt(self) -> bool:
        return self.total_debt_base > 0

    @property
    def liquidatable_now(self) -> bool:
        """The protocol's view function at the stored state (Comet ``isLiquidatable``); else HF < 1."""
        stored = self.health_factor_stored_index
        return (self.health_factor if stored is None else stored) < WAD

    @property
    def liquidatable_after_accrual(self) -> bool | None:
        """HF < 1 after interest accrual (what Comet's ``absorb`` sees); None with one verdict."""
        return None if self.health_factor_stored_index is None else self.health_factor < WAD

    def health_factor_text(self) -> str:
        return format_wad(self.health_factor)

    def health_factor_float(self) -> float:
        return float("inf") if self.health_factor == MAX_UINT256 else self.health_factor / WAD

    def as_json(self, base_currency_unit: int) -> dict[str, Any]:
        """The machine-readable form printed by ``liqmon scan --json``."""
        return {
            "market": self.market,
            "account": self.account,
            "block": self.block,
            "health_factor": self.health_factor_text(),
            "collateral_usd": format_units(self.total_collateral_base, _unit_decimals(base_currency_unit)),
            "debt_usd": format_units(self.total_debt_base, _unit_decimals(base_currency_unit)),
            "ltv_bps": self.ltv,
            "liquidation_threshold_bps": self.current_liquidation_threshold,
            "emode_category": self.emode_category,
            "legs": [leg.as_dict() for leg in self.legs if leg.collateral or leg.debt],
            "health_factor_stored_index": _wad_or_none(self.health_factor_stored_index),
            "liquidatable_now": self.liquidatable_now,
            "liquidatable_after_accrual": self.liquidatable_after_accrual,
        }


@dataclass(frozen=True, slots=True)
class MarketSnapshot:
    """Everything read from one market at ONE block."""

    market: str
    protocol: str
    chain_id: int
    block: int
    block_hash: str
    timestamp: int
    base_currency_unit: int
    reserves: tuple[Reserve, ...]
    emode_categories: tuple[EModeCategory, ...]
    positions: tuple[Position, ...]
    addresses: dict[str, str] = field(default_factory=dict)  # pool_addresses_provider, pool...
    revision: int = 0  # the protocol contract's revision as read from the chain (Aave: Pool.POOL_REVISION)

    def reserve(self, symbol_or_address: str) -> Reserve:
        key = symbol_or_address.lower()
        for reserve in self.reserves:
            if reserve.symbol.lower() == key or reserve.asset.lower() == key:
                return reserve
        raise KeyError(symbol_or_address)


def _wad_or_none(value: int | None) -> str | None:
    return None if value is None else format_wad(value)


def _unit_decimals(unit: int) -> int:
    """10**k -> k (the base currency unit is always a power of ten)."""
    decimals = len(str(unit)) - 1
    if 10**decimals != unit:
        raise ValueError(f"base currency unit {unit} is not a power of ten")
    return decimals
