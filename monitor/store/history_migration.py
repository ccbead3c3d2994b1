"""Schema 9: the write-everything ``positions`` / ``prices`` tables become the change-only
history (:mod:`monitor.store.history`), every existing row kept.

- every old position row becomes a ``position_rows`` row (reason ``migrated``) with the same
  HF and totals; its legs (a JSON blob) become ``position_legs`` rows where a leg changed
  since the account's previous row (unscaled balances kept as they were stored, so every old
  block reads back exactly what was written), a zero row where a leg disappeared;
- every old price row becomes a ``price_rows`` row and, where it had indexes, a
  ``reserve_indexes`` row (no row is merged away);
- the old tables go; the readable views (:mod:`monitor.store.views`) take their place,
  ``positions`` and ``prices`` among them, with the old columns.
"""

from __future__ import annotations

import json

import sqlite_utils

from monitor.models import MAX_UINT256
from monitor.store.history import MIGRATED, SqliteExecutor, create_tables
from monitor.store.views import create_views

_LEG_FIELDS = ("scaled_collateral", "scaled_variable_debt", "stable_debt", "used_as_collateral", "collateral",
               "variable_debt")  # fmt: skip


def schema_v9_compact_history(db: sqlite_utils.Database) -> None:
    ex = SqliteExecutor(db.conn)
    create_tables(ex, "sqlite")
    has_old = db.table("positions").exists() and db["positions"].columns_dict.get("legs") is not None
    if has_old:
        _move_rows(db, ex)
        db.execute("DROP TABLE positions")
        db.execute("DROP TABLE prices")
    create_views(db)


def _move_rows(db: sqlite_utils.Database, ex: SqliteExecutor) -> None:
    decimals = {(m, a): d for m, a, d in db.execute("SELECT market, asset, decimals FROM reserves").fetchall()}
    assets: dict[tuple[str, str], int] = {}

    def asset_id(market: str, asset: str, symbol: str) -> int:
        key = (market, asset)
        if key not in assets:
            assets[key] = len(assets) + 1
            ex.execute("INSERT INTO asset_ids (id, market, asset, symbol, decimals) VALUES (?, ?, ?, ?, ?)",
                       [assets[key], market, asset, symbol, decimals.get(key, 0)])  # fmt: skip
        return assets[key]

    for market, asset, symbol in db.execute("SELECT DISTINCT market, asset, symbol FROM prices ORDER BY market, asset"):
        asset_id(market, asset, symbol)
    ex.execute(
        "INSERT INTO price_rows (asset_id, block, timestamp, price, price_usd) SELECT ai.id, p.block, p.timestamp,"
        " p.price, p.price_usd FROM prices p JOIN asset_ids ai ON ai.market = p.market AND ai.asset = p.asset"
    )
    ex.execute(
        "INSERT INTO reserve_indexes (asset_id, block, liquidity_index, variable_borrow_index)"
        " SELECT ai.id, p.block, p.liquidity_index, p.variable_borrow_index FROM prices p"
        " JOIN asset_ids ai ON ai.market = p.market AND ai.asset = p.asset WHERE p.liquidity_index IS NOT NULL"
    )
    accounts: dict[tuple[str, str], int] = {}
    previous: dict[int, dict[int, tuple[str, ...]]] = {}
    rows, legs = [], []
    cursor = db.execute(
        "SELECT market, account, block, timestamp, health_factor_wad, collateral_base, debt_base,"
        " available_borrows_base, liquidation_threshold, ltv, emode_category, user_configuration, legs"
        " FROM positions ORDER BY market, account, block"
    )
    for market, account, block, ts, hf, coll, debt, avail, lt, ltv, emode, config, legs_json in cursor:
        if (market, account) not in accounts:
            accounts[(market, account)] = len(accounts) + 1
        acc = accounts[(market, account)]
        rows.append((acc, block, ts, MIGRATED, None if hf == str(MAX_UINT256) else hf, coll, debt, avail, lt, ltv,
                     emode, config, None))  # fmt: skip
        before = previous.get(acc, {})
        now: dict[int, tuple[str, ...]] = {}
        for leg in json.loads(legs_json or "[]"):
            aid = asset_id(market, leg["asset"], leg.get("symbol", ""))
            now[aid] = tuple(str(int(leg[f])) if f != "used_as_collateral" else str(int(bool(leg[f])))
                             for f in _LEG_FIELDS)  # fmt: skip
        for aid, values in now.items():
            if before.get(aid) != values:
                sc, svd, sd, flag, c, vd = values
                legs.append((acc, aid, block, sc, svd, sd, int(flag), c, vd))
        for aid in before.keys() - now.keys():
            legs.append((acc, aid, block, "0", "0", "0", 0, "0", "0"))
        previous[acc] = now
    ex.executemany("INSERT INTO account_ids (id, market, account) VALUES (?, ?, ?)",
                   [(i, m, a) for (m, a), i in accounts.items()])  # fmt: skip
    ex.executemany(
        "INSERT INTO position_rows (account_id, block, timestamp, reason, health_factor, collateral_base, debt_base,"
        " available_borrows_base, liquidation_threshold, ltv, emode_category, user_configuration, hf_stored_index)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    ex.executemany(
        "INSERT INTO position_legs (account_id, asset_id, block, scaled_collateral, scaled_variable_debt, stable_debt,"
        " used_as_collateral, collateral, variable_debt) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        legs,
    )
