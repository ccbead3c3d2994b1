"""Readable views over the compact history (SQLite; documented in docs/schema.md).

Protocol-neutral names, ISO-8601 UTC times beside epochs, human decimal amounts (REAL,
computed here) beside the exact integers (TEXT). The id columns (``account_id``,
``asset_id``, ``alert_id``) are the keys the tables' foreign keys point at, so datasette
links a view's row to its tables.

- ``positions`` / ``prices``: every stored row with the columns of the old (schema <= 8)
  tables, for scripts written against them;
- ``position_log``: every stored position row, readable (why it was written included);
- ``latest_positions``: each account's newest row (closed accounts left out);
- ``leg_log`` / ``latest_legs``: per-asset balances (every change / in force now) with
  human amounts at the indexes of their block;
- ``at_risk``: latest positions with debt below HF 1.25 or under an active alert;
- ``alert_log``: alerts with their time, account and delivery status;
- ``price_log``: every stored price (a row where it changed) with its time.

The views are remade when their SQL changes (``meta.views_version``), without a migration.
"""

from __future__ import annotations

import hashlib
from typing import Final

import sqlite_utils

VIEW_NAMES: Final = (
    "positions", "prices", "position_log", "latest_positions", "leg_log", "latest_legs", "at_risk", "alert_log",
    "price_log",
)  # fmt: skip

AT_RISK_HF: Final = 1.25

_LIVE = "NOT EXISTS (SELECT 1 FROM orphaned_blocks ob WHERE ob.market = {m} AND ob.block = {b})"
_ISO = "strftime('%Y-%m-%dT%H:%M:%SZ', {t}, 'unixepoch')"
_HF = "CASE WHEN {h} IS NULL THEN NULL ELSE CAST({h} AS REAL) / 1e18 END"
_WAD_TEXT = (
    "CASE WHEN {h} IS NULL THEN 'inf' WHEN length({h}) <= 18 THEN '0.' || substr('000000000000000000' || {h}, -18)"
    " ELSE substr({h}, 1, length({h}) - 18) || '.' || substr({h}, -18) END"
)
# the index in force at a leg's block (the latest reserve_indexes row at or before it)
_INDEX_AT = (
    "(SELECT ri.{col} FROM reserve_indexes ri WHERE ri.asset_id = {a} AND ri.block <= {b}"
    " ORDER BY ri.block DESC LIMIT 1)"
)
_PRICE_AT = (
    "(SELECT pr.price_usd FROM price_rows pr WHERE pr.asset_id = {a} AND pr.block <= {b}"
    " ORDER BY pr.block DESC LIMIT 1)"
)


def _amounts(leg: str, block: str, decimals: str) -> str:
    """Human collateral / debt amounts of a leg at a block (REAL): the stored unscaled balance,
    else scaled x the index in force at the block / 1e27, over 10^decimals."""
    li = _INDEX_AT.format(col="liquidity_index", a=f"{leg}.asset_id", b=block)
    vbi = _INDEX_AT.format(col="variable_borrow_index", a=f"{leg}.asset_id", b=block)
    scale = f"CAST('1e' || {decimals} AS REAL)"
    return (
        f"COALESCE(CAST({leg}.collateral AS REAL), CAST({leg}.scaled_collateral AS REAL) * CAST({li} AS REAL) / 1e27)"
        f" / {scale} AS collateral_amount,\n  (COALESCE(CAST({leg}.variable_debt AS REAL),"
        f" CAST({leg}.scaled_variable_debt AS REAL) * CAST({vbi} AS REAL) / 1e27)"
        f" + CAST({leg}.stable_debt AS REAL)) / {scale} AS debt_amount"
    )


_POSITION_LOG = f"""
SELECT a.market, a.account, r.account_id, r.block, r.timestamp, {_ISO.format(t="r.timestamp")} AS time_utc,
  {_HF.format(h="r.health_factor")} AS health_factor, r.health_factor AS health_factor_wad,
  CAST(r.collateral_base AS REAL) / CAST(m.base_currency_unit AS REAL) AS collateral_value,
  CAST(r.debt_base AS REAL) / CAST(m.base_currency_unit AS REAL) AS debt_value,
  r.collateral_base, r.debt_base, r.available_borrows_base,
  r.liquidation_threshold AS liquidation_threshold_bps, r.ltv AS ltv_bps, r.emode_category AS category,
  r.user_configuration, r.reason,
  trim((CASE WHEN r.reason & 1 THEN 'first ' ELSE '' END) || (CASE WHEN r.reason & 2 THEN 'balances ' ELSE '' END)
    || (CASE WHEN r.reason & 4 THEN 'band ' ELSE '' END) || (CASE WHEN r.reason & 8 THEN 'move ' ELSE '' END)
    || (CASE WHEN r.reason & 16 THEN 'heartbeat ' ELSE '' END) || (CASE WHEN r.reason & 32 THEN 'closed ' ELSE '' END)
    || (CASE WHEN r.reason & 64 THEN 'migrated' ELSE '' END)) AS written_because,
  m.protocol
FROM position_rows r JOIN account_ids a ON a.id = r.account_id LEFT JOIN markets m ON m.name = a.market
WHERE {_LIVE.format(m="a.market", b="r.block")}
"""

_LATEST_POSITIONS = """
SELECT pl.* FROM position_log pl
JOIN (SELECT account_id, MAX(block) AS mb FROM position_rows r JOIN account_ids a ON a.id = r.account_id
      WHERE NOT EXISTS (SELECT 1 FROM orphaned_blocks ob WHERE ob.market = a.market AND ob.block = r.block)
      GROUP BY account_id) x ON x.account_id = pl.account_id AND x.mb = pl.block
WHERE NOT (pl.reason & 32)
"""

_LEG_LOG = f"""
SELECT a.market, a.account, l.account_id, ai.symbol, ai.asset, l.asset_id, l.block,
  (SELECT s.timestamp FROM scans s WHERE s.market = a.market AND s.block = l.block ORDER BY s.id DESC LIMIT 1)
    AS timestamp,
  {_amounts("l", "l.block", "ai.decimals")},
  l.scaled_collateral, l.scaled_variable_debt, l.stable_debt, l.collateral, l.variable_debt,
  l.used_as_collateral, ai.decimals
FROM position_legs l JOIN account_ids a ON a.id = l.account_id JOIN asset_ids ai ON ai.id = l.asset_id
WHERE {_LIVE.format(m="a.market", b="l.block")}
"""

_LATEST_LEGS = f"""
SELECT lp.market, lp.account, lp.account_id, lg.symbol, lg.asset, lg.asset_id, lg.block AS changed_block,
  lp.block, lp.time_utc,
  {_amounts("lg", "lp.block", "lg.decimals")},
  {_PRICE_AT.format(a="lg.asset_id", b="lp.block")} AS price,
  lg.scaled_collateral, lg.scaled_variable_debt, lg.stable_debt, lg.used_as_collateral
FROM latest_positions lp
JOIN leg_log lg ON lg.account_id = lp.account_id AND lg.block = (
  SELECT MAX(l2.block) FROM position_legs l2 WHERE l2.account_id = lg.account_id AND l2.asset_id = lg.asset_id
    AND l2.block <= lp.block AND {_LIVE.format(m="lp.market", b="l2.block")})
WHERE lg.scaled_collateral != '0' OR lg.scaled_variable_debt != '0' OR lg.stable_debt != '0'
"""

_AT_RISK = f"""
SELECT lp.market, lp.account, lp.account_id, lp.block, lp.time_utc, lp.health_factor, lp.collateral_value,
  lp.debt_value, lp.category, COALESCE(st.severity, 'ok') AS severity,
  {_ISO.format(t="st.since")} AS severity_since_utc
FROM latest_positions lp
LEFT JOIN alert_state st ON st.market = lp.market AND st.subject = lp.account
WHERE lp.health_factor_wad IS NOT NULL
  AND (lp.health_factor < {AT_RISK_HF} OR COALESCE(st.severity, 'ok') != 'ok')
"""

_ALERT_LOG = f"""
SELECT al.id AS alert_id, al.market, al.block, al.created_at, {_ISO.format(t="al.created_at")} AS time_utc,
  al.subject, CASE WHEN al.subject LIKE '0x%' THEN al.subject END AS account,
  (SELECT a.id FROM account_ids a WHERE a.market = al.market AND a.account = al.subject) AS account_id,
  al.severity, al.previous, al.reason, al.hf AS health_factor, al.threshold, al.detail,
  (SELECT group_concat(o.channel || ':' || o.status, ', ') FROM outbox o WHERE o.alert_id = al.id) AS deliveries
FROM alerts al
"""

# The old (schema <= 8) columns: every stored row, legs as the JSON blob of the legs in force.
_OLD_POSITIONS = f"""
SELECT a.market, a.account, r.block, r.timestamp, {_WAD_TEXT.format(h="r.health_factor")} AS health_factor,
  COALESCE(r.health_factor, '{2**256 - 1}') AS health_factor_wad, {_HF.format(h="r.health_factor")} AS hf,
  r.collateral_base, r.debt_base,
  CAST(r.collateral_base AS REAL) / CAST(m.base_currency_unit AS REAL) AS collateral_usd,
  CAST(r.debt_base AS REAL) / CAST(m.base_currency_unit AS REAL) AS debt_usd,
  r.available_borrows_base, r.liquidation_threshold, r.ltv, r.emode_category, r.user_configuration,
  (SELECT json_group_array(json_object('asset', ai.asset, 'symbol', ai.symbol,
      'scaled_collateral', l.scaled_collateral, 'scaled_variable_debt', l.scaled_variable_debt,
      'stable_debt', l.stable_debt,
      'used_as_collateral', json(CASE WHEN l.used_as_collateral THEN 'true' ELSE 'false' END)))
    FROM position_legs l JOIN asset_ids ai ON ai.id = l.asset_id
    WHERE l.account_id = r.account_id AND l.block = (SELECT MAX(l2.block) FROM position_legs l2
      WHERE l2.account_id = l.account_id AND l2.asset_id = l.asset_id AND l2.block <= r.block)
      AND (l.scaled_collateral != '0' OR l.scaled_variable_debt != '0' OR l.stable_debt != '0')) AS legs
FROM position_rows r JOIN account_ids a ON a.id = r.account_id LEFT JOIN markets m ON m.name = a.market
WHERE NOT (r.reason & 32)
"""

_OLD_PRICES = f"""
SELECT ai.market, ai.asset, p.block, ai.symbol, p.price, p.price_usd, p.timestamp,
  {_INDEX_AT.format(col="liquidity_index", a="p.asset_id", b="p.block")} AS liquidity_index,
  {_INDEX_AT.format(col="variable_borrow_index", a="p.asset_id", b="p.block")} AS variable_borrow_index
FROM price_rows p JOIN asset_ids ai ON ai.id = p.asset_id
"""

_PRICE_LOG = f"""
SELECT ai.market, ai.symbol, ai.asset, p.asset_id, p.block, p.timestamp, {_ISO.format(t="p.timestamp")} AS time_utc,
  p.price_usd AS price, p.price AS price_exact, m.base_currency_unit
FROM price_rows p JOIN asset_ids ai ON ai.id = p.asset_id LEFT JOIN markets m ON m.name = ai.market
WHERE {_LIVE.format(m="ai.market", b="p.block")}
"""

VIEWS: Final = {
    "positions": _OLD_POSITIONS,
    "prices": _OLD_PRICES,
    "position_log": _POSITION_LOG,
    "latest_positions": _LATEST_POSITIONS,
    "leg_log": _LEG_LOG,
    "latest_legs": _LATEST_LEGS,
    "at_risk": _AT_RISK,
    "alert_log": _ALERT_LOG,
    "price_log": _PRICE_LOG,
}

# changes with the SQL of any view: a database whose views were made by another text gets them again
VIEWS_VERSION: Final = hashlib.sha256("".join(VIEWS[n] for n in VIEW_NAMES).encode()).hexdigest()[:16]


def create_views(db: sqlite_utils.Database) -> None:
    """(Re)create every view (dependants after what they read) and record their version."""
    for name in (*reversed(VIEW_NAMES), *(v for v in db.view_names() if v not in VIEW_NAMES and v in _OLD_NAMES)):
        db.execute(f"DROP VIEW IF EXISTS {name}")
    for name in VIEW_NAMES:
        db.execute(f"CREATE VIEW {name} AS {VIEWS[name].strip()}")
    db.execute(
        "INSERT INTO meta (key, value) VALUES ('views_version', ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        [VIEWS_VERSION],
    )


_OLD_NAMES: Final = frozenset[str]()  # views of earlier texts that are gone (dropped when the views are remade)


def views_current(db: sqlite_utils.Database) -> bool:
    row = db.execute("SELECT value FROM meta WHERE key = 'views_version'").fetchone()
    return row is not None and row[0] == VIEWS_VERSION
