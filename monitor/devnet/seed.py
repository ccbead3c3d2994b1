"""Seed reproducible Aave V3 positions on the devnet and move oracle prices.

Each position supplies 1-3 collaterals and borrows one asset to a chosen health factor;
a share of them enter the stablecoin eMode. The same ``seed`` gives the same accounts,
amounts and borrows. Prices move by writing the MockAggregator's answer (its only storage
slot) and mining a block, so the protocol's own AaveOracle serves the new price.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from eth_utils import keccak, to_checksum_address

from monitor.devnet import spec as devspec
from monitor.devnet.deploy import Deployment
from monitor.devnet.node import DevnetNode, Tx
from monitor.errors import InputError
from monitor.protocols import aave_v3_abi as abi

ETH_FOR_GAS = 10**21
MOCK_AGGREGATOR_ANSWER_SLOT = 0


@dataclass(frozen=True, slots=True)
class SeededPosition:
    account: str
    collaterals: tuple[str, ...]
    debt: str
    emode: int
    target_hf: float


def seed_account(seed: int, index: int) -> str:
    """A deterministic, key-less account address (the devnet impersonates it)."""
    return to_checksum_address(keccak(text=f"liqmon/devnet/{seed}/{index}")[-20:])


def current_prices(node: DevnetNode, deployment: Deployment) -> dict[str, int]:
    """Oracle prices (8-decimal USD) by symbol, as AaveOracle serves them now."""
    symbols = list(deployment.tokens)
    assets = [deployment.tokens[s].address for s in symbols]
    prices = node.call(deployment.oracle, abi.GET_ASSETS_PRICES, assets)
    return {s: int(p) for s, p in zip(symbols, prices, strict=True)}


def set_price(node: DevnetNode, deployment: Deployment, symbol: str, usd: float, mine: bool = True) -> int:
    """Set the MockAggregator answer behind ``symbol`` and mine a block; returns the answer."""
    if not usd > 0:
        raise InputError(f"price of {symbol} must be positive, got {usd}")
    return set_answer(node, deployment, symbol, devspec.price_units(usd), mine)


def set_answer(node: DevnetNode, deployment: Deployment, symbol: str, answer: int, mine: bool = True) -> int:
    """Set the exact 8-decimal oracle answer behind ``symbol`` (and mine a block)."""
    try:
        token = deployment.token(symbol)
    except KeyError:
        known = ", ".join(deployment.tokens)
        raise InputError(f"unknown devnet asset {symbol!r}; known: {known}") from None
    if answer <= 0:
        raise InputError(f"price of {symbol} must be positive, got {answer}")
    node.set_storage(token.feed, MOCK_AGGREGATOR_ANSWER_SLOT, answer)
    if mine:
        node.mine()
    return answer


def _plan(
    rng: random.Random,
    reserves: Sequence[devspec.ReserveSpec],
    emode_share: float,
    hf_range: tuple[float, float],
) -> tuple[list[tuple[devspec.ReserveSpec, float]], devspec.ReserveSpec, int, float]:
    """Collaterals with USD values, the debt reserve, the eMode id and the target HF."""
    stable = [r for r in reserves if r.emode_category == 1]
    use_emode = rng.random() < emode_share and len(stable) >= 2
    if use_emode:
        picks = rng.sample(stable, rng.randint(1, len(stable)))
        if rng.random() < 0.3:
            picks.append(next(r for r in reserves if r.symbol == "WETH"))
        debt = rng.choice(stable)
    else:
        picks = rng.sample(list(reserves), rng.randint(1, 3))
        others = [r for r in reserves if r not in picks]
        debt = rng.choice(others)
    collaterals = [(r, float(min(2e6, max(500.0, rng.lognormvariate(9.8, 1.2))))) for r in picks]
    low, high = hf_range
    target = low + (high - low) * rng.random() ** 2  # more positions near the low end
    return collaterals, debt, (1 if use_emode else 0), target


def seed_positions(
    node: DevnetNode,
    deployment: Deployment,
    count: int,
    *,
    seed: int = 1,
    first_index: int = 0,
    emode_share: float = 0.25,
    hf_range: tuple[float, float] = (1.03, 2.5),
    reserves: Sequence[devspec.ReserveSpec] = devspec.RESERVES,
    progress: Callable[[int, int], None] = lambda _done, _total: None,
) -> list[SeededPosition]:
    if count < 0:
        raise InputError(f"position count must be >= 0, got {count}")
    if not 1.0 < hf_range[0] <= hf_range[1]:
        raise InputError(f"health factor range must satisfy 1 < low <= high, got {hf_range}")
    node.impersonate_all()
    rng = random.Random(seed * 1_000_003 + first_index)
    prices = current_prices(node, deployment)
    emode_lt = {e.id: e for e in devspec.EMODES}
    pool = deployment.pool
    seeded: list[SeededPosition] = []
    txs: list[Tx] = []
    accounts = [seed_account(seed, first_index + i) for i in range(count)]
    node.set_balances(accounts, ETH_FOR_GAS)
    for account in accounts:
        collaterals, debt, emode, target = _plan(rng, reserves, emode_share, hf_range)
        weighted_lt = weighted_ltv = 0.0
        for r, usd in collaterals:
            token = deployment.token(r.symbol)
            amount = int(usd * 10**r.decimals * devspec.USD // prices[r.symbol])
            in_emode = emode and r.emode_category == emode
            lt = emode_lt[emode].liquidation_threshold if in_emode else r.liquidation_threshold
            ltv = emode_lt[emode].ltv if in_emode else r.ltv
            value = amount * prices[r.symbol] / 10**r.decimals
            weighted_lt += value * lt
            weighted_ltv += value * ltv
            txs += [
                Tx(
                    account,
                    token.address,
                    abi.MINT.encode(account, amount),
                    200_000,
                    f"mint {r.symbol}",
                ),
                Tx(account, token.address, abi.APPROVE.encode(pool, amount), 100_000, "approve"),
                Tx(
                    account,
                    pool,
                    abi.SUPPLY.encode(token.address, amount, account, 0),
                    400_000,
                    "supply",
                ),
            ]
        if emode:
            txs.append(Tx(account, pool, abi.SET_USER_EMODE.encode(emode), 300_000, "setUserEMode"))
        debt_value = min(weighted_lt / target, weighted_ltv * 0.995) / 10_000
        debt_amount = int(debt_value * 10**debt.decimals // prices[debt.symbol])
        debt_token = deployment.token(debt.symbol)
        txs.append(
            Tx(
                account,
                pool,
                abi.BORROW.encode(debt_token.address, debt_amount, 2, 0, account),
                600_000,
                "borrow",
            )
        )
        seeded.append(
            SeededPosition(
                account,
                tuple(r.symbol for r, _ in collaterals),
                debt.symbol,
                emode,
                round(weighted_lt / 10_000 / debt_value, 6) if debt_value else float("inf"),
            )
        )
    chunk = 600
    for start in range(0, len(txs), chunk):
        node.send_many(txs[start : start + chunk])
        progress(min(len(txs), start + chunk), len(txs))
    return seeded
