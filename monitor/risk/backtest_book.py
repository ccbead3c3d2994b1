"""A realistic Aave-like position book for the backtest (seeded), and its class labels.

Classes, their default SHARES of the positions (:data:`DEFAULT_SHARES`), parameters and HF
distribution (Aave V3 Ethereum-like parameters; eMode rows use the category's LT / bonus):

=====================  =====  ==============================  ==========  ======  ==================
class                  share  collateral / debt               LT          bonus   HF at the start
=====================  =====  ==============================  ==========  ======  ==================
stable-emode           25 %   USDC/DAI, DAI/USDC, USDT/USDC,  0.95 (eM)   1 %     1.01-1.10 mostly
                              USDC/USDT (loops)
lst-emode              15 %   wstETH / WETH (loop)            0.955 (eM)  1 %     1.01-1.10 mostly
bluechip-stable        30 %   WETH / USDC, WBTC / USDC        0.83, 0.78  5, 6.5% 1.15-3, mode ~1.5
alt-stable              8 %   SOL / USDC                      0.65        10 %    1.2-3
multi-collateral       12 %   WBTC + WETH / USDC              0.78, 0.83  6.5, 5% 1.15-3
stable-volatile         5 %   USDC / WETH (a short)           0.87        4.5 %   1.2-3
volatile-volatile       5 %   WBTC / WETH, WETH / WBTC        0.78, 0.83  6.5, 5% 1.2-3
=====================  =====  ==============================  ==========  ======  ==================

Sizes are heavy-tailed: debt in USD is lognormal (median 20k, ``size_sigma`` 1.6 by default;
about 1 % of positions above 850k; ``size_sigma=0`` makes every debt 20k). ``wstETH`` has no
shipped price: the backtest prices it as ETH times a synthetic ratio
(:func:`monitor.risk.backtest_data.lst_ratio`).

A share of positions REACTS (``react_share``, default 0): once warned, such a user acts after
the reaction horizon and restores the position's HF to its value at the window's start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from monitor.errors import InputError
from monitor.risk.book import Book

__all__ = ["CLASSES", "DEFAULT_SHARES", "SYMBOLS", "ClassedBook", "realistic_book", "stored_book"]

SYMBOLS: tuple[str, ...] = ("WETH", "WBTC", "USDC", "DAI", "USDT", "SOL", "wstETH")
LT: dict[str, float] = {
    "WETH": 0.83,
    "WBTC": 0.78,
    "USDC": 0.87,
    "DAI": 0.77,
    "USDT": 0.78,
    "SOL": 0.65,
    "wstETH": 0.81,
}
BONUS: dict[str, float] = {"WETH": 1.05, "WBTC": 1.065, "USDC": 1.045, "DAI": 1.05, "USDT": 1.045, "SOL": 1.10,
                           "wstETH": 1.06}  # fmt: skip
EMODE: dict[str, tuple[float, float, float]] = {  # LT, LTV, bonus of the eMode categories
    "stable": (0.95, 0.93, 1.01),
    "eth": (0.955, 0.935, 1.01),
}
DEFAULT_SHARES: Mapping[str, float] = MappingProxyType({
    "stable-emode": 0.25,
    "lst-emode": 0.15,
    "bluechip-stable": 0.30,
    "alt-stable": 0.08,
    "multi-collateral": 0.12,
    "stable-volatile": 0.05,
    "volatile-volatile": 0.05,
})  # fmt: skip
CLASSES: tuple[str, ...] = tuple(DEFAULT_SHARES)


@dataclass(frozen=True, slots=True)
class ClassedBook:
    """A book with a class label per position and which positions react to a warning."""

    book: Book
    classes: tuple[str, ...]  # [P]
    reacts: np.ndarray  # [P] bool
    description: str

    def shares(self) -> dict[str, float]:
        n = max(len(self.classes), 1)
        names = list(dict.fromkeys(self.classes))
        return {c: self.classes.count(c) / n for c in names}


def realistic_book(
    n: int = 2000,
    seed: int = 7,
    *,
    shares: Mapping[str, float] = DEFAULT_SHARES,
    react_share: float = 0.0,
    size_sigma: float = 1.6,
) -> ClassedBook:
    """``n`` positions drawn class by class (see the module docstring); seeded."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"the book needs at least 1 position, got {n!r}")
    unknown = set(shares) - set(CLASSES)
    if unknown:
        raise InputError(f"unknown position classes {sorted(unknown)}; known: {', '.join(CLASSES)}")
    total = float(sum(shares.values()))
    if total <= 0 or any(v < 0 for v in shares.values()):
        raise InputError(f"class shares must be >= 0 and not all 0, got {dict(shares)}")
    if not 0.0 <= size_sigma <= 4.0:
        raise InputError(f"size_sigma must be in [0, 4], got {size_sigma}")
    if not 0.0 <= react_share <= 1.0:
        raise InputError(f"react_share must be in [0, 1], got {react_share}")
    rng = np.random.default_rng(seed)
    names = [c for c in CLASSES if shares.get(c, 0.0) > 0]
    probs = np.array([shares[c] for c in names]) / total
    counts = np.floor(probs * n).astype(int)
    for i in np.argsort(-(probs * n - counts))[: n - counts.sum()]:
        counts[i] += 1
    a = len(SYMBOLS)
    col = {s: i for i, s in enumerate(SYMBOLS)}
    coll, debt = np.zeros((n, a)), np.zeros((n, a))
    lt = np.tile([LT[s] for s in SYMBOLS], (n, 1))
    bonus = np.tile([BONUS[s] for s in SYMBOLS], (n, 1))
    ltv = lt - 0.03
    classes: list[str] = []
    row = 0
    size = rng.lognormal(np.log(20_000.0), size_sigma, n)
    for name, k in zip(names, counts, strict=True):
        for _ in range(k):
            i = row
            d_usd = float(size[i])
            pairs = _pairs(name, rng)
            hf = _start_hf(name, rng)
            emode = EMODE.get("stable" if name == "stable-emode" else "eth" if name == "lst-emode" else "")
            if emode is not None:
                lt[i, :], ltv[i, :], bonus[i, :] = emode
            w_total = 0.0
            for sym, share in pairs:
                w_total += share * lt[i, col[sym]]
            debt_sym = _debt_symbol(name, {sym for sym, _ in pairs}, rng)
            # collateral in proportions ``share``; debt so that HF = sum(c * lt) / debt
            c_total = hf * d_usd / w_total
            for sym, share in pairs:
                coll[i, col[sym]] += share * c_total
            debt[i, col[debt_sym]] = d_usd
            classes.append(name)
            row += 1
    # HF exactly as the book computes it (avg LT floored to bps): nudge debt so HF >= 1.005
    book = Book(
        "realistic", 0, tuple(f"0x{i:040x}" for i in range(n)), SYMBOLS,
        np.array([2000.0, 30000.0, 1.0, 1.0, 1.0, 40.0, 2300.0]), coll, debt, lt, ltv, bonus,
    )  # fmt: skip
    hf_now = book.health_factors()
    low = hf_now < 1.005
    if low.any():
        debt[low] *= (hf_now[low] / 1.005)[:, None]
    reacts = rng.random(n) < react_share
    desc = ", ".join(f"{c} {counts[j] / n:.0%}" for j, c in enumerate(names))
    return ClassedBook(book, tuple(classes), reacts, f"realistic book of {n} positions (seed {seed}): {desc}")


def _pairs(name: str, rng: np.random.Generator) -> list[tuple[str, float]]:
    if name == "stable-emode":
        options = (("USDC",), ("DAI",), ("USDT",), ("DAI",))
        return [(str(options[int(rng.integers(0, 4))][0]), 1.0)]
    if name == "lst-emode":
        return [("wstETH", 1.0)]
    if name == "bluechip-stable":
        return [("WETH" if rng.random() < 0.65 else "WBTC", 1.0)]
    if name == "alt-stable":
        return [("SOL", 1.0)]
    if name == "multi-collateral":
        s = float(rng.uniform(0.2, 0.8))
        return [("WBTC", s), ("WETH", 1.0 - s)]
    if name == "stable-volatile":
        return [("USDC", 1.0)]
    return [("WBTC", 1.0)] if rng.random() < 0.6 else [("WETH", 1.0)]


def _debt_symbol(name: str, held: set[str], rng: np.random.Generator) -> str:
    """The debt asset, never one of the collateral assets ``held``."""
    if name == "stable-emode":
        return ("USDT" if rng.random() < 0.5 else "DAI") if "USDC" in held else "USDC"
    if name == "lst-emode" or name == "stable-volatile":
        return "WETH"
    if name == "volatile-volatile":
        return "WBTC" if "WETH" in held else "WETH"
    return "USDC"


def _start_hf(name: str, rng: np.random.Generator) -> float:
    if name in ("stable-emode", "lst-emode"):
        # most loops run tight: 85 % in 1.01-1.10 (skewed low), the rest up to 1.35
        if rng.random() < 0.85:
            return float(1.01 + 0.09 * rng.beta(1.3, 2.5))
        return float(rng.uniform(1.10, 1.35))
    # blue chips and the rest: a mode near 1.5, a tail to 3; a few close to the edge
    if rng.random() < 0.08:
        return float(rng.uniform(1.05, 1.15))
    return float(np.clip(1.15 + rng.lognormal(np.log(0.4), 0.6), 1.15, 3.0))


def stored_book(book: Book) -> ClassedBook:
    """The user's own stored positions with debt (nothing else can be liquidated or warned),
    each labelled by its main collateral / main debt."""
    rows = np.flatnonzero(book.debt.sum(axis=1) > 0)
    if rows.size == 0:
        raise InputError(f"market {book.market} at block {book.block} has no position with debt: nothing to backtest")
    book = book.with_rows(rows)
    main_c = np.argmax(book.collateral, axis=1)
    main_d = np.argmax(book.debt, axis=1)
    classes = tuple(f"{book.symbols[c]}/{book.symbols[d]}" for c, d in zip(main_c, main_d, strict=True))
    return ClassedBook(
        book, classes, np.zeros(book.size, dtype=bool), f"stored positions of {book.market} @ block {book.block}"
    )
