"""Backtest prices: the --prices CSV (parsed, validated, errors naming the line), the shipped
daily grid, book columns (aliases, synthetic LSTs, pegged stablecoins), the seeded generator,
and the realistic book."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from monitor.errors import InputError
from monitor.risk import backtest_data as bd
from monitor.risk.backtest_book import CLASSES, DEFAULT_SHARES, realistic_book, stored_book
from monitor.risk.synthetic_prices import SyntheticSpec, generate, write_csv


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "prices.csv"
    p.write_text(text)
    return p


def test_price_rows_on_an_hourly_grid_with_a_gap_carried_forward(tmp_path: Path) -> None:
    p = _write(tmp_path, "timestamp,asset,price\n"
               "2024-01-01T00:00:00Z,ETH,2000\n2024-01-01T01:00:00Z,ETH,2010\n"
               "2024-01-01T03:00:00Z,ETH,1990\n"
               "1704067200,USDC,1.0\n1704070800,USDC,0.999\n1704074400,USDC,1.001\n1704078000,usdc,1\n")  # fmt: skip
    px = bd.load_prices_csv(p)
    assert px.step_hours == 1.0 and px.size == 4
    assert px.symbols == ("ETH", "USDC")
    eth = px.close[:, 0]
    assert eth.tolist() == [2000.0, 2010.0, 2010.0, 1990.0]  # the missing 02:00 bar takes the previous close
    assert (px.low == px.close).all() and (px.high == px.close).all()
    assert int(px.times[0]) == 1704067200


def test_ohlc_rows(tmp_path: Path) -> None:
    p = _write(tmp_path, "timestamp,asset,open,high,low,close\n"
               "2024-01-01,ETH,100,110,90,105\n2024-01-02,ETH,105,106,80,81\n2024-01-03,ETH,81,90,81,88\n")  # fmt: skip
    px = bd.load_prices_csv(p)
    assert px.step_hours == 24.0
    assert px.low[:, 0].tolist() == [90.0, 80.0, 81.0] and px.high[:, 0].tolist() == [110.0, 106.0, 90.0]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("time,asset,price\n2024-01-01,ETH,1\n", "must name 'timestamp' and 'asset'"),
        ("timestamp,asset,value\n2024-01-01,ETH,1\n", "no 'price' column"),
        ("timestamp,asset,price\n", "a header but no rows"),
        ("timestamp,asset,price\n2024-01-01,ETH,1\n2024-01-02,ETH,abc\n2024-01-03,ETH,1\n", "line 3: price 'abc'"),
        ("timestamp,asset,price\n2024-01-01,ETH,1\n2024-01-02,ETH,-5\n2024-01-03,ETH,1\n", "line 3: price '-5'"),
        (
            "timestamp,asset,price\n2024-01-01,ETH,1\nyesterday,ETH,2\n2024-01-03,ETH,1\n",
            "line 3: timestamp 'yesterday'",
        ),
        ("timestamp,asset,price\n2024-01-01,ETH,1\n2024-01-02,,2\n2024-01-03,ETH,1\n", "line 3: empty asset"),
        ("timestamp,asset,price\n2024-01-01,ETH,1\n2024-01-02,ETH,2\n2024-01-02,ETH,3\n", "line 4: a second row"),
        (
            "timestamp,asset,price\n2024-01-01T00:00Z,ETH,1\n2024-01-01T01:00Z,ETH,1\n2024-01-01T02:30Z,ETH,1\n",
            "line 4: timestamp .* off the file's 0.5 h grid|line 4",
        ),
        (
            "timestamp,asset,open,high,low,close\n2024-01-01,ETH,1,2,0.5,1\n2024-01-02,ETH,1,1.1,1.05,1\n"
            "2024-01-03,ETH,1,1,1,1\n",
            "line 3: low 1.05 / high 1.1 do not bracket",
        ),
        ("timestamp,asset,price\n2024-01-01,ETH,1\n2024-01-02,ETH,1\n", "2 distinct timestamps"),
    ],
)
def test_bad_price_files_name_the_line_and_value(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(InputError, match=match):
        bd.load_prices_csv(_write(tmp_path, text))


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        bd.load_prices_csv(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="empty"):
        bd.load_prices_csv(_write(tmp_path, ""))


def test_shipped_daily_grid_stamps_each_close_at_the_end_of_its_day() -> None:
    px = bd.shipped_daily(["ETH", "USDC"])
    i = px.index_at(pd.Timestamp("2020-03-13"))  # the close of 2020-03-12
    assert px.day(i).startswith("2020-03-13 00:00")
    assert np.isnan(px.close[i, 1])  # USDC data begins in 2021
    assert px.close[i, 0] == pytest.approx(112.35, rel=0.05)  # ETH on Black Thursday
    assert (np.diff(px.times) == 86400).all()


def test_book_columns_alias_synthesise_lsts_and_peg_stables_before_their_data() -> None:
    px = bd.shipped_daily()
    cols = bd.book_prices(px, ("WETH", "wstETH", "USDC", "LINK"))
    assert cols.synthetic == ("wstETH",) and cols.missing == ("LINK",) and "USDC" in cols.pegged
    c = cols.prices.close
    i = px.index_at(pd.Timestamp("2020-06-01"))
    assert c[i, 2] == 1.0  # USDC held at 1 before 2021 for the replay ...
    assert not cols.observed[i, 2] and cols.observed[-1, 2]  # ... but not shown to the policy as history
    assert cols.observed[i, 1] and not cols.observed[:, 3].any()
    ratio = c[:, 1] / c[:, 0]
    ok = np.isfinite(ratio)
    np.testing.assert_allclose(ratio[ok], bd.lst_ratio(px.times[ok], 11))
    years = (px.times - 1577836800) / (365.25 * 86400)
    depeg = 1.0 - bd.lst_ratio(px.times, 11) / np.exp(0.035 * years)
    assert 0.01 < depeg.max() <= 0.06 + 1e-12 and depeg.min() >= -1e-12  # rare, bounded depegs
    assert np.mean(depeg > 0.005) < 0.3
    assert np.isnan(c[:, 3]).all()
    assert (bd.lst_ratio(px.times, 11) == bd.lst_ratio(px.times, 11)).all()


def test_the_generator_is_seeded_fat_tailed_and_round_trips_through_csv(tmp_path: Path) -> None:
    spec = SyntheticSpec(days=40, seed=9)
    a, b = generate(spec), generate(spec)
    assert np.array_equal(a.close, b.close)
    assert not np.array_equal(a.close, generate(SyntheticSpec(days=40, seed=10)).close)
    assert a.size == 40 * 24 and a.step_hours == 1.0
    assert (a.low <= a.close).all() and (a.high >= a.close).all()
    r = np.diff(np.log(a.close[:, :3]), axis=0)
    z = (r - r.mean(axis=0)) / r.std(axis=0)
    assert (np.mean(z**4, axis=0) > 4.0).all()  # fat tails (a normal has 3)
    assert np.corrcoef(r, rowvar=False)[0, 1] > 0.3  # BTC and ETH move together
    path = write_csv(a, tmp_path / "h.csv")
    back = bd.load_prices_csv(path)
    assert back.symbols == tuple(sorted(a.symbols)) or set(back.symbols) == set(a.symbols)
    j = back.symbols.index("ETH")
    np.testing.assert_allclose(back.close[:, j], a.close[:, a.symbols.index("ETH")], rtol=1e-9)


def test_realistic_book_shares_and_hf_ranges() -> None:
    cb = realistic_book(2000, seed=7)
    shares = cb.shares()
    for name in CLASSES:
        assert shares[name] == pytest.approx(DEFAULT_SHARES[name], abs=0.001)
    hf = cb.book.health_factors()
    cls = np.array(cb.classes)
    loops = np.isin(cls, ["stable-emode", "lst-emode"])
    assert np.mean((hf[loops] >= 1.0) & (hf[loops] <= 1.10)) > 0.8
    blue = cls == "bluechip-stable"
    assert np.median(hf[blue]) > 1.3 and hf[blue].max() <= 3.01
    assert (hf >= 1.0).all()
    both = (cb.book.collateral > 0) & (cb.book.debt > 0)
    assert not both.any()  # nobody borrows the asset they post
    debt = cb.book.debt.sum(axis=1)
    assert debt.max() / np.median(debt) > 50  # heavy-tailed sizes
    stable = cls == "stable-emode"
    assert (cb.book.lt[stable] == 0.95).all()  # eMode parameters
    assert not cb.reacts.any() and realistic_book(200, react_share=1.0).reacts.all()
    with pytest.raises(InputError, match="unknown position classes"):
        realistic_book(10, shares={"memecoin": 1.0})
    labelled = stored_book(cb.book.with_rows(np.arange(3)))
    assert len(labelled.classes) == 3 and "/" in labelled.classes[0]
