"""What a message tells a person to do, in token units, from the position's exact integers.

- repay: the smallest amount of the position's main debt token (its smallest units) that
  brings the HF to the target; supply: the same for adding its main collateral token.
  Aave positions use the exact per-revision searches of :mod:`monitor.risk.liquidation`
  (``exact_repay_to_target`` / ``exact_supply_to_target``: the recomputed HF, with the
  Pool's rounding, reaches the target); other protocols the closed form on the snapshot's
  integer balances and prices (HF = sum(collateral x price x LT) / sum(debt x price)),
  in rationals, rounded up to the token's smallest unit.
- the liquidation price of the asset that matters: the one whose price needs the smallest
  move to liquidate the position, pegged assets only when nothing else moves it (a WETH
  collateral "falls to", a WETH debt "rises to"); exact for Aave (``exact_liquidation_price``).

Display rounds UP (:meth:`TokenAmount.text`): doing what the message says reaches the target.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal, localcontext
from fractions import Fraction

from monitor.models import WAD, MarketSnapshot, Position
from monitor.risk.book import AAVE_PROTOCOL
from monitor.risk.health import categories_by_id, effective_params, rules_of
from monitor.risk.liquidation import exact_liquidation_price, exact_repay_to_target, exact_supply_to_target

SIGNIFICANT = 4  # digits shown of a token amount (at least its whole part)


@dataclass(frozen=True, slots=True)
class TokenAmount:
    symbol: str
    units: int  # the token's smallest units
    decimals: int

    def places(self) -> int:
        """Decimals shown: 4 significant digits, the whole part always, at most the token's decimals."""
        value = Fraction(self.units, 10**self.decimals)
        if value <= 0:
            return 0
        magnitude = math.floor(math.log10(value)) if value >= 1 else -_leading_zeros(value) - 1
        return max(0, min(self.decimals, SIGNIFICANT - 1 - magnitude))

    def value(self) -> Decimal:
        """The amount rounded UP to the shown decimals."""
        with localcontext(prec=120):  # exact: 2**256 has 78 digits
            exact = Decimal(self.units).scaleb(-self.decimals)
            return exact.quantize(Decimal(1).scaleb(-self.places()), rounding=ROUND_CEILING)

    def text(self) -> str:
        """``4,708 USDC`` / ``1.903 WETH``: thousands separated, rounded up."""
        return f"{self.value():,.{self.places()}f} {self.symbol}"


@dataclass(frozen=True, slots=True)
class LiquidationPrice:
    symbol: str
    price: float  # USD at which the position becomes liquidatable
    current: float  # USD now
    direction: int  # -1: liquidated when the price falls to it, +1: when it rises to it

    @property
    def move(self) -> float:
        """The move needed, in % of the current price (negative for a fall)."""
        return (self.price / self.current - 1.0) * 100.0 if self.current else 0.0


@dataclass(frozen=True, slots=True)
class Advice:
    repay: TokenAmount | None  # None: repaying all of the main debt is not enough, or no debt
    supply: TokenAmount | None  # None: the main collateral does not count (LT 0), or none held
    liquidation: LiquidationPrice | None


_INDEX: list[tuple[MarketSnapshot, dict[str, Position]]] = []  # the last snapshot's accounts (one entry)


def positions_by_account(snapshot: MarketSnapshot) -> dict[str, Position]:
    """``snapshot``'s positions by lower-case account: built once per snapshot (a tick renders
    hundreds of alerts of one snapshot of 10,000 positions; a scan per alert cost 0.5 s)."""
    last = _INDEX[-1] if _INDEX else None  # read once: the bot's thread may replace it meanwhile
    if last is not None and last[0] is snapshot:
        return last[1]
    index = {p.account.lower(): p for p in snapshot.positions}
    _INDEX[:] = [(snapshot, index)]
    return index


def advise(
    snapshot: MarketSnapshot, account: str, target_hf: float, *, pegged: Callable[[str], bool] | Collection[str] = ()
) -> Advice:
    """The advice for ``account`` of ``snapshot`` to reach ``target_hf``; ``pegged`` says which
    symbols are pegged (a set of symbols or a predicate)."""
    position = positions_by_account(snapshot).get(account.lower())
    if position is None or position.total_debt_base == 0:
        return Advice(None, None, None)
    is_pegged = pegged if callable(pegged) else (lambda s, names=frozenset(pegged): s in names)
    model = _Model(snapshot, position)
    target = int(Fraction(target_hf).limit_denominator(10**9) * WAD)
    return Advice(model.repay(target), model.supply(target), model.liquidation_price(is_pegged))


class _Model:
    """One position's values in base units as rationals (the book's model, without floats)."""

    def __init__(self, snapshot: MarketSnapshot, position: Position) -> None:
        self.snapshot, self.position = snapshot, position
        self.aave = snapshot.protocol == AAVE_PROTOCOL
        self.rules = rules_of(snapshot) if self.aave else None
        self.categories = categories_by_id(snapshot.emode_categories)
        self.unit = snapshot.base_currency_unit
        self.coll: list[Fraction] = []  # base value counted as collateral, per reserve
        self.lt: list[Fraction] = []
        self.debt: list[Fraction] = []
        zero = Fraction(0)
        for leg, r in zip(position.legs, snapshot.reserves, strict=True):
            if not (leg.collateral or leg.debt):  # most of ~60 reserves: nothing held
                self.coll.append(zero)
                self.lt.append(zero)
                self.debt.append(zero)
                continue
            _ltv, lt, _bonus = (
                effective_params(r, position.emode_category, self.categories, self.rules)
                if self.rules is not None
                else (r.ltv, r.liquidation_threshold, r.liquidation_bonus)
            )
            counted = leg.used_as_collateral and lt > 0
            self.coll.append(Fraction(leg.collateral * r.price, 10**r.decimals) if counted else Fraction(0))
            self.lt.append(Fraction(lt, 10_000))
            self.debt.append(Fraction(leg.debt * r.price, 10**r.decimals))

    def weighted(self) -> Fraction:
        return sum((c * lt for c, lt in zip(self.coll, self.lt, strict=True) if c), Fraction(0))

    def total_debt(self) -> Fraction:
        return sum((d for d in self.debt if d), Fraction(0))

    def repay(self, target: int) -> TokenAmount | None:
        j = max(range(len(self.debt)), key=lambda k: self.debt[k])
        r = self.snapshot.reserves[j]
        if self.debt[j] <= 0 or r.price <= 0:
            return None
        # W / (D - x p) >= T  =>  x >= (D - W / T) / p: exact for Morpho / Comet, Aave's search starts there
        need = self.total_debt() - self.weighted() * WAD / target
        estimate = max(0, math.ceil(need * 10**r.decimals / r.price))
        if self.rules is not None:
            rules = self.rules
            units = _shown_exactly(lambda q: exact_repay_to_target(
                self.position, self.snapshot.reserves, self.categories, r.asset, target, rules=rules,
                guess=estimate, quantum=q), estimate, r.symbol, r.decimals)  # fmt: skip
        else:
            units = None if estimate > self.position.legs[j].debt else estimate
        return None if units is None else TokenAmount(r.symbol, units, r.decimals)

    def supply(self, target: int) -> TokenAmount | None:
        candidates = [k for k in range(len(self.coll)) if self.coll[k] > 0 and self.lt[k] > 0]
        if not candidates:
            return None
        i = max(candidates, key=lambda k: self.coll[k])
        r = self.snapshot.reserves[i]
        # (W + y p LT) / D >= T  =>  y >= (T D - W) / (p LT): exact for Morpho / Comet, Aave's search starts there
        short = self.total_debt() * target / WAD - self.weighted()
        estimate = max(0, math.ceil(short * 10**r.decimals / (r.price * self.lt[i])))
        if self.rules is not None:
            rules = self.rules
            units = _shown_exactly(lambda q: exact_supply_to_target(
                self.position, self.snapshot.reserves, self.categories, r.asset, target, rules=rules,
                guess=estimate, quantum=q), estimate, r.symbol, r.decimals)  # fmt: skip
        else:
            units = estimate
        return None if units is None else TokenAmount(r.symbol, units, r.decimals)

    def liquidation_price(self, pegged: Callable[[str], bool]) -> LiquidationPrice | None:
        w, d = self.weighted(), self.total_debt()
        options: list[tuple[bool, float, int]] = []  # (pegged, |log move|, column)
        for k, r in enumerate(self.snapshot.reserves):
            slope = self.coll[k] * self.lt[k] - self.debt[k]
            if slope == 0 or r.price <= 0:
                continue
            x = (d - w + slope) / slope  # price multiplier at which HF = 1, all else fixed
            if x <= 0:
                continue
            options.append((pegged(r.symbol), abs(math.log(x)), k))
        if not options:
            return None
        _peg, _size, k = min(options)
        r = self.snapshot.reserves[k]
        slope = self.coll[k] * self.lt[k] - self.debt[k]
        direction = -1 if slope > 0 else 1
        price = float((d - w + slope) / slope * r.price / self.unit)
        if self.rules is not None:
            guess = int(price * self.unit) if math.isfinite(price) else None  # the linear closed form
            found = exact_liquidation_price(self.position, self.snapshot.reserves, self.categories, r.asset,
                                            rules=self.rules, guess=guess)  # fmt: skip
            if found is not None:
                price, direction = found[0] / self.unit, found[1]
        return LiquidationPrice(r.symbol, price, r.price / self.unit, direction)


def _shown_exactly(search: Callable[[int], int | None], estimate: int, symbol: str, decimals: int) -> int | None:
    """The exact search's answer at the precision the message shows: ``search(quantum)`` returns
    the smallest amount rounded up to a multiple of ``quantum``; with the quantum of the shown
    decimals that is exactly the shown amount, in a few HF evaluations instead of ~40. Where a
    power of ten lies inside the last step (the shown decimals would differ) it searches to the
    unit instead."""
    places = TokenAmount(symbol, max(1, estimate), decimals).places()
    quantum = 10 ** (decimals - places)
    units = search(quantum)
    if units is None or quantum == 1:
        return units
    low = TokenAmount(symbol, max(1, units - quantum + 1), decimals).places()
    if low == places == TokenAmount(symbol, units, decimals).places():
        return units
    return search(1)


def _leading_zeros(value: Fraction) -> int:
    """Zeros right of the decimal point before the first significant digit of 0 < ``value`` < 1."""
    zeros = 0
    while value * 10 < 1:
        value *= 10
        zeros += 1
    return zeros
