"""Reading the history: positions, prices, scans, whole snapshots."""

from __future__ import annotations

import json
from typing import Any

from monitor.errors import StoreError
from monitor.models import EModeCategory, MarketSnapshot
from monitor.store.base import StoreBase
from monitor.store.rows import (
    _decode_position,
    _emode_from_row,
    _position_from_row,
    _reserve_from_params,
    _reserve_from_row,
)
from monitor.store.schema import ADDRESS_KEYS
from monitor.store.sql import Clause, _live, _market_clause, _where


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
        """An account's position rows ordered by block (``legs`` decoded from JSON)."""
        clauses: list[Clause] = [("account = ? COLLATE NOCASE", (account,)), (_live("positions"), ())]
        if market is not None:
            clauses.append(("market = ?", (market,)))
        if since_block is not None:
            clauses.append(("block >= ?", (since_block,)))
        if since_time is not None:
            clauses.append(("timestamp >= ?", (since_time,)))
        where, params = _where(clauses)
        rows = self._rows(f"SELECT * FROM positions {where} ORDER BY block, market", params)
        return [_decode_position(row) for row in rows]

    def latest_positions(self, market: str | None = None) -> list[dict[str, Any]]:
        """Each account's row at the newest scanned block of its market, riskiest first.

        Sorted by ``hf`` ascending; positions without debt (``hf`` NULL) come last.
        """
        where, params = _where(_market_clause("p.market", market))
        sql = (
            "SELECT p.* FROM positions AS p"
            f" JOIN (SELECT market, max(block) AS block FROM scans AS sc WHERE {_live('sc')} GROUP BY market) AS s"
            " ON p.market = s.market AND p.block = s.block"
            f" {where} ORDER BY p.hf IS NULL, p.hf, p.market, p.account"
        )
        return [_decode_position(row) for row in self._rows(sql, params)]

    def price_history(
        self,
        market: str,
        asset: str | None = None,
        *,
        since_block: int | None = None,
        since_time: float | None = None,
    ) -> list[dict[str, Any]]:
        """Price rows of a market ordered by block; ``asset`` is an address or a symbol."""
        clauses: list[Clause] = [("market = ?", (market,)), (_live("prices"), ())]
        if asset is not None:
            clauses.append(("(asset = ? COLLATE NOCASE OR symbol = ? COLLATE NOCASE)", (asset, asset)))
        if since_block is not None:
            clauses.append(("block >= ?", (since_block,)))
        if since_time is not None:
            clauses.append(("timestamp >= ?", (since_time,)))
        where, params = _where(clauses)
        return self._rows(f"SELECT * FROM prices {where} ORDER BY block, asset", params)

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
    prices = {r["asset"]: r for r in rows("SELECT * FROM prices WHERE market = ? AND block = ?", [market, block])}
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
    positions = tuple(
        _position_from_row(p, reserves)
        for p in rows("SELECT * FROM positions WHERE market = ? AND block = ? ORDER BY account", [market, block])
    )
    return MarketSnapshot(
        market=market, protocol=meta["protocol"], chain_id=meta["chain_id"], block=block,
        block_hash=scan[0]["block_hash"], timestamp=scan[0]["timestamp"],
        base_currency_unit=int(meta["base_currency_unit"]), reserves=reserves, emode_categories=categories,
        positions=positions, addresses={k: meta[k] for k in ADDRESS_KEYS if meta.get(k)},
        revision=scan[0]["revision"],
    )  # fmt: skip
