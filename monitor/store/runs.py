"""Risk runs (stress, calibration) and their per-position outcomes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from monitor.errors import StoreError
from monitor.store.base import StoreBase
from monitor.store.sql import _market_clause, _where


class RiskRunsMixin(StoreBase):
    """The ``risk_runs`` and ``risk_outcomes`` tables."""

    def save_risk_run(
        self,
        kind: str,
        market: str,
        block: int,
        scenario: str,
        inputs: dict[str, Any],
        summary: dict[str, Any],
        outcomes: Sequence[dict[str, Any]] = (),
    ) -> int:
        """A stress or calibration run and its per-position outcomes, in one transaction."""
        with self.transaction():
            row = {
                "kind": kind, "market": market, "block": block, "scenario": scenario,
                "inputs": json.dumps(inputs, sort_keys=True, default=str),
                "summary": json.dumps(summary, sort_keys=True, default=str),
                "created_at": self._clock(),
            }  # fmt: skip
            run_id = self._db.table("risk_runs").insert(row).last_pk
            if not isinstance(run_id, int):
                raise StoreError(f"history database {self.path} returned no id for the new risk run")
            self._db.table("risk_outcomes").insert_all(({"run_id": run_id, **o} for o in outcomes), batch_size=2000)
            return run_id

    def risk_runs(self, market: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        clauses = _market_clause("market", market) + ([] if kind is None else [("kind = ?", (kind,))])
        where, params = _where(clauses)
        rows = self._rows(f"SELECT * FROM risk_runs {where} ORDER BY id", params)
        for row in rows:
            row["inputs"], row["summary"] = json.loads(row["inputs"]), json.loads(row["summary"])
        return rows

    def risk_outcomes(self, run_id: int) -> list[dict[str, Any]]:
        return self._rows("SELECT * FROM risk_outcomes WHERE run_id = ? ORDER BY hf_after, account", [run_id])
