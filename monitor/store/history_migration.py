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
from monitor.protocols.aave_revisions import a_token_balance, rules_for, variable_debt_balance
from monitor.store.history import AAVE, MIGRATED, SqliteExecutor, create_tables
from monitor.store.views import create_views

_LEG_FIELDS = ("scaled_collateral", "scaled_variable_debt", "stable_debt", "used_as_collateral", "collateral",
               "variable_debt")  # fmt: skip


def schema_v9_compact_history(db: sqlite_utils.Database) -> None:
    ex = SqliteExecutor(db.conn)
    create_tables(ex, "sqlite")
    # the newest scan of a market, a block's scan: asked at every write (was a full scan)
    ex.execute("CREATE INDEX IF NOT EXISTS idx_scans_market_block ON scans (market, block)")
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
    # Aave legs: unscaled balances that the scaled ones and the block's indexes give are not
    # stored (NULL: computed at any block); others (other protocols, a mismatch) are kept
    protocols = dict(db.execute("SELECT name, protocol FROM markets").fetchall())
    revisions = {(m, b): r for m, b, r in db.execute("SELECT market, block, revision FROM scans").fetchall()}
    indexes = {
        (m, a, b): (int(li), int(vbi))
        for m, a, b, li, vbi in db.execute(
            "SELECT market, asset, block, liquidity_index, variable_borrow_index FROM prices"
            " WHERE liquidity_index IS NOT NULL"
        ).fetchall()
    }
    accounts: dict[tuple[str, str], int] = {}
    previous: dict[int, dict[int, tuple[str | None, ...]]] = {}
    rows: list[tuple[object, ...]] = []
    legs: list[tuple[object, ...]] = []
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
        now: dict[int, tuple[str | None, ...]] = {}
        aave = protocols.get(market) == AAVE
        rules = rules_for(revisions.get((market, block), 0) or 1)
        for leg in json.loads(legs_json or "[]"):
            aid = asset_id(market, leg["asset"], leg.get("symbol", ""))
            sc, svd, sd, flag, c, vd = (str(int(leg[f])) if f != "used_as_collateral" else str(int(bool(leg[f])))
                                        for f in _LEG_FIELDS)  # fmt: skip
            pair = indexes.get((market, leg["asset"], block)) if aave else None
            stored_c: str | None = c
            stored_vd: str | None = vd
            if pair is not None and a_token_balance(int(sc), pair[0], rules) == int(c):
                stored_c = None
            if pair is not None and variable_debt_balance(int(svd), pair[1], rules) == int(vd):
                stored_vd = None
            now[aid] = (sc, svd, sd, flag, stored_c, stored_vd)
        for aid, values in now.items():
            if before.get(aid) != values:
                legs.append((acc, aid, block, *values[:3], int(values[3] or 0), *values[4:]))
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
