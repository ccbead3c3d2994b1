"""The search behind every exact repay / supply / liquidation-price answer: with a closed-form
guess it gallops from it (a few HF evaluations instead of ~60-130) and gives exactly the
bisection's answer, wherever the guess is."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from monitor.risk.liquidation import first_true


@given(st.integers(0, 10**30), st.integers(1, 10**30), st.one_of(st.none(), st.integers(-5, 2 * 10**30)))
def test_the_guess_never_changes_the_answer(threshold: int, span: int, guess: int | None) -> None:
    lo, hi = threshold - 1 - (span // 3), threshold + span  # pred false at lo, true at hi
    answer = first_true(lambda x: x >= threshold, lo, hi, guess)
    assert answer == first_true(lambda x: x >= threshold, lo, hi) == max(threshold, lo + 1)


def test_a_close_guess_takes_a_few_calls() -> None:
    calls = []

    def pred(x: int) -> bool:
        calls.append(x)
        return x >= 123_456_789_012

    assert first_true(pred, 0, 2**128, 123_456_789_000) == 123_456_789_012
    assert len(calls) <= 12, len(calls)
    calls.clear()
    assert first_true(pred, 0, 2**128) == 123_456_789_012
    assert len(calls) >= 100  # plain bisection over 2**128
