"""Known answers from the shipped Yahoo Finance daily prices (see PROVENANCE.md)."""

from __future__ import annotations

import math
from importlib import resources

import numpy as np
import pandas as pd
import pytest

from monitor import price_data
from monitor.errors import InputError
from monitor.price_data import (
    ALIASES,
    ASSETS,
    intraday_path,
    load_closes,
    load_daily,
    log_returns,
)


def test_assets_and_aliases_constants() -> None:
    assert ASSETS == ("BTC", "DAI", "ETH", "SOL", "USDC", "USDT")
    assert ALIASES["WETH"] == "ETH"
    assert ALIASES["WBTC"] == "BTC"


def test_csv_files_ship_in_package() -> None:
    folder = resources.files("monitor").joinpath("data", "prices")
    names = {entry.name for entry in folder.iterdir()}
    for files in price_data._FILES.values():
        assert set(files) <= names
    assert "PROVENANCE.md" in names


@pytest.mark.parametrize("asset", ASSETS)
def test_frame_shape_and_types(asset: str) -> None:
    df = load_daily(asset)
    assert list(df.columns) == ["open", "high", "low", "close"]
    assert isinstance(df.index, pd.DatetimeIndex)
    assert df.index.name == "date"
    assert df.index.tz is None
    assert df.index.is_monotonic_increasing
    assert df.index.is_unique
    assert (df.index == df.index.normalize()).all()
    assert all(dtype == np.float64 for dtype in df.dtypes)
    assert np.isfinite(df.to_numpy()).all()
    assert (df.to_numpy() > 0).all()
    assert df.index.max() == pd.Timestamp("2023-08-29")
    assert len(df) >= 971


def test_date_ranges_span_both_files() -> None:
    assert load_daily("ETH").index.min() == pd.Timestamp("2015-08-07")
    assert load_daily("BTC").index.min() == pd.Timestamp("2014-09-17")
    assert load_daily("USDC").index.min() == pd.Timestamp("2021-01-01")


def test_eth_black_thursday() -> None:
    eth = load_daily("ETH")
    mar11 = eth.loc["2020-03-11"]
    mar12 = eth.loc["2020-03-12"]
    mar13 = eth.loc["2020-03-13"]
    # 194.87 in the README is the 2020-03-11 close; the file's 03-12 open is 194.74.
    assert mar11["close"] == pytest.approx(194.868530)
    assert mar12["open"] == pytest.approx(194.738922)
    assert mar12["open"] == pytest.approx(194.87, abs=0.2)
    assert mar12["high"] == pytest.approx(195.147934)
    assert mar12["low"] == pytest.approx(111.21, abs=0.005)
    assert mar12["close"] == pytest.approx(112.35, abs=0.005)
    assert mar13["low"] == pytest.approx(95.18, abs=0.005)
    assert mar12["close"] / mar11["close"] - 1 == pytest.approx(-0.42, abs=0.005)


def test_usdc_depeg() -> None:
    day = load_daily("usdc").loc["2023-03-11"]
    assert day["low"] == pytest.approx(0.8774)
    assert day["close"] == pytest.approx(0.9715)


def test_null_rows_are_dropped() -> None:
    # The 2015-2021 ETH and 2014-2021 BTC files have literal "null" rows on these days.
    for asset in ("ETH", "BTC"):
        index = load_daily(asset).index
        for day in ("2020-04-17", "2020-10-09", "2020-10-12", "2020-10-13"):
            assert pd.Timestamp(day) not in index
        assert pd.Timestamp("2020-04-16") in index
        assert pd.Timestamp("2020-04-18") in index


def test_overlap_prefers_later_file() -> None:
    eth = load_daily("ETH")
    # 2021-01-28 is in both ETH files and they disagree (old close 1298.10).
    day = eth.loc["2021-01-28"]
    assert day["high"] == pytest.approx(1356.288696)
    assert day["close"] == pytest.approx(1332.492188)
    # 2021-11-24 is the old file's last (partial) day: close 4286.68 there.
    assert eth.loc["2021-11-24", "close"] == pytest.approx(4239.981445)
    assert eth.loc["2021-11-24", "low"] == pytest.approx(4176.183594)
    # The day after the old file ends comes only from the new file.
    assert pd.Timestamp("2021-11-25") in eth.index
    btc = load_daily("BTC")
    assert btc.loc["2021-01-28", "close"] == pytest.approx(33466.097656, rel=1e-6)


def test_overlap_days_are_not_duplicated() -> None:
    eth = load_daily("ETH")
    overlap = eth.loc["2021-01-01":"2021-11-24"]
    assert len(overlap) == 328


def test_eth_ftx_path_hits_1083() -> None:
    path = intraday_path("ETH", "2022-11-08", "2022-11-09")
    assert len(path) == 8
    labels = [label for label, _ in path]
    assert labels == [
        "2022-11-08 open",
        "2022-11-08 high",
        "2022-11-08 low",
        "2022-11-08 close",
        "2022-11-09 open",
        "2022-11-09 high",
        "2022-11-09 low",
        "2022-11-09 close",
    ]
    prices = dict(path)
    assert min(prices.values()) == pytest.approx(1083.29, abs=0.01)
    assert prices["2022-11-09 low"] == pytest.approx(1083.285645)
    assert path[0][1] == pytest.approx(1569, abs=1)
    assert path[-1][1] == pytest.approx(1100, abs=0.5)


def test_walk_order_on_down_day() -> None:
    # 2020-03-12 closed far below its open: open -> high -> low -> close.
    path = intraday_path("ETH", "2020-03-12", "2020-03-12")
    assert [label for label, _ in path] == [
        "2020-03-12 open",
        "2020-03-12 high",
        "2020-03-12 low",
        "2020-03-12 close",
    ]
    assert [value for _, value in path] == pytest.approx([194.738922, 195.147934, 111.210709, 112.347122])


def test_walk_order_on_up_day() -> None:
    # 2020-03-13 closed above its open: open -> low -> high -> close.
    path = intraday_path("ETH", "2020-03-13", "2020-03-13")
    assert [label.split()[1] for label, _ in path] == ["open", "low", "high", "close"]
    assert path[1][1] == pytest.approx(95.184303)


def test_walk_matches_daily_rows() -> None:
    path = intraday_path("BTC", "2022-05-01", "2022-05-31")
    df = load_daily("BTC").loc["2022-05-01":"2022-05-31"]
    assert len(path) == 4 * len(df)
    for i, (ts, row) in enumerate(df.iterrows()):
        day = pd.Timestamp(ts).strftime("%Y-%m-%d")
        chunk = path[4 * i : 4 * i + 4]
        assert chunk[0] == (f"{day} open", row["open"])
        assert chunk[3] == (f"{day} close", row["close"])
        expected = ["high", "low"] if row["close"] < row["open"] else ["low", "high"]
        assert [label.split()[1] for label, _ in chunk[1:3]] == expected


def test_walk_empty_range_raises() -> None:
    with pytest.raises(InputError, match="no ETH price data"):
        intraday_path("ETH", "2030-01-01", "2030-01-31")
    # 2020-04-17 is a dropped null row.
    with pytest.raises(InputError):
        intraday_path("ETH", "2020-04-17", "2020-04-17")


@pytest.mark.parametrize(
    ("alias", "target"),
    [
        ("WETH", "ETH"),
        ("weth", "ETH"),
        ("WBTC", "BTC"),
        ("wBtc", "BTC"),
        ("eth", "ETH"),
        ("Usdc", "USDC"),
    ],
)
def test_aliases_and_case(alias: str, target: str) -> None:
    pd.testing.assert_frame_equal(load_daily(alias), load_daily(target))


def test_unknown_asset_error_names_asset_and_known_ones() -> None:
    with pytest.raises(InputError) as info:
        load_daily("LUNA")
    message = str(info.value)
    assert "LUNA" in message
    for asset in ASSETS:
        assert asset in message
    with pytest.raises(InputError, match="DOGE"):
        load_closes(["ETH", "DOGE"])
    with pytest.raises(InputError, match="FOO"):
        intraday_path("FOO", "2022-01-01", "2022-01-02")
    with pytest.raises(InputError, match="FOO"):
        log_returns("FOO")


def test_cache_returns_copies() -> None:
    first = load_daily("ETH")
    original_close = first.loc["2020-03-12", "close"]
    first.loc["2020-03-12", "close"] = -1.0
    first["open"] = 0.0
    del first["high"]
    second = load_daily("ETH")
    assert second.loc["2020-03-12", "close"] == original_close
    assert (second["open"] > 0).all()
    assert second is not first
    assert len(second) == 2941
    assert "high" in second.columns
    closes = load_closes(["ETH"])
    closes.iloc[:, 0] = 0.0
    assert (load_closes(["ETH"])["ETH"] > 0).all()


def test_load_closes_alignment_and_names() -> None:
    closes = load_closes(["WETH", "usdc", "BTC"], start="2023-03-10", end="2023-03-12")
    assert list(closes.columns) == ["WETH", "usdc", "BTC"]
    assert list(closes.index) == [pd.Timestamp(d) for d in ("2023-03-10", "2023-03-11", "2023-03-12")]
    assert closes.loc["2023-03-11", "usdc"] == pytest.approx(0.9715)
    assert closes.index.name == "date"


def test_load_closes_inner_join() -> None:
    closes = load_closes(["ETH", "SOL"])
    # SOL starts 2021-01-01, so the join starts there.
    assert closes.index.min() == pd.Timestamp("2021-01-01")
    assert not closes.isna().any().any()
    closes_old = load_closes(["ETH", "BTC"], end="2020-12-31")
    assert pd.Timestamp("2020-04-17") not in closes_old.index
    assert closes_old.index.min() == pd.Timestamp("2015-08-07")


def test_load_closes_bad_input() -> None:
    with pytest.raises(InputError):
        load_closes([])
    with pytest.raises(InputError):
        load_closes(["ETH"], start="2022-02-01", end="2022-01-01")
    with pytest.raises(InputError):
        load_closes(["ETH"], start="not-a-date")


def test_log_returns_black_thursday() -> None:
    r = log_returns("ETH", "2020-03-11", "2020-03-13")
    assert list(r.index) == [pd.Timestamp("2020-03-12"), pd.Timestamp("2020-03-13")]
    assert r.dtype == np.float64
    assert r.loc["2020-03-12"] == pytest.approx(math.log(112.347122 / 194.868530))
    assert r.loc["2020-03-13"] == pytest.approx(math.log(133.201813 / 112.347122))


def test_log_returns_full_series() -> None:
    r = log_returns("btc")
    closes = load_daily("BTC")["close"]
    assert len(r) == len(closes) - 1
    assert np.isfinite(r.to_numpy()).all()
    assert r.sum() == pytest.approx(math.log(closes.iloc[-1] / closes.iloc[0]))
    # Stablecoin returns are tiny except around the depeg.
    usdc = log_returns("USDC", "2022-01-01", "2022-12-31")
    assert usdc.abs().max() < 0.05
