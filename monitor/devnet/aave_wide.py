"""A WIDE aave-v3-origin 3.6 devnet: 60 reserves (as mainnet Aave V3 Ethereum has about), four
liquid eMode categories and up to tens of thousands of positions, each using 1-4 reserves.

The same contracts and deployment as :mod:`monitor.devnet.aave_origin` (the newest Pool,
``POOL_REVISION`` 10, deployed for real; every position opened through ``Pool.supply`` /
``borrow`` / ``setUserEMode``, no storage written behind the Pool's back), with a wider market:

- the 7 origin reserves (WETH, wstETH, WBTC, USDC, USDT, DAI, PTUSD) and 53 more
  (:data:`WIDE_RESERVES`): 10 stablecoins ``USDS1..10`` (6 / 18 decimals), 10 ETH liquid-staking
  tokens ``LST1..10`` (18), 5 BTC wrappers ``BTC1..5`` (8) and 28 other assets ``ALT1..28``
  (prices 0.05-900 USD, 6 / 8 / 18 decimals; every seventh one borrow-only with LT 0);
- eMode 1 ETH correlated (+ the LSTs), 2 Stablecoins (+ the USDS), 3 PT-USD, 4 BTC correlated;
- positions (:func:`plan_wide_positions`): supply-only, single, multi-collateral, multi-debt,
  and eMode 1 / 2 / 3 / 4 ones (some with collateral outside the category); every fifth small,
  about 40 % near the LTV limit.

Seeding is fast: :func:`send_in_blocks` turns automine off and sends the k-th transaction of
every account together, up to ``per_block`` in ONE mined block (10,000 positions: ~70,000
transactions in ~150 blocks). The test-sized world is 60 reserves x 300 positions
(:func:`start_wide_devnet` defaults); the 10,000-position one is for ``scripts/bench_scale.py``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from monitor.chain.rpc import RpcClient, to_int
from monitor.devnet.aave_origin import (
    BTC_RATE,
    DEFAULT_SEED,
    ETH_RATE,
    NEAR_SHARE,
    ORIGIN_RESERVES,
    SEED_NAMESPACE,
    SMALL_EVERY,
    STABLE_RATE,
    USD,
    OriginDevnet,
    OriginEModeSpec,
    OriginPosition,
    OriginReserveSpec,
    RateSpec,
    accrue_interest,
    deploy_origin,
    emode_spec,
    open_positions,
    origin_prices,
    reserve_spec,
)
from monitor.devnet.anvil import Anvil
from monitor.devnet.node import DevnetNode, Tx
from monitor.devnet.seed import seed_account
from monitor.errors import DevnetError, InputError

WIDE_SEED_NAMESPACE = SEED_NAMESPACE + 7_000  # accounts apart from the 7-reserve origin devnet's
WIDE_POSITIONS = 300  # the test-sized world
WIDE_WHALE_USD = 400_000_000  # liquidity per borrowable reserve (10,000 positions borrow ~$100 M in all)
ALT_RATE = RateSpec(4500, 0, 700, 30000)


def _wide_reserves() -> tuple[OriginReserveSpec, ...]:
    out = list(ORIGIN_RESERVES)
    for i in range(1, 11):
        decimals = 6 if i % 2 else 18
        out.append(OriginReserveSpec(f"USDS{i}", f"Stable {i}", decimals, 1.0, 7400, 7700 + 10 * (i % 3),
                                     10450, 1000, 1000, True, STABLE_RATE))  # fmt: skip
    for i in range(1, 11):
        out.append(OriginReserveSpec(f"LST{i}", f"Staked ETH {i}", 18, 3000.0 * (1.0 + 0.02 * i), 7300 + 20 * i,
                                     7800 + 20 * i, 10600, 1500, 1000, i <= 2, ETH_RATE))  # fmt: skip
    for i in range(1, 6):
        out.append(OriginReserveSpec(f"BTC{i}", f"Wrapped BTC {i}", 8, 60000.0 * (1.0 - 0.002 * i), 7000,
                                     7500, 10600, 2000, 1000, i == 1, BTC_RATE))  # fmt: skip
    prices = (0.05, 0.4, 1.7, 4.5, 12.0, 28.0, 75.0, 160.0, 420.0, 900.0)
    for i in range(1, 29):
        decimals = (18, 6, 8, 18)[i % 4]
        borrow_only = i % 7 == 0
        ltv = 0 if borrow_only else 4000 + 100 * (i % 26)
        lt = 0 if borrow_only else ltv + 500
        out.append(OriginReserveSpec(f"ALT{i}", f"Alt asset {i}", decimals, prices[i % len(prices)] * (1 + i / 100),
                                     ltv, lt, 0 if borrow_only else 10750, 2000, 1000, i % 2 == 0 or borrow_only,
                                     ALT_RATE))  # fmt: skip
    assert len(out) == 60
    return tuple(out)


WIDE_RESERVES: tuple[OriginReserveSpec, ...] = _wide_reserves()
_STABLES = ("USDC", "USDT", "DAI", *(f"USDS{i}" for i in range(1, 11)))
_ETH_GROUP = ("WETH", "wstETH", *(f"LST{i}" for i in range(1, 11)))
_BTC_GROUP = ("WBTC", *(f"BTC{i}" for i in range(1, 6)))
WIDE_EMODES: tuple[OriginEModeSpec, ...] = (
    OriginEModeSpec(1, 9300, 9500, 10100, "ETH correlated", _ETH_GROUP, ("WETH",)),
    OriginEModeSpec(2, 9000, 9300, 10200, "Stablecoins", (*_STABLES, "PTUSD"), ("USDC", "USDT"), ("DAI",)),
    OriginEModeSpec(3, 8600, 8800, 10500, "PT-USD", ("PTUSD", "USDC"), ("USDC", "USDT", "DAI")),
    OriginEModeSpec(4, 9000, 9300, 10200, "BTC correlated", _BTC_GROUP, ("WBTC",)),
)
COLLATERALS = tuple(r.symbol for r in WIDE_RESERVES if r.liquidation_threshold)
BORROWABLE = tuple(r.symbol for r in WIDE_RESERVES if r.borrowable)
# what plain (no-eMode) positions borrow: mostly stables and ETH, as on mainnet
_PLAIN_DEBTS = (("USDC", 30), ("USDT", 20), ("WETH", 15), ("DAI", 8), ("WBTC", 5), ("USDS1", 3), ("USDS2", 3),
                *((s, 1) for s in BORROWABLE if s.startswith(("ALT", "LST", "BTC", "USDS3", "USDS4"))))  # fmt: skip

WIDE_KINDS: tuple[tuple[str, int], ...] = (
    ("supply_only", 8), ("single", 30), ("multi_collateral", 20), ("multi_debt", 10), ("emode_eth", 12),
    ("emode_stable", 10), ("emode_btc", 6), ("pt_emode3", 4),
)  # fmt: skip


def _debt_choice(rng: random.Random, exclude: Sequence[str]) -> str:
    options = [(s, w) for s, w in _PLAIN_DEBTS if s not in exclude]
    return rng.choices([s for s, _ in options], [w for _, w in options])[0]


def _plan(rng: random.Random, kind: str) -> tuple[int, list[str], list[str]]:
    """(eMode, collateral symbols, debt symbols): 1-4 reserves in all."""
    if kind == "supply_only":
        return 0, rng.sample(COLLATERALS, rng.randint(1, 2)), []
    if kind == "single":
        c = rng.choice(COLLATERALS)
        return 0, [c], [_debt_choice(rng, [c])]
    if kind == "multi_collateral":
        cs = rng.sample(COLLATERALS, rng.randint(2, 3))
        return 0, cs, [_debt_choice(rng, cs)]
    if kind == "multi_debt":
        cs = rng.sample(COLLATERALS, rng.randint(1, 2))
        first = _debt_choice(rng, cs)
        return 0, cs, [first, _debt_choice(rng, [*cs, first])]
    if kind == "emode_eth":
        cs = rng.sample([s for s in _ETH_GROUP if s != "WETH"], rng.randint(1, 2))
        if rng.random() < 0.2:
            cs.append(rng.choice(["USDC", "WBTC", "ALT1", "ALT9"]))  # outside the category's bitmap
        return 1, cs, ["WETH"]
    if kind == "emode_stable":
        cs = rng.sample([s for s in _STABLES if s not in ("USDC", "USDT")], rng.randint(1, 2))
        return 2, cs, [rng.choice(["USDC", "USDT"])]
    if kind == "emode_btc":
        cs = rng.sample([s for s in _BTC_GROUP if s != "WBTC"], rng.randint(1, 2))
        if rng.random() < 0.2:
            cs.append("WETH")
        return 4, cs, ["WBTC"]
    if kind == "pt_emode3":
        return 3, ["PTUSD", *(["USDC"] if rng.random() < 0.4 else [])], [rng.choice(["USDT", "DAI"])]
    raise InputError(f"unknown position kind {kind!r}")


def plan_wide_positions(n: int, prices: dict[str, int], *, seed: int = DEFAULT_SEED) -> list[OriginPosition]:
    """``n`` reproducible positions on :data:`WIDE_RESERVES` at ``prices`` (8-decimal USD by symbol)."""
    if n < 0:
        raise InputError(f"position count must be >= 0, got {n}")
    kinds = [k for k, _ in WIDE_KINDS]
    weights = [w for _, w in WIDE_KINDS]
    positions: list[OriginPosition] = []
    for index in range(n):
        rng = random.Random(f"liqmon/wide/{seed}/{index}")
        kind = rng.choices(kinds, weights)[0]
        small = index % SMALL_EVERY == SMALL_EVERY - 1
        near = rng.random() < NEAR_SHARE
        category, collateral_symbols, debt_symbols = _plan(rng, kind)
        emode = emode_spec(category, WIDE_EMODES) if category else None
        total_usd = rng.uniform(400.0, 1_900.0) if small else min(400_000.0, max(2_500.0, rng.lognormvariate(9.3, 1.0)))
        weights_c = [rng.uniform(0.5, 1.5) for _ in collateral_symbols]
        lt_sum = ltv_sum = 0.0
        collaterals: dict[str, int] = {}
        for symbol, w in zip(collateral_symbols, weights_c, strict=True):
            spec = reserve_spec(symbol, WIDE_RESERVES)
            amount = int(total_usd * w / sum(weights_c) * USD * 10**spec.decimals // prices[symbol])
            inside = emode is not None and symbol in emode.collateral
            ltv, lt = (
                (emode.ltv, emode.liquidation_threshold) if inside and emode else (spec.ltv, spec.liquidation_threshold)
            )
            value = amount * prices[symbol] / 10**spec.decimals / USD
            lt_sum += value * lt
            ltv_sum += value * ltv
            collaterals[symbol] = amount
        debts: dict[str, int] = {}
        hf = 0.0
        if debt_symbols:
            target = rng.uniform(1.02, 1.12) if near else 1.15 + 1.85 * rng.random() ** 1.5
            debt_usd = min(lt_sum / target, ltv_sum * 0.99) / 10_000
            shares = [1.0] if len(debt_symbols) == 1 else [s := rng.uniform(0.3, 0.7), 1.0 - s]
            for symbol, share in zip(debt_symbols, shares, strict=True):
                spec = reserve_spec(symbol, WIDE_RESERVES)
                debts[symbol] = max(1, int(debt_usd * share * USD * 10**spec.decimals // prices[symbol]))
            hf = round(lt_sum / 10_000 / debt_usd, 6)
        account = seed_account(seed + WIDE_SEED_NAMESPACE, index)
        positions.append(OriginPosition(account, kind, category, collaterals, debts, small, hf))
    return positions


def send_in_blocks(node: DevnetNode, txs: Sequence[Tx], per_block: int = 1_000) -> int:
    """Send ``txs`` with automine off: the k-th transaction of every sender in wave k, each wave in
    chunks of ``per_block`` mined together (``evm_mine`` until every receipt is there); every
    receipt must succeed. Returns the blocks mined. Order is kept per sender only."""
    client = node.client
    waves: list[list[Tx]] = []
    seen: dict[str, int] = {}
    for tx in txs:
        k = seen.get(tx.sender, 0)
        seen[tx.sender] = k + 1
        if k == len(waves):
            waves.append([])
        waves[k].append(tx)
    mined = 0
    client.request("evm_setAutomine", [False])
    try:
        for wave in waves:
            for start in range(0, len(wave), per_block):
                part = wave[start : start + per_block]
                senders = [t.sender for t in part]
                nonces = client.batch([("eth_getTransactionCount", [s, "pending"]) for s in senders])
                hashes = client.batch(
                    [("eth_sendTransaction", [t.as_rpc(to_int(n, "nonce"))]) for t, n in zip(part, nonces, strict=True)]
                )
                receipts: list[object] = [None] * len(part)
                deadline = time.monotonic() + 120
                while any(r is None for r in receipts):
                    client.request("evm_mine")
                    mined += 1
                    missing = [i for i, r in enumerate(receipts) if r is None]
                    got = client.batch([("eth_getTransactionReceipt", [hashes[i]]) for i in missing])
                    for i, receipt in zip(missing, got, strict=True):
                        receipts[i] = receipt if isinstance(receipt, dict) else None
                    if time.monotonic() > deadline:
                        raise DevnetError(f"{sum(r is None for r in receipts)} transactions not mined in 120 s")
                for tx, receipt in zip(part, receipts, strict=True):
                    assert isinstance(receipt, dict)
                    if to_int(receipt.get("status"), "status") != 1:
                        raise DevnetError(f"{tx.what or 'transaction'} from {tx.sender} reverted")
    finally:
        client.request("evm_setAutomine", [True])
    return mined


@contextmanager
def start_wide_devnet(
    n: int = WIDE_POSITIONS,
    *,
    seed: int = DEFAULT_SEED,
    days: float = 30,
    progress: Callable[[str], None] = lambda _msg: None,
) -> Iterator[OriginDevnet]:
    """anvil + the 60-reserve market + ``n`` positions + ``days`` of interest; stops anvil on exit.
    Yields an :class:`~monitor.devnet.aave_origin.OriginDevnet` (same fields as the 7-reserve one)."""
    with Anvil() as anvil:
        client = RpcClient([anvil.url], timeout=300, max_retries=0)
        try:
            node = DevnetNode(client)
            started = time.perf_counter()
            deployment = deploy_origin(node, WIDE_RESERVES, WIDE_EMODES, progress=progress, whale_usd=WIDE_WHALE_USD)
            progress(f"deployed 60 reserves in {time.perf_counter() - started:.1f} s")
            positions = plan_wide_positions(n, origin_prices(node, deployment), seed=seed)
            started = time.perf_counter()
            open_positions(
                node, deployment, positions, WIDE_EMODES, send=lambda txs: send_in_blocks(node, txs), chunk=20_000,
                progress=lambda done, total: progress(f"positions: {done:,} / {total:,} transactions"),
            )  # fmt: skip
            progress(f"opened {n:,} positions in {time.perf_counter() - started:.1f} s")
            acted = accrue_interest(node, deployment, positions, days, seed=seed, act_share=0.02) if days else []
            accounts = [p.account for p in positions]
            yield OriginDevnet(anvil, client, node, deployment, positions, accounts, acted, seed)
        finally:
            client.close()


__all__ = ["BORROWABLE", "COLLATERALS", "WIDE_EMODES", "WIDE_RESERVES", "plan_wide_positions", "send_in_blocks",
           "start_wide_devnet"]  # fmt: skip
