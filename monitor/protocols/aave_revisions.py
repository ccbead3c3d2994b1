"""Aave V3 Pool revisions: ``Pool.POOL_REVISION()`` -> version label and behaviour flags.

Each flag names the source it was read from. Paths are in the aave-v3-origin repository
(``src/contracts/...`` from v3.2.0 on, ``src/core/contracts/...`` in v3.1.0) or in the npm
package ``@aave/core-v3`` 1.19.3 (``contracts/...``, Aave 3.0). Revision numbers:

- 1: ``@aave/core-v3`` 1.19.3 ``contracts/protocol/pool/Pool.sol`` (``POOL_REVISION = 0x1``);
- 4: v3.1.0 ``src/core/instances/PoolInstance.sol`` (``POOL_REVISION = 4``);
- 5, 6, 7, 8, 9, 10: v3.2.0, v3.2.1, v3.3.0, v3.4.0, v3.5.0, v3.6.0
  ``src/contracts/instances/PoolInstance.sol``;
- 11: aave-v3-origin HEAD (3.7.0) ``src/contracts/instances/PoolInstance.sol``,
  also ``docs/3.7/Aave-v3.7-changelog.md`` ("POOL_REVISION bumped from 10 to 11").
- 2 and 3 are NOT verified from a source available here: the v3.1.0 notes
  (``docs/Aave-v3.1-features.md``) say 3.1 is "an upgrade on top of Aave 3.0.2", and 3.1 is
  revision 4, so 2 and 3 are taken to be 3.0.1 and 3.0.2 with the 3.0 rules (v3.1.0
  ``GenericLogic.sol`` is byte-identical to the 1.19.3 one, so 3.0.x shares the HF math).

Unknown revisions above the newest known map to the newest rules and below 1 to the 3.0
rules, both with ``known = False`` so callers can warn.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from monitor.wadray import ray_mul, ray_mul_ceil, ray_mul_floor

CloseFactorRule = Literal["v30", "v33"]
Rounding = Literal["v30", "v35"]
LiquidationRounding = Literal["half_up", "directed"]

# LiquidationLogic.sol, every tag (1.19.3 .. HEAD): CLOSE_FACTOR_HF_THRESHOLD = 0.95e18.
CLOSE_FACTOR_HF_THRESHOLD = 95 * 10**16
# LiquidationLogic.sol, every tag: DEFAULT_LIQUIDATION_CLOSE_FACTOR = 0.5e4 (bps).
DEFAULT_LIQUIDATION_CLOSE_FACTOR = 5_000
# LiquidationLogic.sol 1.19.3 .. v3.2.x: MAX_LIQUIDATION_CLOSE_FACTOR = 1e4 (bps); from v3.3.0
# the whole debt of the reserve is the default ("maxLiquidatableDebt = userReserveDebt").
MAX_LIQUIDATION_CLOSE_FACTOR = 10_000
# LiquidationLogic.sol v3.3.0 .. HEAD: MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD = 2000e8 (base units).
MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD = 2000 * 10**8
# LiquidationLogic.sol v3.3.0 .. HEAD: MIN_LEFTOVER_BASE = MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD / 2.
MIN_LEFTOVER_BASE = MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD // 2
# ValidationLogic.sol, every tag: HEALTH_FACTOR_LIQUIDATION_THRESHOLD = 1e18.
HEALTH_FACTOR_LIQUIDATION_THRESHOLD = 10**18


@dataclass(frozen=True, slots=True)
class AaveRules:
    """What the exact math must do for one Pool revision."""

    revision: int
    version: str  # "3.0", "3.1", "3.2", "3.2.1", "3.3", "3.4", "3.5", "3.6", "3.7"
    known: bool  # False: the revision was not in the table; the nearest rules were taken

    # v3.2.0 GenericLogic.calculateUserAccountData / LiquidationLogic.executeLiquidationCall:
    # the user's category LTV / LT / bonus apply to a collateral reserve iff its bit is set in
    # ``eModeCategories[id].collateralBitmap`` (EModeConfiguration.isReserveEnabledOnBitmap);
    # the reserve-config eMode bits 168-175 are no longer read (ReserveConfiguration.sol v3.2.0
    # drops getEModeCategory). Before (1.19.3 / v3.1.0 GenericLogic, EModeLogic.isInEModeCategory):
    # membership is ``reserve.configuration.getEModeCategory() == userEModeCategory``.
    liquid_emode: bool
    # 1.19.3 / v3.1.0 GenericLogic: EModeLogic.getEModeConfiguration returns the category price
    # source's price, used for member assets (collateral and debt) instead of the oracle's;
    # LiquidationLogic._getConfigurationData does the same for collateral and debt prices.
    # v3.2.0 Pool.getEModeCategoryData answers ``priceSource: address(0)`` and no logic reads it.
    emode_price_source: bool
    # 1.19.3 / v3.1.0 GenericLogic._getUserDebtInBaseCurrency adds
    # ``IERC20(reserve.stableDebtTokenAddress).balanceOf(user)``; from v3.2.0 only the variable
    # debt counts (docs/3.2/Aave-v3.2-features.md "Deprecation of stable debt").
    stable_debt: bool
    # v3.6.0 ValidationLogic.getUserReserveLtv: inside the user's category a collateral reserve in
    # ``ltvzeroBitmap`` has LTV 0, one in ``collateralBitmap`` the category LTV, otherwise the
    # reserve LTV (IPool.getEModeCategoryLtvzeroBitmap, new in v3.6.0).
    ltv_zero_bitmap: bool
    # v3.6.0 GenericLogic: ``if (isEnabledAsCollateral)`` (no ``liquidationThreshold != 0``):
    # a reserve with LT 0 counts in total collateral and gets the category LT when in the bitmap
    # ("collateral only inside an eMode"); v3.6.0 ValidationLogic.validateLiquidationCall no longer
    # requires ``getLiquidationThreshold() != 0`` for the collateral. Before v3.6.0 an LT-0 reserve
    # is skipped entirely as collateral and cannot be liquidated.
    zero_lt_collateral: bool
    # "v30" (1.19.3 .. v3.2.x LiquidationLogic._calculateDebt): close factor per debt reserve,
    # 50 % of that reserve's debt, 100 % when HF <= CLOSE_FACTOR_HF_THRESHOLD (``healthFactor >
    # CLOSE_FACTOR_HF_THRESHOLD ? DEFAULT : MAX``). "v33" (v3.3.0 .. HEAD executeLiquidationCall):
    # 100 % of the reserve's debt unless collateral AND debt reserve of the pair are each
    # >= MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD in base and HF > 0.95, then at most 50 % of the TOTAL
    # debt in base; MUST_NOT_LEAVE_DUST below MIN_LEFTOVER_BASE; bad debt burnt to a deficit.
    close_factor: CloseFactorRule
    # "v30" (1.19.3 .. v3.4.0 GenericLogic): balances ``scaled.rayMul(index)`` half-up, values
    # ``amount * price / unit`` floored, average LT floored to whole bps, HF
    # ``collateral.percentMul(avgLT).wadDiv(debt)``. "v35" (v3.5.0 GenericLogic, TokenMath.sol):
    # aToken balance ``rayMulFloor``, vToken balance ``rayMulCeil``, debt value
    # ``MathUtils.mulDivCeil(debt, price, unit)``, HF ``sum(value_i * LT_i).wadDiv(debt) / 1e4``
    # (no floor of the average LT); available borrows ``percentMulFloor(ltv)``. v3.5.0
    # LiquidationLogic: the reserve debt in base ``mulDivCeil``, the dust check's leftover debt
    # ``mulDivCeil``, the debt a whole collateral covers ``percentDivCeil(bonus)`` (v3.4.0: all
    # floor division and half-up ``percentDiv``).
    rounding: Rounding
    # HEAD (3.7) LiquidationLogic._calculateAvailableCollateralToLiquidate: percentMulFloor for
    # the collateral with bonus, percentDivFloor for the bonus base, percentMulCeil for the
    # protocol fee (docs/3.7/liquidation-rounding.md); before (v3.6.0 and older): half-up
    # ``percentMul`` for the collateral with bonus and the fee, half-up ``percentDiv`` for the base.
    liquidation_rounding: LiquidationRounding
    # v3.1.0 ValidationLogic.validateLiquidationCall: liquidation reverts unless both reserves'
    # ``liquidationGracePeriodUntil < block.timestamp`` (IPool.getLiquidationGracePeriod, new in 3.1).
    grace_period: bool
    # v3.3.0 LiquidationLogic._burnBadDebt: zero collateral left -> remaining debt burnt into
    # ``reserve.deficit`` (DeficitCreated; IPool.getReserveDeficit, new in v3.3.0).
    deficit: bool
    # HEAD (3.7) IPool.getIsEModeCategoryIsolated / configureEModeCategoryIsolated.
    isolated_emode: bool

    # numeric constants, in the units Aave uses (WAD, bps, base currency units)
    close_factor_hf_threshold: int = CLOSE_FACTOR_HF_THRESHOLD
    default_close_factor: int = DEFAULT_LIQUIDATION_CLOSE_FACTOR
    max_close_factor: int = MAX_LIQUIDATION_CLOSE_FACTOR
    min_base_max_close_factor_threshold: int = 0  # 0 before 3.3 (no size rule)
    min_leftover_base: int = 0  # 0 before 3.3 (no dust rule)

    @property
    def label(self) -> str:
        return self.version if self.known else f"{self.version} (revision {self.revision} unknown)"


# revision -> version label (see the module docstring for the sources; 2 and 3 unverified)
VERSIONS: dict[int, str] = {
    1: "3.0",
    2: "3.0.1",
    3: "3.0.2",
    4: "3.1",
    5: "3.2",
    6: "3.2.1",
    7: "3.3",
    8: "3.4",
    9: "3.5",
    10: "3.6",
    11: "3.7",
}
VERIFIED_REVISIONS = frozenset({1, 4, 5, 6, 7, 8, 9, 10, 11})
NEWEST_REVISION = max(VERSIONS)
OLDEST_REVISION = min(VERSIONS)


def _rules(revision: int, known: bool) -> AaveRules:
    v33 = revision >= 7
    return AaveRules(
        revision=revision,
        version=VERSIONS[revision],
        known=known,
        liquid_emode=revision >= 5,
        emode_price_source=revision < 5,
        stable_debt=revision < 5,
        ltv_zero_bitmap=revision >= 10,
        zero_lt_collateral=revision >= 10,
        close_factor="v33" if v33 else "v30",
        rounding="v35" if revision >= 9 else "v30",
        liquidation_rounding="directed" if revision >= 11 else "half_up",
        grace_period=revision >= 4,
        deficit=v33,
        isolated_emode=revision >= 11,
        min_base_max_close_factor_threshold=MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD if v33 else 0,
        min_leftover_base=MIN_LEFTOVER_BASE if v33 else 0,
    )


def rules_for(revision: int) -> AaveRules:
    """The rules of ``Pool.POOL_REVISION() == revision``; unknown revisions take the nearest
    end of the table (newer than the newest: the newest; older: 3.0) with ``known=False``.

    >>> rules_for(10).version, rules_for(10).liquid_emode, rules_for(1).close_factor
    ('3.6', True, 'v30')
    """
    if revision in VERSIONS:
        return _RULES[revision]
    nearest = NEWEST_REVISION if revision > NEWEST_REVISION else OLDEST_REVISION
    # keep the revision as read so the caller can name it
    return replace(_rules(nearest, known=False), revision=revision)


def a_token_balance(scaled: int, liquidity_index: int, rules: AaveRules) -> int:
    """``aToken.balanceOf``: half-up ``rayMul`` before 3.5, ``rayMulFloor`` from 3.5 (TokenMath)."""
    return ray_mul_floor(scaled, liquidity_index) if rules.rounding == "v35" else ray_mul(scaled, liquidity_index)


def variable_debt_balance(scaled: int, borrow_index: int, rules: AaveRules) -> int:
    """``variableDebtToken.balanceOf``: half-up ``rayMul`` before 3.5, ``rayMulCeil`` from 3.5 (TokenMath)."""
    return ray_mul_ceil(scaled, borrow_index) if rules.rounding == "v35" else ray_mul(scaled, borrow_index)


def version_label(revision: int) -> str:
    """The version label: "3.6" for 10; an unknown revision is named with its number."""
    return rules_for(revision).label


_RULES: dict[int, AaveRules] = {r: _rules(r, known=True) for r in VERSIONS}

__all__ = [
    "CLOSE_FACTOR_HF_THRESHOLD",
    "DEFAULT_LIQUIDATION_CLOSE_FACTOR",
    "HEALTH_FACTOR_LIQUIDATION_THRESHOLD",
    "MAX_LIQUIDATION_CLOSE_FACTOR",
    "MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD",
    "MIN_LEFTOVER_BASE",
    "NEWEST_REVISION",
    "VERIFIED_REVISIONS",
    "VERSIONS",
    "AaveRules",
    "a_token_balance",
    "rules_for",
    "variable_debt_balance",
    "version_label",
]
