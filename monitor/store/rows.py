"""Rows <-> model objects: what a snapshot becomes in the tables and back.

Big integers (wei, ray, wad, base-currency amounts, prices) exceed SQLite's int64, so they
are stored exactly as decimal TEXT; a REAL companion column exists only where sorting or
plotting needs one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

from monitor.errors import StoreError
from monitor.models import (
    MAX_UINT256,
    WAD,
    AssetLeg,
    EModeCategory,
    MarketSnapshot,
    Position,
    Reserve,
    format_wad,
)
from monitor.protocols.aave_revisions import AaveRules, a_token_balance, rules_for, variable_debt_balance
from monitor.store.history import reason_names
from monitor.store.schema import ADDRESS_KEYS


def _usd(amount: int, base_currency_unit: int) -> float:
    return amount / base_currency_unit


def _market_row(snapshot: MarketSnapshot, last_block: int, now: float) -> dict[str, Any]:
    addresses = getattr(snapshot, "addresses", {})
    row: dict[str, Any] = {
        "name": snapshot.market,
        "protocol": snapshot.protocol,
        "chain_id": snapshot.chain_id,
        "base_currency_unit": str(snapshot.base_currency_unit),
        "last_block": last_block,
        "updated_at": now,
    }
    row.update({key: addresses.get(key) for key in ADDRESS_KEYS})
    return row


def _emode_row(market: str, block: int, category: EModeCategory) -> dict[str, Any]:
    return {
        "market": market,
        "id": category.id,
        "ltv": category.ltv,
        "liquidation_threshold": category.liquidation_threshold,
        "liquidation_bonus": category.liquidation_bonus,
        "price_source": category.price_source,
        "label": category.label,
        "updated_block": block,
        "collateral_bitmap": _optional_text(category.collateral_bitmap),
        "borrowable_bitmap": _optional_text(category.borrowable_bitmap),
        "ltv_zero_bitmap": str(category.ltv_zero_bitmap),
    }


def _optional_text(value: int | None) -> str | None:
    return None if value is None else str(value)


def _optional_int(text: str | None) -> int | None:
    return None if text is None else int(text)


# Reserve fields read at every block (stored per block in ``prices``); the rest are parameters.
_PER_BLOCK = frozenset({"liquidity_index", "variable_borrow_index", "price"})
_RESERVE_PARAMS = tuple(f.name for f in fields(Reserve) if f.name not in _PER_BLOCK)
_EMODE_PARAMS = tuple(f.name for f in fields(EModeCategory))


def _params_json(snapshot: MarketSnapshot) -> tuple[str, str]:
    """The snapshot's parameters as (reserves, eMode categories) JSON; Python's json keeps
    integers of any size exactly (uint128 bitmaps included)."""
    reserves = [{name: getattr(r, name) for name in _RESERVE_PARAMS} for r in snapshot.reserves]
    categories = [{name: getattr(c, name) for name in _EMODE_PARAMS} for c in snapshot.emode_categories]
    return json.dumps(reserves, separators=(",", ":")), json.dumps(categories, separators=(",", ":"))


def _reserve_row(market: str, block: int, reserve: Reserve) -> dict[str, Any]:
    return {
        **reserve.as_row(market, block),
        "liquidation_protocol_fee": reserve.liquidation_protocol_fee,
        "paused": int(reserve.paused),
        "liquidation_grace_period_until": reserve.liquidation_grace_period_until,
    }


def _price_row(snapshot: MarketSnapshot, reserve: Reserve) -> dict[str, Any]:
    return {
        "market": snapshot.market,
        "asset": reserve.asset,
        "block": snapshot.block,
        "symbol": reserve.symbol,
        "price": str(reserve.price),
        "price_usd": _usd(reserve.price, snapshot.base_currency_unit),
        "timestamp": snapshot.timestamp,
        "liquidity_index": str(reserve.liquidity_index),
        "variable_borrow_index": str(reserve.variable_borrow_index),
    }


def _legs_json(position: Position) -> str:
    legs = [leg.as_dict() for leg in position.legs if leg.collateral or leg.debt]
    return json.dumps(legs, separators=(",", ":"))


def _position_row(snapshot: MarketSnapshot, position: Position) -> dict[str, Any]:
    unit = snapshot.base_currency_unit
    no_debt = position.health_factor == MAX_UINT256
    return {
        "market": snapshot.market,
        "account": position.account,
        "block": snapshot.block,
        "timestamp": snapshot.timestamp,
        "health_factor": format_wad(position.health_factor),
        "health_factor_wad": str(position.health_factor),
        "hf": None if no_debt else position.health_factor / WAD,
        "collateral_base": str(position.total_collateral_base),
        "debt_base": str(position.total_debt_base),
        "collateral_usd": _usd(position.total_collateral_base, unit),
        "debt_usd": _usd(position.total_debt_base, unit),
        "available_borrows_base": str(position.available_borrows_base),
        "liquidation_threshold": position.current_liquidation_threshold,
        "ltv": position.ltv,
        "emode_category": position.emode_category,
        "user_configuration": str(position.user_configuration),
        "legs": _legs_json(position),
    }


def _scan_row(snapshot: MarketSnapshot, now: float) -> dict[str, Any]:
    return {
        "market": snapshot.market,
        "block": snapshot.block,
        "block_hash": snapshot.block_hash,
        "timestamp": snapshot.timestamp,
        "positions": len(snapshot.positions),
        "created_at": now,
        "revision": getattr(snapshot, "revision", 0),
    }


def _check_pinned(snapshot: MarketSnapshot) -> None:
    """Every position of a snapshot belongs to its market and its one block."""
    for position in snapshot.positions:
        if position.market != snapshot.market or position.block != snapshot.block:
            raise StoreError(
                f"position of {position.account} is for {position.market}@{position.block},"
                f" not the snapshot's {snapshot.market}@{snapshot.block}: build the snapshot"
                " from one read pinned to one block"
            )


def _decode_position(row: dict[str, Any]) -> dict[str, Any]:
    row["legs"] = json.loads(row["legs"]) if row["legs"] else []
    return row


def _reserve_from_params(params: dict[str, Any], price: dict[str, Any]) -> Reserve:
    return Reserve(
        **params, liquidity_index=int(price["liquidity_index"]),
        variable_borrow_index=int(price["variable_borrow_index"]), price=int(price["price"]),
    )  # fmt: skip


def _emode_from_row(c: dict[str, Any]) -> EModeCategory:
    return EModeCategory(
        c["id"], c["ltv"], c["liquidation_threshold"], c["liquidation_bonus"], c["price_source"], c["label"],
        collateral_bitmap=_optional_int(c["collateral_bitmap"]),
        borrowable_bitmap=_optional_int(c["borrowable_bitmap"]), ltv_zero_bitmap=int(c["ltv_zero_bitmap"]),
    )  # fmt: skip


def _reserve_from_row(r: dict[str, Any], price: dict[str, Any]) -> Reserve:
    return Reserve(
        asset=r["asset"], symbol=r["symbol"], decimals=r["decimals"], reserve_id=r["reserve_id"], ltv=r["ltv"],
        liquidation_threshold=r["liquidation_threshold"], liquidation_bonus=r["liquidation_bonus"],
        emode_category=r["emode_category"], active=bool(r["active"]), frozen=bool(r["frozen"]),
        borrowing_enabled=bool(r["borrowing_enabled"]), a_token=r["a_token"], stable_debt_token=r["stable_debt_token"],
        variable_debt_token=r["variable_debt_token"], liquidity_index=int(price["liquidity_index"]),
        variable_borrow_index=int(price["variable_borrow_index"]), price=int(price["price"]),
        liquidation_protocol_fee=r["liquidation_protocol_fee"], paused=bool(r["paused"]),
        liquidation_grace_period_until=r["liquidation_grace_period_until"],
    )  # fmt: skip


def _position_from_row(p: dict[str, Any], reserves: Sequence[Reserve]) -> Position:
    stored = {leg["asset"]: leg for leg in json.loads(p["legs"] or "[]")}
    legs = []
    for r in reserves:
        leg = stored.get(r.asset)
        if leg is None:
            legs.append(AssetLeg(r.asset, r.symbol, 0, 0, 0, 0, 0, False))
            continue
        legs.append(
            AssetLeg(
                r.asset, r.symbol, int(leg["scaled_collateral"]), int(leg["collateral"]),
                int(leg["scaled_variable_debt"]), int(leg["variable_debt"]), int(leg["stable_debt"]),
                bool(leg["used_as_collateral"]),
            )
        )  # fmt: skip
    return Position(
        market=p["market"], account=p["account"], block=p["block"], health_factor=int(p["health_factor_wad"]),
        total_collateral_base=int(p["collateral_base"]), total_debt_base=int(p["debt_base"]),
        available_borrows_base=int(p["available_borrows_base"]),
        current_liquidation_threshold=p["liquidation_threshold"], ltv=p["ltv"], emode_category=p["emode_category"],
        user_configuration=int(p["user_configuration"]), legs=tuple(legs),
    )  # fmt: skip


# --------------------------------------------------------------------------- change-only rows


def _rules(revision: int) -> AaveRules:
    """The Aave rounding of a stored revision (0, "not read", is 3.0)."""
    return rules_for(revision or 1)


def _leg_amounts(leg: dict[str, Any], reserve_state: dict[str, Any], rules: AaveRules) -> tuple[int, int]:
    """(collateral, variable debt) of a stored leg at a block: as stored (other protocols,
    migrated rows), else the scaled balances times the block's indexes (Aave's rounding)."""
    if leg["collateral"] is not None:
        collateral = int(leg["collateral"])
    else:
        index = reserve_state.get("liquidity_index")
        collateral = a_token_balance(int(leg["scaled_collateral"]), int(index), rules) if index is not None else 0
    if leg["variable_debt"] is not None:
        debt = int(leg["variable_debt"])
    else:
        index = reserve_state.get("variable_borrow_index")
        debt = variable_debt_balance(int(leg["scaled_variable_debt"]), int(index), rules) if index is not None else 0
    return collateral, debt


def _leg_dict(asset: tuple[str, str, int], leg: dict[str, Any], reserve_state: dict[str, Any],
              rules: AaveRules) -> dict[str, Any]:  # fmt: skip
    """A leg as :meth:`AssetLeg.as_dict` gives it."""
    collateral, debt = _leg_amounts(leg, reserve_state, rules)
    return {
        "asset": asset[0], "symbol": asset[1], "scaled_collateral": str(leg["scaled_collateral"]),
        "collateral": str(collateral), "scaled_variable_debt": str(leg["scaled_variable_debt"]),
        "variable_debt": str(debt), "stable_debt": str(leg["stable_debt"]),
        "used_as_collateral": bool(leg["used_as_collateral"]),
    }  # fmt: skip


def _held(leg: dict[str, Any]) -> bool:
    return bool(leg["collateral"] != "0" or leg["variable_debt"] != "0" or leg["stable_debt"] != "0")


def _position_dict(
    market: str, account: str, row: dict[str, Any], unit: int, legs: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """A stored position row in the shape ``history`` has always printed (schema <= 8 columns)."""
    hf = MAX_UINT256 if row["health_factor"] is None else int(row["health_factor"])
    return {
        "market": market,
        "account": account,
        "block": row["block"],
        "timestamp": row["timestamp"],
        "health_factor": format_wad(hf),
        "health_factor_wad": str(hf),
        "hf": None if hf == MAX_UINT256 else hf / WAD,
        "collateral_base": row["collateral_base"],
        "debt_base": row["debt_base"],
        "collateral_usd": _usd(int(row["collateral_base"]), unit),
        "debt_usd": _usd(int(row["debt_base"]), unit),
        "available_borrows_base": row["available_borrows_base"],
        "liquidation_threshold": row["liquidation_threshold"],
        "ltv": row["ltv"],
        "emode_category": row["emode_category"],
        "user_configuration": row["user_configuration"],
        "legs": [leg for leg in legs if _held(leg)],
        "written_because": reason_names(row["reason"]),
    }


def _position_at(
    market: str,
    block: int,
    row: dict[str, Any],
    reserves: Sequence[Reserve],
    legs: dict[str, dict[str, Any]],
    rules: AaveRules,
) -> Position:
    """The position in force at ``block``: the legs at that block (exact: scaled balances and
    the block's indexes), HF and totals from the account's last written row."""
    out = []
    for r in reserves:
        leg = legs.get(r.asset)
        if leg is None:
            out.append(AssetLeg(r.asset, r.symbol, 0, 0, 0, 0, 0, False))
            continue
        state = {"liquidity_index": r.liquidity_index, "variable_borrow_index": r.variable_borrow_index}
        collateral, debt = _leg_amounts(leg, state, rules)
        out.append(AssetLeg(r.asset, r.symbol, int(leg["scaled_collateral"]), collateral,
                            int(leg["scaled_variable_debt"]), debt, int(leg["stable_debt"]),
                            bool(leg["used_as_collateral"])))  # fmt: skip
    return Position(
        market=market, account=row["account"], block=block,
        health_factor=MAX_UINT256 if row["health_factor"] is None else int(row["health_factor"]),
        total_collateral_base=int(row["collateral_base"]), total_debt_base=int(row["debt_base"]),
        available_borrows_base=int(row["available_borrows_base"]),
        current_liquidation_threshold=row["liquidation_threshold"], ltv=row["ltv"],
        emode_category=row["emode_category"], user_configuration=int(row["user_configuration"]), legs=tuple(out),
        health_factor_stored_index=None if row["hf_stored_index"] is None else int(row["hf_stored_index"]),
    )  # fmt: skip
