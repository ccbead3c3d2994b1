"""Random user activity on an Aave V3 devnet, one mined block at a time (tests and benchmarks).

Never used against a real chain: it needs anvil's impersonation and manual mining. Each
:meth:`ReplayDriver.block` sends a few random actions of the followed accounts (supply, borrow,
repay, repay with aTokens, withdraw (some of everything), aToken transfers, collateral on / off,
eMode switches, liquidations of accounts the followed state finds under HF 1 (receiving aTokens
or the underlying)), optionally a price move and a time warp, and mines them into ONE block.
Actions the Pool refuses revert inside the block (no logs), as on a real chain.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from monitor.chain.abi import fn
from monitor.chain.rpc import RpcClient, to_int
from monitor.devnet.node import Tx
from monitor.models import MAX_UINT256, WAD, Reserve
from monitor.positions.state import FollowedMarket
from monitor.protocols import aave_v3_abi as abi

WITHDRAW = fn("withdraw(address,uint256,address)", "uint256")
REPAY_WITH_A_TOKENS = fn("repayWithATokens(address,uint256,uint256)", "uint256")
SET_COLLATERAL = fn("setUserUseReserveAsCollateral(address,bool)")
TRANSFER = fn("transfer(address,uint256)", "bool")
GAS = 3_000_000
ETH_FOR_GAS = 10**21
FUND_USD = 5_000_000  # of every token per actor

# a price move: (symbol, new 8-decimal answer) -> the transaction that makes it, or None when it
# is made directly in storage (the 3.0 devnet's MockAggregator)
PriceMove = Callable[[str, int], Tx | None]


@dataclass
class Activity:
    """What the replay did so far (counts of sent and of successful actions, by kind)."""

    sent: dict[str, int] = field(default_factory=dict)
    succeeded: dict[str, int] = field(default_factory=dict)
    blocks: int = 0

    def add(self, kind: str, ok: bool) -> None:
        self.sent[kind] = self.sent.get(kind, 0) + 1
        if ok:
            self.succeeded[kind] = self.succeeded.get(kind, 0) + 1


class ReplayDriver:
    """Random activity of ``actors`` (and one ``liquidator``) on the market ``reserves`` describe."""

    def __init__(
        self,
        client: RpcClient,
        pool: str,
        reserves: Sequence[Reserve],
        actors: Sequence[str],
        liquidator: str,
        *,
        price_move: PriceMove,
        emode_ids: Sequence[int],
        borrowable: Sequence[str] = (),
        seed: int = 1,
        actions_per_block: tuple[int, int] = (1, 4),
        price_every: int = 4,
        warp_every: int = 7,
    ) -> None:
        self.client = client
        self.pool = pool
        self.reserves = list(reserves)
        self.actors = list(actors)
        self.liquidator = liquidator
        self.price_move = price_move
        self.emode_ids = [0, *emode_ids]
        self.borrowable = [r for r in self.reserves if not borrowable or r.symbol in borrowable]
        self.rng = random.Random(seed)
        self.actions_per_block = actions_per_block
        self.price_every = price_every
        self.warp_every = warp_every
        self.activity = Activity()
        self.answers: dict[str, int] = {r.symbol: r.price for r in self.reserves}

    # -- set-up (automine on) -------------------------------------------------------------

    def fund(self) -> None:
        """Mint every token to every actor and the liquidator and approve the Pool (automine on)."""
        everyone = [*self.actors, self.liquidator]
        self.client.request("anvil_autoImpersonateAccount", [True])
        self.client.batch([("anvil_setBalance", [a, hex(ETH_FOR_GAS)]) for a in everyone])
        txs: list[Tx] = []
        for who in everyone:
            for r in self.reserves:
                amount = FUND_USD * 10**r.decimals * 10**8 // max(1, r.price)
                txs += [
                    Tx(who, r.asset, abi.MINT.encode(who, amount), 200_000, f"mint {r.symbol}"),
                    Tx(who, r.asset, abi.APPROVE.encode(self.pool, MAX_UINT256), 100_000, f"approve {r.symbol}"),
                ]
        self._send(txs, mine=False)

    # -- one block ------------------------------------------------------------------------

    def block(self, state: FollowedMarket) -> int:
        """Send this block's random actions, mine them into one block; returns its number."""
        self.activity.blocks += 1
        n = self.activity.blocks
        txs: list[tuple[str, Tx]] = []
        if self.price_every and n % self.price_every == 0:
            txs += self._price_moves()
        if self.warp_every and n % self.warp_every == 0:
            self.client.request("evm_increaseTime", [self.rng.choice((600, 3_600, 86_400, 7 * 86_400, 30 * 86_400))])
        for _ in range(self.rng.randint(*self.actions_per_block)):
            action = self._action(state)
            if action is not None:
                txs.append(action)
        liquidation = self._liquidation(state)
        if liquidation is not None:
            txs.append(liquidation)
        return self._send_block(txs)

    def _price_moves(self) -> list[tuple[str, Tx]]:
        out: list[tuple[str, Tx]] = []
        for r in self.rng.sample(self.reserves, k=min(2, len(self.reserves))):
            move = self.rng.choice((-0.15, -0.08, -0.03, -0.01, 0.01, 0.03, 0.06))
            answer = max(1, int(self.answers[r.symbol] * (1 + move)))
            self.answers[r.symbol] = answer
            tx = self.price_move(r.symbol, answer)
            if tx is not None:
                out.append(("price", tx))
        return out

    def _amount(self, r: Reserve, usd_low: float, usd_high: float) -> int:
        usd = self.rng.uniform(usd_low, usd_high)
        return max(1, int(usd * 10**r.decimals * 10**8 / max(1, r.price)))

    def _action(self, state: FollowedMarket) -> tuple[str, Tx] | None:
        who = self.rng.choice(self.actors)
        acct = state.accounts.get(who)
        r = self.rng.choice(self.reserves)
        reserve = state.reserves.get(r.asset, r)
        kind = self.rng.choice(
            ("supply", "supply", "borrow", "borrow", "repay", "repay_all", "repay_atokens", "withdraw",
             "withdraw_all", "transfer", "collateral", "emode")
        )  # fmt: skip
        held_c = sorted(acct.collateral) if acct else []
        held_d = sorted(acct.debt) if acct else []
        if kind in ("repay", "repay_all", "repay_atokens") and held_d:
            reserve = state.reserves[self.rng.choice(held_d)]
        if kind in ("withdraw", "withdraw_all", "transfer", "collateral") and held_c:
            reserve = state.reserves[self.rng.choice(held_c)]
        asset = reserve.asset
        if kind == "supply":
            data = abi.SUPPLY.encode(asset, self._amount(reserve, 50, 20_000), who, 0)
        elif kind == "borrow":
            reserve = self.rng.choice(self.borrowable)
            data = abi.BORROW.encode(reserve.asset, self._amount(reserve, 10, 3_000), 2, 0, who)
        elif kind == "repay":
            data = abi.REPAY.encode(asset, self._amount(reserve, 5, 2_000), 2, who)
        elif kind == "repay_all":
            data = abi.REPAY.encode(asset, MAX_UINT256, 2, who)
        elif kind == "repay_atokens":
            data = REPAY_WITH_A_TOKENS.encode(asset, self._amount(reserve, 5, 1_000), 2)
        elif kind == "withdraw":
            data = WITHDRAW.encode(asset, self._amount(reserve, 5, 3_000), who)
        elif kind == "withdraw_all":
            data = WITHDRAW.encode(asset, MAX_UINT256, who)
        elif kind == "transfer":
            to = self.rng.choice([a for a in self.actors if a != who] or [who])
            return kind, Tx(who, reserve.a_token, TRANSFER.encode(to, self._amount(reserve, 5, 2_000)), GAS, kind)
        elif kind == "collateral":
            on = not (acct and (acct.configuration >> (2 * reserve.reserve_id + 1)) & 1)
            data = SET_COLLATERAL.encode(asset, on)
        else:
            data = abi.SET_USER_EMODE.encode(self.rng.choice(self.emode_ids))
        return kind, Tx(who, self.pool, data, GAS, kind)

    def _liquidation(self, state: FollowedMarket) -> tuple[str, Tx] | None:
        candidates = [
            a for a, s in state.accounts.items()
            if s.debt and a != self.liquidator and state.account_data(a).health_factor < WAD
        ]  # fmt: skip
        if not candidates:
            return None
        user = self.rng.choice(sorted(candidates))
        acct = state.accounts[user]
        collateral = [a for a in acct.collateral if (acct.configuration >> (2 * state.reserves[a].reserve_id + 1)) & 1]
        if not collateral:
            return None
        debt_asset = self.rng.choice(sorted(acct.debt))
        cover = MAX_UINT256 if self.rng.random() < 0.5 else max(1, acct.debt[debt_asset] // 3)
        data = abi.LIQUIDATION_CALL.encode(
            self.rng.choice(sorted(collateral)), debt_asset, user, cover, self.rng.random() < 0.5
        )
        return "liquidation", Tx(self.liquidator, self.pool, data, GAS, "liquidation")

    # -- sending --------------------------------------------------------------------------

    def _nonces(self, senders: Sequence[str]) -> dict[str, int]:
        unique = sorted(set(senders))
        counts = self.client.batch([("eth_getTransactionCount", [s, "pending"]) for s in unique])
        return {s: to_int(c, "nonce") for s, c in zip(unique, counts, strict=True)}

    def _send(self, txs: Sequence[Tx], *, mine: bool) -> list[str]:
        following = self._nonces([t.sender for t in txs])
        calls = []
        for tx in txs:
            calls.append(("eth_sendTransaction", [tx.as_rpc(following[tx.sender])]))
            following[tx.sender] += 1
        hashes: list[str] = []
        for start in range(0, len(calls), 400):
            hashes += [str(h) for h in self.client.batch(calls[start : start + 400])]
            if not mine:
                self._wait(hashes[start:])
        return hashes

    def _wait(self, hashes: Sequence[str]) -> list[dict[str, object]]:
        for _ in range(2_000):
            got = self.client.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
            if all(isinstance(r, dict) for r in got):
                return [r for r in got if isinstance(r, dict)]
        raise RuntimeError("transactions not mined")

    def _send_block(self, txs: Sequence[tuple[str, Tx]]) -> int:
        hashes = self._send([tx for _, tx in txs], mine=True) if txs else []
        self.client.request("evm_mine")
        receipts = self._wait(hashes) if hashes else []
        block = to_int(self.client.request("eth_blockNumber"), "eth_blockNumber")
        for (kind, _tx), receipt in zip(txs, receipts, strict=True):
            if to_int(receipt.get("blockNumber"), "blockNumber") != block:
                raise RuntimeError(f"{kind} was mined in block {receipt.get('blockNumber')}, not {block}")
            self.activity.add(kind, to_int(receipt.get("status"), "status") == 1)
        return block
