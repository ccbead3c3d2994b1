"""The advice searches at the precision a message shows (monitor.alerts.advice._shown_exactly):
its text must be exactly the text of the unit-exact target, for any position."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.alerts.advice import TokenAmount, advise
from monitor.models import WAD
from monitor.risk.liquidation import exact_repay_to_target, exact_supply_to_target
from tests.unit.test_messages import E6, E18, RESERVES, TREASURY, _position, _snapshot


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 5_000), st.integers(1_000, 9_000_000), st.sampled_from([1.2, 1.5, 2.0]))
def test_shown_amounts_equal_the_unit_exact_targets(weth_tenths: int, usdc: int, target_hf: float) -> None:
    pos = _position(TREASURY, (weth_tenths * E18 // 10, 0, 0), (0, usdc * E6, 0))
    advice = advise(_snapshot([pos]), TREASURY, target_hf)
    target = int(Fraction(target_hf).limit_denominator(10**9) * WAD)
    repay = exact_repay_to_target(pos, RESERVES, {}, "USDC", target)
    supply = exact_supply_to_target(pos, RESERVES, {}, "WETH", target)
    if repay is None or repay == 0:
        assert advice.repay is None or advice.repay.units in (0, repay)
    else:
        assert advice.repay is not None
        assert advice.repay.text() == TokenAmount("USDC", repay, 6).text()
    if supply:
        assert advice.supply is not None
        assert advice.supply.text() == TokenAmount("WETH", supply, 18).text()
