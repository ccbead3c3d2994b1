"""Random user activity on the Morpho Blue and Comet devnets, one mined block at a time (tests
and benchmarks of the followers; never used against a real chain: it needs anvil's
impersonation, test mutators and manual mining).

- :class:`MorphoActivity`: supply / withdraw of loan tokens, borrow, repay by assets and of all
  shares, collateral in / out, actions on behalf of another account, liquidations by seized
  assets and by repaid shares (some leaving bad debt), oracle moves, time warps;
- :class:`CometActivity`: base supplied (repaying first) and withdrawn into debt, base transfers
  (``hidden_blocks`` records the blocks where one grew or repaid a debt, which Comet emits no
  event for; never between two borrowers), collateral in / out and transferred, accruals,
  absorbs, price moves, time warps.

Actions the protocol refuses revert inside the block (no logs), as on a real chain.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from monitor.chain.abi import fn
from monitor.chain.rpc import RpcClient, to_int
from monitor.devnet import comet as cm
from monitor.devnet.morpho import (
    BORROW,
    ERC20_APPROVE,
    ERC20_MINT,
    LIQUIDATE,
    MARKET_PARAMS,
    ORACLE_SET_PRICE,
    SUPPLY,
    SUPPLY_COLLATERAL,
    MorphoDeployment,
    MorphoMarket,
)
from monitor.devnet.node import DevnetNode, Tx
from monitor.models import MAX_UINT256, WAD
from monitor.positions.comet_follow import CometFollower, present
from monitor.positions.morpho_follow import MorphoFollower
from monitor.protocols.morpho_blue import ORACLE_PRICE_SCALE, PRICE

WITHDRAW = fn(f"withdraw({MARKET_PARAMS},uint256,uint256,address,address)", "uint256,uint256")
REPAY = fn(f"repay({MARKET_PARAMS},uint256,uint256,address,bytes)", "uint256,uint256")
WITHDRAW_COLLATERAL = fn(f"withdrawCollateral({MARKET_PARAMS},uint256,address,address)")
SET_AUTHORIZATION = fn("setAuthorization(address,bool)")
GAS = 1_500_000


def mine_block(client: RpcClient, txs: Sequence[Tx]) -> tuple[int, list[bool]]:
    """Send ``txs`` (automine off) and mine them into ONE block; returns (block, success per tx).
    A transaction the contract refuses reverts inside the block, as on a real chain."""
    senders = sorted({t.sender for t in txs})
    counts = client.batch([("eth_getTransactionCount", [s, "pending"]) for s in senders]) if senders else []
    nonces = {s: to_int(c, "nonce") for s, c in zip(senders, counts, strict=True)}
    calls = []
    for tx in txs:
        calls.append(("eth_sendTransaction", [tx.as_rpc(nonces[tx.sender])]))
        nonces[tx.sender] += 1
    hashes = [str(h) for h in client.batch(calls)] if calls else []
    client.request("evm_mine")
    block = to_int(client.request("eth_blockNumber"), "eth_blockNumber")
    ok: list[bool] = []
    if hashes:
        receipts = client.batch([("eth_getTransactionReceipt", [h]) for h in hashes])
        for tx, receipt in zip(txs, receipts, strict=True):
            if not isinstance(receipt, dict) or to_int(receipt.get("blockNumber"), "blockNumber") != block:
                raise RuntimeError(f"{tx.what} was not mined in block {block}")
            ok.append(to_int(receipt.get("status"), "status") == 1)
    return block, ok



class MorphoActivity:
    """Random Morpho Blue activity of ``actors`` (and ``liquidator``), one mined block at a time."""

    def __init__(
        self, node: DevnetNode, deployment: MorphoDeployment, actors: Sequence[str], *, liquidator: str, seed: int
    ) -> None:
        self.node = node
        self.client = node.client
        self.dep = deployment
        self.liquidator = liquidator
        self.actors = list(actors)
        self.rng = random.Random(seed)
        self.prices = {m.id: int(node.call(m.oracle, PRICE)) for m in self.dep.markets}
        self.done: dict[str, int] = {}
        self.blocks = 0

    def fund(self) -> None:
        """Mint every token to every actor and the liquidator, approve Morpho, and let every actor
        act for the others (automine on)."""
        txs: list[Tx] = []
        for who in [*self.actors, self.liquidator]:
            for symbol, (token, decimals) in self.dep.tokens.items():
                amount = 10**9 * 10**decimals
                approve = ERC20_APPROVE.encode(self.dep.morpho, MAX_UINT256)
                txs += [Tx(who, token, ERC20_MINT.encode(who, amount), 200_000, f"mint {symbol}"),
                        Tx(who, token, approve, 100_000, "approve")]  # fmt: skip
        # every actor may act for every other (repay / withdraw on behalf)
        txs += [Tx(a, self.dep.morpho, SET_AUTHORIZATION.encode(b, True), 100_000, "auth")
                for a in self.actors for b in self.actors if a != b][:200]  # fmt: skip
        self.node.set_balances([*self.actors, self.liquidator], 10**21)
        self.node.send_many(txs)

    def _loan(self, m: MorphoMarket, low: float, high: float) -> int:
        return max(1, int(self.rng.uniform(low, high) * 10**m.loan_decimals))

    def _collateral(self, m: MorphoMarket, low: float, high: float) -> int:
        loan_units = self._loan(m, low, high)
        return max(1, loan_units * ORACLE_PRICE_SCALE // self.prices[m.id])

    def block(self, follower: MorphoFollower) -> int:
        """This block's random actions (and liquidations of what ``follower`` finds under HF 1), a
        price move every 4th block and a time warp every 7th, mined into ONE block."""
        self.blocks += 1
        txs: list[tuple[str, Tx]] = []
        owner = self.dep.owner
        if self.blocks % 4 == 0:
            m = self.rng.choice(self.dep.markets)
            move = self.rng.choice((-0.3, -0.12, -0.06, -0.02, 0.02, 0.05, 0.1))
            self.prices[m.id] = max(1, int(self.prices[m.id] * (1 + move)))
            txs.append(("price", Tx(owner, m.oracle, ORACLE_SET_PRICE.encode(self.prices[m.id]), 100_000, "price")))
        if self.blocks % 7 == 0:
            self.client.request("evm_increaseTime", [self.rng.choice((600, 86_400, 30 * 86_400))])
        for _ in range(self.rng.randint(1, 4)):
            txs.append(self._action(follower))
        txs += self._liquidations(follower)
        block, ok = mine_block(self.client, [t for _, t in txs])
        for (kind, _), good in zip(txs, ok, strict=True):
            if good:
                self.done[kind] = self.done.get(kind, 0) + 1
        return block

    def _action(self, follower: MorphoFollower) -> tuple[str, Tx]:
        who = self.rng.choice(self.actors)
        other = self.rng.choice(self.actors) if self.rng.random() < 0.25 else who
        m = self.rng.choice(self.dep.markets)
        p = m.params()
        pos = follower.positions.get((m.id, other))
        kind = self.rng.choice(("supply", "withdraw", "borrow", "borrow", "repay", "repay_all", "collateral_in",
                                "collateral_in", "collateral_out"))  # fmt: skip
        if kind == "supply":
            data = SUPPLY.encode(p, self._loan(m, 10, 50_000), 0, other, b"")
        elif kind == "withdraw":
            shares = pos.supply_shares // self.rng.choice((1, 2, 5)) if pos and pos.supply_shares else 10**12
            data = WITHDRAW.encode(p, 0, shares, other, who)
        elif kind == "borrow":
            data = BORROW.encode(p, self._loan(m, 10, 20_000), 0, other, who)
        elif kind == "repay":
            data = REPAY.encode(p, self._loan(m, 1, 5_000), 0, other, b"")
        elif kind == "repay_all":
            data = REPAY.encode(p, 0, pos.borrow_shares if pos and pos.borrow_shares else 1, other, b"")
        elif kind == "collateral_in":
            data = SUPPLY_COLLATERAL.encode(p, self._collateral(m, 50, 40_000), other, b"")
        else:
            amount = pos.collateral // self.rng.choice((1, 3, 10)) if pos and pos.collateral else 1
            data = WITHDRAW_COLLATERAL.encode(p, max(1, amount), other, who)
        return kind, Tx(who, self.dep.morpho, data, GAS, kind)

    def _liquidations(self, follower: MorphoFollower) -> list[tuple[str, Tx]]:
        out: list[tuple[str, Tx]] = []
        for m in self.dep.markets:
            hfs = follower.health_factors(m.id)
            under = sorted(a for a, hf in hfs.items() if hf < WAD)
            for borrower in under[:2] if self.rng.random() < 0.5 else []:  # some sink deeper first
                pos = follower.positions[(m.id, borrower)]
                if self.rng.random() < 0.5:  # seize everything: bad debt when it does not cover the debt
                    seized = pos.collateral if self.rng.random() < 0.5 else max(1, pos.collateral // 4)
                    data = LIQUIDATE.encode(m.params(), borrower, seized, 0, b"")
                else:
                    data = LIQUIDATE.encode(m.params(), borrower, 0, max(1, pos.borrow_shares // 3), b"")
                out.append(("liquidate", Tx(self.liquidator, self.dep.morpho, data, GAS, "liquidate")))
        return out



class CometActivity:
    """Random Comet activity, one block at a time; knows which base transfers no event shows."""

    def __init__(
        self, node: DevnetNode, deployment: cm.CometDeployment, actors: Sequence[str], *, liquidator: str, seed: int
    ) -> None:
        self.node = node
        self.client = node.client
        self.dep = deployment
        self.liquidator = liquidator
        self.actors = list(actors)
        self.rng = random.Random(seed)
        self.answers = {s: p for s, p in cm.comet_prices(node, self.dep).items() if s != self.dep.base.symbol}
        self.done: dict[str, int] = {}
        self.hidden_blocks: set[int] = set()  # blocks with a base transfer whose debt change no event names
        self.blocks = 0

    def fund(self) -> None:
        """Gas for every actor and the liquidator (CometLike keeps balances itself: no tokens)."""
        self.node.set_balances([*self.actors, self.liquidator], 10**21)

    def block(self, follower: CometFollower) -> int:
        """This block's random actions (and absorbs of what ``follower`` finds under HF 1), a price
        move every 4th block and a time warp every 6th, mined into ONE block."""
        self.blocks += 1
        txs: list[tuple[str, Tx]] = []
        owner = self.dep.owner
        if self.blocks % 4 == 0:
            c = self.rng.choice(self.dep.collaterals)
            move = self.rng.choice((-0.2, -0.08, -0.03, 0.02, 0.05, 0.1))
            self.answers[c.symbol] = max(1, int(self.answers[c.symbol] * (1 + move)))
            txs.append(("price", Tx(owner, c.feed, cm.SET_ANSWER.encode(self.answers[c.symbol]), 200_000, "price")))
        if self.blocks % 6 == 0:
            self.client.request("evm_increaseTime", [self.rng.choice((3_600, 86_400, 30 * 86_400))])
        for _ in range(self.rng.randint(1, 4)):
            txs.append(self._action(follower))
        txs += self._absorbs(follower)
        block, ok = mine_block(self.client, [t for _, t in txs])
        for (kind, _), good in zip(txs, ok, strict=True):
            if good:
                self.done[kind] = self.done.get(kind, 0) + 1
        if any(good and kind == "transfer_hidden" for (kind, _), good in zip(txs, ok, strict=True)):
            self.hidden_blocks.add(block)
        return block

    def _balance(self, follower: CometFollower, account: str) -> int:
        """The account's present base balance at the follower's indices (signed, base units)."""
        acct = follower.book.get(account)
        totals = follower.totals
        return present(acct.principal, totals.base_supply_index, totals.base_borrow_index) if acct else 0

    def _action(self, follower: CometFollower) -> tuple[str, Tx]:
        owner, comet = self.dep.owner, self.dep.comet
        who = self.rng.choice(self.actors)
        acct = follower.book.get(who)
        c = self.rng.choice(self.dep.collaterals)
        usd = 10**self.dep.base.decimals
        kind = self.rng.choice(("supply", "borrow", "borrow", "collateral_in", "collateral_out", "transfer",
                                "transfer", "transfer_collateral", "accrue"))  # fmt: skip
        if kind == "supply":
            return kind, Tx(owner, comet, cm.SUPPLY.encode(who, self.rng.randint(10, 20_000) * usd), GAS, kind)
        if kind == "borrow":
            return kind, Tx(owner, comet, cm.BORROW.encode(who, self.rng.randint(100, 8_000) * usd), GAS, kind)
        if kind in ("collateral_in", "collateral_out"):
            held = acct.balances.get(c.address, 0) if acct else 0
            unit = 10**c.decimals * 100 * 10**8 // max(1, self.answers[c.symbol])  # ~100 USD
            more = held + self.rng.randint(1, 100) * unit
            new = more if kind == "collateral_in" else held * self.rng.randint(0, 2) // 3
            return kind, Tx(owner, comet, cm.SET_COLLATERAL.encode(who, c.address, new), GAS, kind)
        if kind == "transfer_collateral":  # from a holder, a small part (the sender must stay collateralized)
            holders = sorted(a for a in self.actors if (h := follower.book.get(a)) and h.balances.get(c.address))
            who = self.rng.choice(holders) if holders else who
            held = follower.book[who].balances.get(c.address, 0) if who in follower.book else 0
            to = self.rng.choice([a for a in self.actors if a != who])
            amount = max(1, held // self.rng.choice((5, 20, 100)))
            return kind, Tx(who, comet, cm.TRANSFER_ASSET.encode(to, c.address, amount), GAS, kind)
        if kind == "accrue":
            return kind, Tx(who, comet, cm.ACCRUE_ACCOUNT.encode(who), GAS, kind)
        # a base transfer: visible when the sender only spends supply and the recipient owes nothing;
        # a debt grown or repaid by it names no one (never between two borrowers here: see the other test)
        to = self.rng.choice([a for a in self.actors if a != who])
        mine, theirs = self._balance(follower, who), self._balance(follower, to)
        amount = self.rng.randint(10, 5_000) * usd
        if mine > 0 and self.rng.random() < 0.6:
            amount = max(1, min(amount, mine))
        into_debt = amount > max(mine, 0)
        repays = theirs < 0
        if into_debt and repays:
            amount = max(1, mine) if mine > 0 else amount
            into_debt = amount > max(mine, 0)
            if into_debt:
                return "accrue", Tx(who, comet, cm.ACCRUE_ACCOUNT.encode(who), GAS, "accrue")
        name = "transfer_hidden" if into_debt or repays else "transfer"
        return name, Tx(who, comet, cm.TRANSFER.encode(to, amount), GAS, name)

    def _absorbs(self, follower: CometFollower) -> list[tuple[str, Tx]]:
        under = sorted(a for a, hf in follower.health_factors().items() if hf < WAD)
        if not under or self.rng.random() < 0.4:
            return []
        picked = self.rng.sample(under, k=min(2, len(under)))
        data = cm.ABSORB.encode(self.liquidator, picked)
        return [("absorb", Tx(self.liquidator, self.dep.comet, data, 2_000_000, "absorb"))]
