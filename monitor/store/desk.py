"""Questions a risk desk asks of the history, market-wide: every position below an HF at a
stored block, every position that went below it within a range of blocks, and a portfolio view
across markets (positions, collateral, debt, at-risk counts, accounts in several markets).

Everything is read from the change-only tables through the store's own reads: a position at a
block is the one :meth:`QueriesMixin.load_snapshot` rebuilds for that block (its latest row at
or before it), so "below 1.2 at block B" here is exactly what the snapshot of B holds below 1.2.
HF limits compare exactly, as WAD integers.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from monitor.models import MAX_UINT256, WAD, MarketSnapshot, Position, format_wad
from monitor.store.base import StoreBase
from monitor.store.history import AAVE as AAVE_PROTOCOL
from monitor.store.history import CLOSED, LEG_COLUMNS, POSITION_COLUMNS, _latest
from monitor.store.queries import QueriesMixin
from monitor.store.rows import _position_at, _rules
from monitor.store.sql import _live


@dataclass(frozen=True, slots=True)
class StoredRange:
    """The live scans of one market: first and newest block, with their block times."""

    market: str
    chain_id: int
    first_block: int
    first_time: int
    last_block: int
    last_time: int
    scans: int


_CHUNK = 5_000  # account ids per IN (...) list (SQLite allows 32,766 parameters)
# a leg in force with any of these non-zero is held (History.legs_at's test)
_LEG_AMOUNTS = ("scaled_collateral", "scaled_variable_debt", "stable_debt", "used_as_collateral", "collateral",
                "variable_debt")


def hf_wad(hf: float | str | Decimal) -> int:
    """An HF limit as a WAD integer (1.2 -> 1_200_000_000_000_000_000, exactly)."""
    return int(Decimal(str(hf)) * WAD)


def _has_debt(health_factor: int | None) -> bool:
    return health_factor is not None and health_factor != MAX_UINT256


class DeskMixin(StoreBase):
    """Market-wide reads for ``liqmon history --below / --portfolio`` and ``stress --all-markets``
    (composed into :class:`monitor.store.Store` beside :class:`QueriesMixin`, whose snapshots it reads)."""

    def _snapshot(self, market: str, block: int) -> MarketSnapshot:
        if not isinstance(self, QueriesMixin):
            raise TypeError("DeskMixin needs QueriesMixin in the store class")
        return self.load_snapshot(market, block)

    def stored_range(self, market: str) -> StoredRange | None:
        """First and newest live scan of ``market`` (None: never scanned)."""
        rows = self._rows(
            f"SELECT min(s.block) AS b0, max(s.block) AS b1, count(*) AS n FROM scans AS s WHERE s.market = ?"
            f" AND {_live('s')}",
            [market],
        )
        if not rows or rows[0]["n"] == 0:
            return None
        first, last = int(rows[0]["b0"]), int(rows[0]["b1"])
        found = self._rows(
            "SELECT block, timestamp FROM scans WHERE market = ? AND block IN (?, ?)", [market, first, last]
        )
        times = {int(r["block"]): int(r["timestamp"]) for r in found}
        meta = self._rows("SELECT chain_id FROM markets WHERE name = ?", [market])
        return StoredRange(market, int(meta[0]["chain_id"]) if meta else 0, first, times[first], last, times[last],
                           int(rows[0]["n"]))  # fmt: skip

    def scan_block_at(self, market: str, *, block: int | None = None, timestamp: float | None = None) -> int | None:
        """The newest live scan of ``market`` at or before ``block`` (or block time ``timestamp``):
        the stored state in force then; None when every scan is later."""
        if (block is None) == (timestamp is None):
            raise ValueError("give exactly one of block, timestamp")
        column, value = ("block", block) if block is not None else ("timestamp", timestamp)
        rows = self._rows(
            f"SELECT max(s.block) AS b FROM scans AS s WHERE s.market = ? AND s.{column} <= ? AND {_live('s')}",
            [market, value],
        )
        return None if not rows or rows[0]["b"] is None else int(rows[0]["b"])

    def scan_time(self, market: str, block: int) -> int:
        """The block time of the live scan of ``market`` at ``block`` (0 if there is none)."""
        rows = self._rows(
            f"SELECT max(s.timestamp) AS t FROM scans AS s WHERE s.market = ? AND s.block = ? AND {_live('s')}",
            [market, block],
        )
        return int(rows[0]["t"]) if rows and rows[0]["t"] is not None else 0

    def positions_below(self, market: str, hf: float | str | Decimal, block: int) -> list[dict[str, Any]]:
        """Every position of the snapshot of ``market`` at the scanned ``block`` with debt and an
        HF below ``hf`` (exact WAD comparison), lowest HF first."""
        snapshot = self._snapshot(market, block)
        limit = hf_wad(hf)
        below = [p for p in snapshot.positions if _has_debt(p.health_factor) and p.health_factor < limit]
        below.sort(key=lambda p: (p.health_factor, p.account))
        return [position_row(snapshot, p) for p in below]

    def positions_below_between(
        self, market: str, hf: float | str | Decimal, first_block: int, last_block: int
    ) -> list[dict[str, Any]]:
        """Every account of ``market`` below ``hf`` in the snapshot of some stored scan of
        [``first_block``, ``last_block``] (first_block and last_block: scanned blocks), exactly
        as :meth:`positions_below` at each of them would say, without rebuilding every one.

        A written row holds the exact figures of its block. Between rows an Aave HF moves with
        prices and indexes (the snapshot recomputes it), but the history policy bounds it: no row
        means the same HF band and a move below ``hf_move`` since the row, so the HF stays above
        max(band floor, row HF x (1 - hf_move)). Only the scans where an account's bound falls
        under ``hf`` are rebuilt; other protocols' snapshots carry the row's HF (no rebuild).
        Per account: its lowest HF and where, the first block below, and its state at
        ``last_block``; lowest first."""
        limit = hf_wad(hf)
        start, end = self._snapshot(market, first_block), self._snapshot(market, last_block)
        unit = start.base_currency_unit
        lows: dict[str, dict[str, Any]] = {}

        def seen(account: str, block: int, ts: int, health: int | None, coll: int, debt: int) -> None:
            if not _has_debt(health) or int(health or 0) >= limit:
                return
            h = int(health or 0)
            low = lows.get(account)
            if low is None:
                lows[account] = {"hf": h, "block": block, "ts": ts, "first": block, "first_ts": ts, "coll": coll,
                                 "debt": debt}  # fmt: skip
                return
            if block < low["first"]:
                low["first"], low["first_ts"] = block, ts
            if (h, block) < (low["hf"], low["block"]):
                low.update(hf=h, block=block, ts=ts, coll=coll, debt=debt)

        def snapshot_seen(snap: MarketSnapshot) -> None:
            for p in snap.positions:
                seen(p.account, snap.block, snap.timestamp, p.health_factor, p.total_collateral_base,
                     p.total_debt_base)  # fmt: skip

        snapshot_seen(start)
        rows = self._rows(
            "SELECT a.account, p.block, p.timestamp, p.health_factor, p.collateral_base, p.debt_base, p.reason"
            " FROM position_rows AS p JOIN account_ids AS a ON a.id = p.account_id"
            " WHERE a.market = ? AND p.block > ? AND p.block <= ?"
            " AND p.block NOT IN (SELECT ob.block FROM orphaned_blocks AS ob WHERE ob.market = ?)"
            " ORDER BY p.block",
            [market, first_block, last_block, market],
        )
        for r in rows:
            if not r["reason"] & CLOSED:
                seen(r["account"], int(r["block"]), int(r["timestamp"]),
                     None if r["health_factor"] is None else int(r["health_factor"]), int(r["collateral_base"]),
                     int(r["debt_base"]))  # fmt: skip
        if start.protocol == AAVE_PROTOCOL:
            uncertain = self._uncertain_scans(market, limit, start, rows, first_block, last_block)
            if self._same_parameters(market, start, first_block, last_block):
                for block, accounts in sorted(uncertain.items()):
                    for p, ts in self._recomputed_at(market, start, block, accounts):
                        seen(p.account, block, ts, p.health_factor, p.total_collateral_base, p.total_debt_base)
            else:  # parameters or the Pool revision changed inside the range: whole snapshots
                for block in sorted(uncertain):
                    snapshot_seen(self._snapshot(market, block))
        snapshot_seen(end)
        at_end = {p.account: p for p in end.positions}
        out = []
        for account, low in lows.items():
            last = at_end.get(account)
            out.append({
                "market": market, "account": account,
                "lowest_health_factor": format_wad(low["hf"]), "lowest_hf": low["hf"] / WAD,
                "lowest_block": low["block"], "lowest_timestamp": low["ts"],
                "first_below_block": low["first"], "first_below_timestamp": low["first_ts"],
                "collateral_usd": low["coll"] / unit, "debt_usd": low["debt"] / unit, "last_block": last_block,
                "last_hf": last.health_factor / WAD if last is not None and _has_debt(last.health_factor) else None,
                "closed": last is None,
            })  # fmt: skip
        return sorted(out, key=lambda r: (r["lowest_hf"], r["account"]))

    def _uncertain_scans(
        self, market: str, limit: int, start: MarketSnapshot, rows: list[dict[str, Any]], first: int, last: int
    ) -> dict[int, set[str]]:
        """The scans strictly inside (first, last) where some account without a row there may
        hold an HF below ``limit`` (its bound from the row in force is under it), with those
        accounts."""
        policy = self._history.policy
        bands = sorted(policy.hf_bands)

        def floor(health: int | None) -> int | None:  # the lowest HF possible until the next row
            if not _has_debt(health):
                return None
            h = int(health or 0)
            k = bisect_right(bands, h / WAD)
            edge = hf_wad(bands[k - 1]) if k else 0
            return max(edge, int(h * (1 - policy.hf_move)))

        scans = [int(r["b"]) for r in self._rows(
            f"SELECT DISTINCT s.block AS b FROM scans AS s WHERE s.market = ? AND s.block > ? AND s.block < ?"
            f" AND {_live('s')} ORDER BY s.block", [market, first, last])]  # fmt: skip
        if not scans:
            return {}
        # per account: (from block, floor) segments, from the row in force at ``first`` on
        segments: dict[str, list[tuple[int, int | None]]] = {
            p.account: [(first, floor(p.health_factor))] for p in start.positions
        }
        for r in rows:
            health = None if r["health_factor"] is None or r["reason"] & CLOSED else int(r["health_factor"])
            segments.setdefault(r["account"], []).append((int(r["block"]), floor(health)))
        need: dict[int, set[str]] = {}
        for account, parts in segments.items():
            for k, (begin, low) in enumerate(parts):
                if low is None or low >= limit:
                    continue
                stop = parts[k + 1][0] if k + 1 < len(parts) else last
                for block in scans[bisect_right(scans, begin) : bisect_left(scans, stop)]:
                    need.setdefault(block, set()).add(account)
        return need

    def _same_parameters(self, market: str, start: MarketSnapshot, first: int, last: int) -> bool:
        """No new market parameters and one Pool revision in (first, last]: the reserves of any
        block there are ``start``'s with that block's prices and indexes."""
        changed = self._rows(
            f"SELECT count(*) AS n FROM market_params AS mp WHERE mp.market = ? AND mp.block > ? AND mp.block <= ?"
            f" AND {_live('mp')}",
            [market, first, last],
        )
        revisions = self._rows(
            f"SELECT DISTINCT s.revision AS r FROM scans AS s WHERE s.market = ? AND s.block >= ? AND s.block <= ?"
            f" AND {_live('s')}",
            [market, first, last],
        )
        return int(changed[0]["n"]) == 0 and [int(r["r"] or 0) for r in revisions] == [start.revision or 0]

    def _recomputed_at(
        self, market: str, start: MarketSnapshot, block: int, accounts: set[str]
    ) -> list[tuple[Position, int]]:
        """The positions of ``accounts`` at the scanned ``block`` as its snapshot rebuilds them
        (the same steps as :func:`monitor.store.queries.snapshot_from_rows` for these accounts
        only: the row in force; for a row older than the block, HF and totals recomputed from the
        legs in force and the block's prices and indexes), with the block time."""
        from monitor.risk.health import snapshot_account_data  # the protocol's math (as queries.py); no circle

        history = self._history
        ids = {a[0]: i for i, a in history.assets(market).items()}
        by_id = {i: a for a, i in ids.items()}
        state = history.reserve_state_at(market, block)
        reserves = tuple(
            replace(r, price=int(state[ids[r.asset]]["price"]),
                    liquidity_index=int(state[ids[r.asset]]["liquidity_index"]),
                    variable_borrow_index=int(state[ids[r.asset]]["variable_borrow_index"]))
            for r in start.reserves
        )  # fmt: skip
        ts = self.scan_time(market, block)
        light = replace(start, block=block, timestamp=ts, reserves=reserves, positions=())
        rules = _rules(start.revision or 0)
        wanted = [i for a, i in self._account_ids(market).items() if a in accounts]
        rows, legs_at = self._in_force(market, block, wanted)
        out = []
        for row in rows:
            legs = {by_id[a]: leg for a, leg in legs_at.get(row["account_id"], {}).items()}
            p = _position_at(market, block, row, reserves, legs, rules)
            if row["block"] != block:
                data = snapshot_account_data(light, p)
                p = replace(p, health_factor=data.health_factor, total_collateral_base=data.total_collateral_base,
                            total_debt_base=data.total_debt_base)  # fmt: skip
            out.append((p, ts))
        return out

    def portfolio(self, blocks: dict[str, int], at_risk_hf: float | str | Decimal) -> dict[str, Any]:
        """Per market (the snapshot at ``blocks[market]``): positions, borrowers, collateral and
        debt (USD), liquidatable (HF < 1) and at-risk (HF < ``at_risk_hf``) counts and debt; the
        totals; and the accounts holding positions in several markets (any case of the address)."""
        limit = hf_wad(at_risk_hf)
        markets: list[dict[str, Any]] = []
        by_account: dict[str, list[dict[str, Any]]] = {}
        for market, block in blocks.items():
            snap = self._snapshot(market, block)
            unit = snap.base_currency_unit
            held = [p for p in snap.positions if p.total_collateral_base or p.total_debt_base]
            borrowers = [p for p in held if _has_debt(p.health_factor)]
            markets.append({
                "market": market, "protocol": snap.protocol, "chain_id": snap.chain_id, "block": block,
                "timestamp": snap.timestamp, "positions": len(held), "borrowers": len(borrowers),
                "collateral_usd": sum(p.total_collateral_base for p in held) / unit,
                "debt_usd": sum(p.total_debt_base for p in held) / unit,
                "liquidatable": sum(1 for p in borrowers if p.health_factor < WAD),
                "at_risk": sum(1 for p in borrowers if p.health_factor < limit),
                "at_risk_debt_usd": sum(p.total_debt_base for p in borrowers if p.health_factor < limit) / unit,
                "min_hf": min((p.health_factor for p in borrowers), default=None),
            })  # fmt: skip
            for p in held:
                by_account.setdefault(p.account.lower(), []).append(position_row(snap, p))
        for m in markets:
            m["min_hf"] = None if m["min_hf"] is None else m["min_hf"] / WAD
        totals = {key: sum(m[key] for m in markets) for key in
                  ("positions", "borrowers", "collateral_usd", "debt_usd", "liquidatable", "at_risk",
                   "at_risk_debt_usd")}  # fmt: skip
        shared = []
        for rows in by_account.values():
            if len({r["market"] for r in rows}) < 2:
                continue
            hfs = [r for r in rows if r["hf"] is not None]
            low = min(hfs, key=lambda r: float(r["hf"])) if hfs else None
            shared.append({
                "account": rows[0]["account"], "markets": sorted(r["market"] for r in rows),
                "collateral_usd": sum(r["collateral_usd"] for r in rows), "debt_usd": sum(r["debt_usd"] for r in rows),
                "min_hf": None if low is None else low["hf"], "min_hf_market": None if low is None else low["market"],
            })  # fmt: skip
        shared.sort(key=lambda r: (r["min_hf"] is None, r["min_hf"] or 0.0, r["account"]))
        return {"markets": markets, "totals": totals, "shared_accounts": shared}


    def _account_ids(self, market: str) -> dict[str, int]:
        return {str(r["account"]): int(r["id"]) for r in self._rows(
            "SELECT id, account FROM account_ids WHERE market = ?", [market])}  # fmt: skip

    def _in_force(
        self, market: str, block: int, account_ids: list[int]
    ) -> tuple[list[dict[str, Any]], dict[int, dict[int, dict[str, Any]]]]:
        """``History.positions_at`` and ``History.legs_at`` for these accounts only: each one's
        latest live row and legs at or before ``block`` (closed accounts and zero legs left out)."""
        rows: list[dict[str, Any]] = []
        legs: dict[int, dict[int, dict[str, Any]]] = {}
        for k in range(0, len(account_ids), _CHUNK):
            ids = account_ids[k : k + _CHUNK]
            of = f"account_id IN ({', '.join('?' * len(ids))})"
            for r in self._history.db.execute(
                "SELECT a.account, p.* FROM (" + _latest("position_rows", "account_id", of, "<= ?")
                + ") p JOIN account_ids a ON a.id = p.account_id", [*ids, block, market]
            ):  # fmt: skip
                row = dict(zip(("account", *POSITION_COLUMNS), r, strict=True))
                if not row["reason"] & CLOSED:
                    rows.append(row)
            for r in self._history.db.execute(_latest("position_legs", "account_id, asset_id", of, "<= ?"),
                                              [*ids, block, market]):  # fmt: skip
                leg = dict(zip(LEG_COLUMNS, r, strict=True))
                if any(leg[c] not in (None, "0", 0) for c in _LEG_AMOUNTS):
                    legs.setdefault(leg["account_id"], {})[leg["asset_id"]] = leg
        return rows, legs


def position_row(snapshot: MarketSnapshot, p: Position) -> dict[str, Any]:
    """One position of a rebuilt snapshot as a desk row (exact HF text beside the float)."""
    unit = snapshot.base_currency_unit
    debt = _has_debt(p.health_factor)
    return {
        "market": snapshot.market, "account": p.account, "block": snapshot.block, "timestamp": snapshot.timestamp,
        "health_factor": format_wad(p.health_factor), "hf": p.health_factor / WAD if debt else None,
        "collateral_usd": p.total_collateral_base / unit, "debt_usd": p.total_debt_base / unit,
        "emode_category": p.emode_category,
    }  # fmt: skip
