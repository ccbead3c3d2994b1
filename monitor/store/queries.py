"""Reading the history: positions, prices, scans, whole snapshots."""

from __future__ import annotations

import json
from bisect import bisect_right
from dataclasses import replace
from typing import Any

from monitor.errors import StoreError
from monitor.models import EModeCategory, MarketSnapshot, Position
from monitor.store.base import StoreBase
from monitor.store.history import AAVE, CLOSED
from monitor.store.rows import (
    _emode_from_row,
    _leg_dict,
    _position_at,
    _position_dict,
    _reserve_from_params,
    _reserve_from_row,
    _rules,
)
from monitor.store.schema import ADDRESS_KEYS
from monitor.store.sql import _live, _market_clause, _where


class QueriesMixin(StoreBase):
    """Position, price and scan queries; ``load_snapshot``."""

    def position_history(
        self,
        account: str,
        *,
        market: str | None = None,
        since_block: int | None = None,
        since_time: float | None = None,
    ) -> list[dict[str, Any]]:
        """An account's stored position rows ordered by block (then market), each with the
        legs in force at its block (``legs``: list of dicts, exact integers as text) and why
        it was written (``written_because``). Rows are change-only (see monitor.store.history)."""
        out: list[dict[str, Any]] = []
        for acc, mkt, checksummed in self._history.account_id(account, market):
            unit = self._unit(mkt)
            rows = self._history.account_rows(acc, mkt, since_block, since_time)
            if not rows:
                continue
            upto = rows[-1]["block"]
            legs = _LegWalk(self, mkt, self._history.account_legs(acc, mkt, upto=upto), upto)
            for row in rows:
                if row["reason"] & CLOSED:
                    continue
                out.append(_position_dict(mkt, checksummed, row, unit, legs.at(row["block"])))
        return sorted(out, key=lambda r: (r["block"], r["market"]))

    def latest_positions(self, market: str | None = None) -> list[dict[str, Any]]:
        """Each account's newest stored row as of the newest scanned block of its market
        (``block``: where the row was written, ``as_of_block``: that newest scan), riskiest
        first: sorted by ``hf`` ascending, positions without debt (``hf`` None) last."""
        out: list[dict[str, Any]] = []
        newest = self._rows(
            f"SELECT market, max(block) AS block FROM scans AS sc WHERE {_live('sc')} GROUP BY market", []
        )
        for scan in newest:
            if market is not None and scan["market"] != market:
                continue
            out += self._positions_at(scan["market"], scan["block"])
        return sorted(out, key=lambda r: (r["hf"] is None, r["hf"] or 0.0, r["market"], r["account"]))

    def _positions_at(self, market: str, block: int) -> list[dict[str, Any]]:
        unit = self._unit(market)
        assets = self._history.assets(market)
        state = self._history.reserve_state_at(market, block)
        rules = _rules(self._revision_at(market, block))
        legs_by_account = self._history.legs_at(market, block)
        out = []
        for row in self._history.positions_at(market, block):
            legs = [
                _leg_dict(assets[aid], leg, state.get(aid, {}), rules)
                for aid, leg in sorted(legs_by_account.get(row["account_id"], {}).items())
            ]
            out.append({**_position_dict(market, row["account"], row, unit, legs), "as_of_block": block})
        return out

    def price_history(
        self,
        market: str,
        asset: str | None = None,
        *,
        since_block: int | None = None,
        since_time: float | None = None,
        after_block: int | None = None,
    ) -> list[dict[str, Any]]:
        """Price rows of a market ordered by block (a row where a price changed);
        ``asset`` is an address or a symbol. ``after_block``: only rows newer than it (the
        daemon's incremental read: the cost is the rows returned, indexed by asset and
        block / time). Rows: market, asset, symbol, block, timestamp, price (exact), price_usd."""
        assets = self._history.assets(market)
        if asset is not None:
            key = asset.lower()
            assets = {i: a for i, a in assets.items() if a[0].lower() == key or a[1].lower() == key}
            if not assets:
                return []
        rows = self._history.price_rows(
            market, list(assets), since_block=since_block, since_time=since_time, after_block=after_block
        )
        return [
            {"market": market, "asset": assets[aid][0], "symbol": assets[aid][1], "block": block, "timestamp": ts,
             "price": price, "price_usd": usd}
            for aid, block, ts, price, usd in rows
        ]  # fmt: skip

    def _unit(self, market: str) -> int:
        found = self._db.execute("SELECT base_currency_unit FROM markets WHERE name = ?", [market]).fetchone()
        return int(found[0]) if found else 1

    def _revision_at(self, market: str, block: int) -> int:
        found = self._db.execute(
            "SELECT revision FROM scans WHERE market = ? AND block <= ? ORDER BY block DESC, id DESC LIMIT 1",
            [market, block],
        ).fetchone()
        return int(found[0]) if found else 0

    def load_snapshot(self, market: str, block: int | None = None) -> MarketSnapshot:
        """Rebuild the snapshot stored for ``market`` at ``block`` (default: its newest scan),
        exact integers included, so risk questions need no node."""
        return snapshot_from_rows(self, market, block)

    def markets(self) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM markets ORDER BY name", [])

    def scans(self, market: str | None = None) -> list[dict[str, Any]]:
        """Scans of blocks not marked orphaned, in the order they were stored."""
        where, params = _where([*_market_clause("market", market), (_live("scans"), ())])
        return self._rows(f"SELECT * FROM scans {where} ORDER BY id", params)


def snapshot_from_rows(store: QueriesMixin, market: str, block: int | None) -> MarketSnapshot:
    rows = store._rows
    found = rows("SELECT * FROM markets WHERE name = ?", [market])
    if not found:
        known = ", ".join(m["name"] for m in store.markets()) or "none"
        raise StoreError(
            f"no stored scan of market {market!r} in {store.path} (stored markets: {known}); run `liqmon scan` first"
        )
    meta = found[0]
    if block is None:
        block = rows(f"SELECT max(block) AS b FROM scans AS s WHERE market = ? AND {_live('s')}", [market])[0]["b"]
    scan = rows(
        f"SELECT * FROM scans AS s WHERE market = ? AND block = ? AND {_live('s')} ORDER BY id DESC LIMIT 1",
        [market, block],
    )
    if not scan:
        raise StoreError(f"market {market!r} has no stored scan at block {block} in {store.path}")
    history = store._history
    assets = {a[0]: i for i, a in history.assets(market).items()}
    state = history.reserve_state_at(market, block)
    prices = {asset: state[i] for asset, i in assets.items() if i in state}
    params = rows(
        f"SELECT * FROM market_params AS mp WHERE market = ? AND block <= ? AND {_live('mp')}"
        " ORDER BY block DESC LIMIT 1",
        [market, block],
    )
    if params:  # the parameters in force at the block
        reserve_params = json.loads(params[0]["reserves"])
        category_rows = json.loads(params[0]["emode_categories"])
    else:  # stored before schema 6: the newest parameters
        reserve_params = rows("SELECT * FROM reserves WHERE market = ? ORDER BY reserve_id", [market])
        category_rows = rows("SELECT * FROM emode_categories WHERE market = ? ORDER BY id", [market])
    if any(prices.get(r["asset"], {}).get("liquidity_index") is None for r in reserve_params):
        raise StoreError(f"the scan of {market} at block {block} predates reserve indexes: scan again")
    if params:
        reserves = tuple(_reserve_from_params(r, prices[r["asset"]]) for r in reserve_params)
        categories = tuple(EModeCategory(**c) for c in category_rows)
    else:
        reserves = tuple(_reserve_from_row(r, prices[r["asset"]]) for r in reserve_params)
        categories = tuple(_emode_from_row(c) for c in category_rows)
    rules = _rules(scan[0]["revision"])
    by_id = {i: asset for asset, i in assets.items()}
    legs_at = history.legs_at(market, block)
    stale: list[int] = []  # positions whose last row is older than the block
    positions_list: list[Position] = []
    for p in history.positions_at(market, block):
        legs = {by_id[a]: leg for a, leg in legs_at.get(p["account_id"], {}).items()}
        if p["block"] != block:
            stale.append(len(positions_list))
        positions_list.append(_position_at(market, block, p, reserves, legs, rules))
    snapshot = MarketSnapshot(
        market=market, protocol=meta["protocol"], chain_id=meta["chain_id"], block=block,
        block_hash=scan[0]["block_hash"], timestamp=scan[0]["timestamp"],
        base_currency_unit=int(meta["base_currency_unit"]), reserves=reserves, emode_categories=categories,
        positions=(), addresses={k: meta[k] for k in ADDRESS_KEYS if meta.get(k)},
        revision=scan[0]["revision"],
    )  # fmt: skip
    if meta["protocol"] == AAVE and stale:
        positions_list = _recomputed(snapshot, positions_list, stale)
    positions = tuple(positions_list)
    return MarketSnapshot(
        market=market, protocol=meta["protocol"], chain_id=meta["chain_id"], block=block,
        block_hash=scan[0]["block_hash"], timestamp=scan[0]["timestamp"],
        base_currency_unit=int(meta["base_currency_unit"]), reserves=reserves, emode_categories=categories,
        positions=positions, addresses={k: meta[k] for k in ADDRESS_KEYS if meta.get(k)},
        revision=scan[0]["revision"],
    )  # fmt: skip


class _LegWalk:
    """An account's leg rows walked in block order: the legs in force at a block, with the
    unscaled balances at that block's indexes."""

    def __init__(self, store: QueriesMixin, market: str, legs: list[dict[str, Any]], upto: int) -> None:
        self._legs = legs
        self._assets = store._history.assets(market)
        self._store, self._market = store, market
        self._i = 0
        self._current: dict[int, dict[str, Any]] = {}
        self._indexes: dict[int, list[tuple[int, str, str]]] = {}
        ids = sorted({leg["asset_id"] for leg in legs})
        if ids and legs:
            marks = ", ".join("?" * len(ids))
            for aid, block, li, vbi in store._history.db.execute(
                f"SELECT asset_id, block, liquidity_index, variable_borrow_index FROM reserve_indexes"
                f" WHERE asset_id IN ({marks}) AND block <= ? AND block NOT IN"
                " (SELECT ob.block FROM orphaned_blocks ob WHERE ob.market = ?) ORDER BY asset_id, block",
                [*ids, upto, market],
            ):
                self._indexes.setdefault(int(aid), []).append((int(block), str(li), str(vbi)))
        self._blocks = {aid: [b for b, _, _ in rows] for aid, rows in self._indexes.items()}
        self._revisions: dict[int, int] = {}

    def at(self, block: int) -> list[dict[str, Any]]:
        while self._i < len(self._legs) and self._legs[self._i]["block"] <= block:
            leg = self._legs[self._i]
            self._current[leg["asset_id"]] = leg
            self._i += 1
        if not self._current:
            return []
        rules = _rules(self._store._revision_at(self._market, block))
        out = []
        for aid, leg in sorted(self._current.items()):
            out.append(_leg_dict(self._assets[aid], leg, self._index_at(aid, block), rules))
        return out

    def _index_at(self, aid: int, block: int) -> dict[str, Any]:
        rows = self._indexes.get(aid)
        if not rows:
            return {}
        i = bisect_right(self._blocks[aid], block) - 1
        if i < 0:
            return {}
        return {"liquidity_index": rows[i][1], "variable_borrow_index": rows[i][2]}


def _recomputed(snapshot: MarketSnapshot, positions: list[Position], stale: list[int]) -> list[Position]:
    """Aave positions not written at the snapshot's block: HF and totals recomputed exactly
    (monitor.risk.health) from the legs in force there and the block's indexes and prices,
    what ``getUserAccountData`` answered at that block. Written ones keep their stored figures."""
    from monitor.risk.health import snapshot_account_data  # the protocol's math; risk does not import store

    out = list(positions)
    for i in stale:
        p = out[i]
        data = snapshot_account_data(snapshot, p)
        out[i] = replace(
            p, health_factor=data.health_factor, total_collateral_base=data.total_collateral_base,
            total_debt_base=data.total_debt_base, available_borrows_base=data.available_borrows_base,
            current_liquidation_threshold=data.current_liquidation_threshold, ltv=data.ltv,
        )  # fmt: skip
    return out
