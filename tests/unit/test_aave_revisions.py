"""Pool revision -> rules: the table, its edges, and its numbers read back from the sources
of both pinned npm packages (@aave/core-v3 1.19.3 = 3.0, @aave-dao/aave-v3-origin 3.6.0)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from monitor.protocols import aave_revisions as rev
from monitor.protocols.aave_revisions import rules_for

ROOT = Path(__file__).resolve().parents[2]
CORE = ROOT / "node_modules/@aave/core-v3/contracts"
ORIGIN = ROOT / "node_modules/@aave-dao/aave-v3-origin/src/contracts"


def source(path: Path) -> str:
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `npm ci` (package.json pins both Aave packages)")
    return path.read_text()


def solidity_constant(text: str, name: str) -> int:
    """``uint256 ... NAME = 0.95e18;`` / ``2000e8`` / ``0x1`` as an exact integer."""
    match = re.search(rf"\b{name}\s*=\s*(?:0x([0-9a-fA-F]+)|([0-9._]+)(?:e(\d+))?)\s*;", text)
    assert match, f"{name} not found"
    if match.group(1):
        return int(match.group(1), 16)
    mantissa, exponent = match.group(2).replace("_", ""), int(match.group(3) or 0)
    whole, _, frac = mantissa.partition(".")
    return int(whole + frac) * 10 ** (exponent - len(frac))


def test_revisions_of_the_pinned_packages() -> None:
    core = solidity_constant(source(CORE / "protocol/pool/Pool.sol"), "POOL_REVISION")
    origin = solidity_constant(source(ORIGIN / "instances/PoolInstance.sol"), "POOL_REVISION")
    assert (core, rules_for(core).version) == (1, "3.0")
    assert (origin, rules_for(origin).version) == (10, "3.6")


def test_liquidation_constants_match_the_sources() -> None:
    core = source(CORE / "protocol/libraries/logic/LiquidationLogic.sol")
    origin = source(ORIGIN / "protocol/libraries/logic/LiquidationLogic.sol")
    for text in (core, origin):
        assert solidity_constant(text, "CLOSE_FACTOR_HF_THRESHOLD") == rev.CLOSE_FACTOR_HF_THRESHOLD == 95 * 10**16
        assert solidity_constant(text, "DEFAULT_LIQUIDATION_CLOSE_FACTOR") == rev.DEFAULT_LIQUIDATION_CLOSE_FACTOR
    assert solidity_constant(core, "MAX_LIQUIDATION_CLOSE_FACTOR") == rev.MAX_LIQUIDATION_CLOSE_FACTOR
    assert solidity_constant(origin, "MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD") == rev.MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD
    assert "MIN_LEFTOVER_BASE = MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD / 2" in origin
    assert rev.MIN_LEFTOVER_BASE == 1000 * 10**8
    assert "MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD" not in core  # 3.0 has no size rule


def test_source_facts_behind_the_3_6_flags() -> None:
    """The lines the 3.6 flags rest on are in the 3.6.0 sources (and absent from 3.0)."""
    generic = source(ORIGIN / "protocol/libraries/logic/GenericLogic.sol")
    assert "if (isEnabledAsCollateral) {" in generic  # zero_lt_collateral: no LT != 0 guard
    assert "mulDivCeil(userTotalDebt, assetPrice, assetUnit)" in generic  # rounding v35
    assert "stableDebtTokenAddress" not in generic  # stable_debt False
    validation = source(ORIGIN / "protocol/libraries/logic/ValidationLogic.sol")
    assert "ltvzeroBitmap" in validation and "liquidationGracePeriodUntil < uint40(block.timestamp)" in validation
    core_generic = source(CORE / "protocol/libraries/logic/GenericLogic.sol")
    assert "eModeAssetPrice" in core_generic and "stableDebtTokenAddress" in core_generic
    assert "vars.liquidationThreshold != 0 && params.userConfig.isUsingAsCollateral" in core_generic


@pytest.mark.parametrize(
    ("revision", "version", "liquid", "price_source", "stable", "ltv0", "close", "rounding", "grace", "deficit"),
    [
        (1, "3.0", False, True, True, False, "v30", "v30", False, False),
        (4, "3.1", False, True, True, False, "v30", "v30", True, False),
        (5, "3.2", True, False, False, False, "v30", "v30", True, False),
        (6, "3.2.1", True, False, False, False, "v30", "v30", True, False),
        (7, "3.3", True, False, False, False, "v33", "v30", True, True),
        (8, "3.4", True, False, False, False, "v33", "v30", True, True),
        (9, "3.5", True, False, False, False, "v33", "v35", True, True),
        (10, "3.6", True, False, False, True, "v33", "v35", True, True),
        (11, "3.7", True, False, False, True, "v33", "v35", True, True),
    ],
)
def test_flags_per_revision(
    revision: int, version: str, liquid: bool, price_source: bool, stable: bool, ltv0: bool,
    close: str, rounding: str, grace: bool, deficit: bool,
) -> None:  # fmt: skip
    r = rules_for(revision)
    assert r.known and r.revision == revision and r.version == version and r.label == version
    assert (r.liquid_emode, r.emode_price_source, r.stable_debt) == (liquid, price_source, stable)
    assert (r.ltv_zero_bitmap, r.zero_lt_collateral) == (ltv0, ltv0)
    assert (r.close_factor, r.rounding, r.grace_period, r.deficit) == (close, rounding, grace, deficit)
    assert r.liquidation_rounding == ("directed" if revision >= 11 else "half_up")
    assert r.isolated_emode == (revision >= 11)
    if close == "v33":
        assert (r.min_base_max_close_factor_threshold, r.min_leftover_base) == (2000 * 10**8, 1000 * 10**8)
    else:
        assert (r.min_base_max_close_factor_threshold, r.min_leftover_base) == (0, 0)
    assert r.close_factor_hf_threshold == 95 * 10**16


def test_unknown_revisions_take_the_nearest_end() -> None:
    newer = rules_for(42)
    assert not newer.known and newer.revision == 42 and newer.version == "3.7"
    assert newer.label == "3.7 (revision 42 unknown)"
    assert newer.close_factor == "v33" and newer.ltv_zero_bitmap
    for older in (rules_for(0), rules_for(-1)):
        assert not older.known and older.version == "3.0" and older.stable_debt and older.close_factor == "v30"
    assert rev.version_label(10) == "3.6" and rev.version_label(99).endswith("(revision 99 unknown)")


def test_unverified_revisions_are_named() -> None:
    assert set(rev.VERSIONS) - rev.VERIFIED_REVISIONS == {2, 3}
    assert rules_for(2).known and rules_for(3).version == "3.0.2" and rules_for(3).stable_debt
