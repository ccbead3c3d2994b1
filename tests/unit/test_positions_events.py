"""Aave V3 event decoding for the followed state: signatures and indexed parameters as both
sources declare them (3.0 artifacts, 3.6.0 interfaces), and exact decoding of hand-built logs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from eth_utils import to_checksum_address

from monitor.chain.abi import event_topic
from monitor.chain.logs import Log
from monitor.devnet.artifacts import aave_artifact, abi_type
from monitor.errors import DecodeError
from monitor.positions import aave_events as ev

POOL = "0x1111111111111111111111111111111111111111"
ATOKEN = "0x2222222222222222222222222222222222222222"
VTOKEN = "0x3333333333333333333333333333333333333333"
CONFIGURATOR = "0x4444444444444444444444444444444444444444"
PROVIDER = "0x5555555555555555555555555555555555555555"
ASSET = "0x6666666666666666666666666666666666666666"
ALICE = to_checksum_address("0xa11ce00000000000000000000000000000000001")
BOB = to_checksum_address("0xb0b0000000000000000000000000000000000002")
WATCHED = {
    POOL.lower(): ev.Watched("pool"),
    ATOKEN.lower(): ev.Watched("a_token", ASSET),
    VTOKEN.lower(): ev.Watched("variable_debt_token", ASSET),
    CONFIGURATOR.lower(): ev.Watched("configurator"),
    PROVIDER.lower(): ev.Watched("provider"),
}
ORIGIN = Path(__file__).resolve().parents[2] / "node_modules/@aave-dao/aave-v3-origin/src/contracts/interfaces"

# signature -> which parameters are indexed (what the decoders assume)
INDEXED: dict[str, tuple[bool, ...]] = {
    ev.SUPPLY: (True, False, True, False, True),
    ev.WITHDRAW: (True, True, True, False),
    ev.BORROW: (True, False, True, False, False, False, True),
    ev.REPAY: (True, True, True, False, False),
    ev.LIQUIDATION_CALL: (True, True, True, False, False, False, False),
    ev.COLLATERAL_ENABLED: (True, True),
    ev.COLLATERAL_DISABLED: (True, True),
    ev.USER_EMODE_SET: (True, False),
    ev.RESERVE_DATA_UPDATED: (True, False, False, False, False, False),
    ev.SWAP_BORROW_RATE_MODE: (True, True, False),
    ev.REBALANCE_STABLE_BORROW_RATE: (True, True),
    ev.MINT_UNBACKED: (True, False, True, False, True),
    ev.DEFICIT_CREATED: (True, True, False),
    ev.TOKEN_MINT: (True, True, False, False, False),
    ev.TOKEN_BURN: (True, True, False, False, False),
    ev.BALANCE_TRANSFER: (True, True, False, False),
}
ONLY_30 = {ev.SWAP_BORROW_RATE_MODE, ev.REBALANCE_STABLE_BORROW_RATE, ev.MINT_UNBACKED}
ONLY_36 = {ev.DEFICIT_CREATED}


def artifact_events() -> dict[str, tuple[bool, ...]]:
    found: dict[str, tuple[bool, ...]] = {}
    for name in ("Pool", "AToken", "VariableDebtToken", "PoolConfigurator", "PoolAddressesProvider"):
        for item in aave_artifact(name)["abi"]:
            if item.get("type") == "event":
                sig = f"{item['name']}({','.join(abi_type(p) for p in item['inputs'])})"
                found[sig] = tuple(bool(p["indexed"]) for p in item["inputs"])
    return found


def origin_events() -> dict[str, tuple[bool, ...]]:
    """Events declared in the 3.6.0 interfaces, read from the Solidity source."""
    found: dict[str, tuple[bool, ...]] = {}
    for name in ("IPool", "IScaledBalanceToken", "IAToken", "IPoolConfigurator", "IPoolAddressesProvider"):
        text = re.sub(r"/\*.*?\*/|//[^\n]*", "", (ORIGIN / f"{name}.sol").read_text(), flags=re.S)
        for event, params in re.findall(r"event\s+(\w+)\s*\((.*?)\)\s*;", text, flags=re.S):
            types, flags = [], []
            for param in (p.split() for p in params.split(",") if p.strip()):
                types.append({"DataTypes.InterestRateMode": "uint8", "uint": "uint256"}.get(param[0], param[0]))
                flags.append("indexed" in param)
            found[f"{event}({','.join(types)})"] = tuple(flags)
    return found


@pytest.mark.parametrize("signature", sorted(INDEXED))
def test_user_event_signatures_and_indexed_params_in_both_sources(signature: str) -> None:
    if signature not in ONLY_36:
        assert artifact_events()[signature] == INDEXED[signature]
    if signature not in ONLY_30:
        assert origin_events()[signature] == INDEXED[signature]


def test_config_and_provider_events_exist_in_a_source() -> None:
    known = set(artifact_events()) | set(origin_events())
    assert set(ev.CONFIG_EVENTS) <= known, set(ev.CONFIG_EVENTS) - known
    assert set(ev.PROVIDER_EVENTS) <= known
    assert "AssetLtvzeroInEModeChanged(address,uint8,bool)" in origin_events()
    assert "EModeAssetCategoryChanged(address,uint8,uint8)" in artifact_events()
    assert len(set(ev.WATCHED_TOPICS)) == len(ev.WATCHED_TOPICS)


def _topic(address: str) -> str:
    return "0x" + "00" * 12 + address[2:].lower()


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _log(address: str, signature: str, topics: list[str], words: list[int], block: int = 10, index: int = 0) -> Log:
    return Log(address, (event_topic(signature), *topics), b"".join(_word(w) for w in words), block, "0x" + "ab" * 32,
               index)  # fmt: skip


def test_token_mint_and_burn_carry_the_signed_amount_at_the_index() -> None:
    index = 1_050_000_000_000_000_000_000_000_000
    mint = ev.decode_log(
        _log(ATOKEN, ev.TOKEN_MINT, [_topic(BOB), _topic(ALICE)], [1_005, 5, index]), WATCHED[ATOKEN.lower()]
    )
    assert mint == ev.TokenMint(ATOKEN, 10, 0, ASSET, False, BOB, ALICE, 1_005, 5, index)
    assert isinstance(mint, ev.TokenMint) and mint.amount == 1_000 and mint.account == ALICE
    shrink = ev.decode_log(_log(VTOKEN, ev.TOKEN_MINT, [_topic(ALICE)] * 2, [3, 10, index]), WATCHED[VTOKEN.lower()])
    assert isinstance(shrink, ev.TokenMint) and shrink.debt and shrink.amount == -7  # a burn below the interest
    burn = ev.decode_log(_log(VTOKEN, ev.TOKEN_BURN, [_topic(ALICE), _topic("0x" + "00" * 20)], [90, 10, index]),
                         WATCHED[VTOKEN.lower()])  # fmt: skip
    assert isinstance(burn, ev.TokenBurn) and burn.amount == -100 and burn.account == ALICE and burn.debt


def test_balance_transfer_only_from_an_atoken() -> None:
    raw = _log(ATOKEN, ev.BALANCE_TRANSFER, [_topic(ALICE), _topic(BOB)], [77, 10**27])
    assert ev.decode_log(raw, WATCHED[ATOKEN.lower()]) == ev.BalanceTransfer(
        ATOKEN, 10, 0, ASSET, ALICE, BOB, 77, 10**27
    )
    assert ev.decode_log(raw, WATCHED[VTOKEN.lower()]) is None
    transfer = _log(ATOKEN, "Transfer(address,address,uint256)", [_topic(ALICE), _topic(BOB)], [1])
    assert ev.decode_log(transfer, WATCHED[ATOKEN.lower()]) is None  # the ERC20 event is not followed


def test_pool_events_decode_exactly() -> None:
    pool = WATCHED[POOL.lower()]
    supply = ev.decode_log(_log(POOL, ev.SUPPLY, [_topic(ASSET), _topic(BOB), "0x" + f"{7:064x}"],
                                [int(ALICE, 16), 500]), pool)  # fmt: skip
    assert supply == ev.Supply(POOL, 10, 0, ASSET, ALICE, BOB, 500, 7)
    borrow = ev.decode_log(_log(POOL, ev.BORROW, [_topic(ASSET), _topic(BOB), "0x" + "00" * 32],
                                [int(ALICE, 16), 9, 2, 123]), pool)  # fmt: skip
    assert borrow == ev.Borrow(POOL, 10, 0, ASSET, ALICE, BOB, 9, 2, 123, 0)
    repay = ev.decode_log(_log(POOL, ev.REPAY, [_topic(ASSET), _topic(BOB), _topic(ALICE)], [4, 1]), pool)
    assert repay == ev.Repay(POOL, 10, 0, ASSET, BOB, ALICE, 4, True)
    withdraw = ev.decode_log(_log(POOL, ev.WITHDRAW, [_topic(ASSET), _topic(BOB), _topic(ALICE)], [3]), pool)
    assert withdraw == ev.Withdraw(POOL, 10, 0, ASSET, BOB, ALICE, 3)
    liq = ev.decode_log(_log(POOL, ev.LIQUIDATION_CALL, [_topic(ASSET), _topic(ATOKEN), _topic(BOB)],
                             [11, 12, int(ALICE, 16), 0]), pool)  # fmt: skip
    assert liq == ev.LiquidationCall(POOL, 10, 0, ASSET, ATOKEN, BOB, 11, 12, ALICE, False)
    on = ev.decode_log(_log(POOL, ev.COLLATERAL_ENABLED, [_topic(ASSET), _topic(BOB)], []), pool)
    off = ev.decode_log(_log(POOL, ev.COLLATERAL_DISABLED, [_topic(ASSET), _topic(BOB)], []), pool)
    assert on == ev.CollateralFlag(POOL, 10, 0, ASSET, BOB, True)
    assert off == ev.CollateralFlag(POOL, 10, 0, ASSET, BOB, False)
    assert ev.decode_log(_log(POOL, ev.USER_EMODE_SET, [_topic(BOB)], [3]), pool) == ev.UserEModeSet(
        POOL, 10, 0, BOB, 3
    )
    updated = ev.decode_log(_log(POOL, ev.RESERVE_DATA_UPDATED, [_topic(ASSET)], [1, 0, 2, 3 * 10**27, 4 * 10**27]),
                            pool)  # fmt: skip
    assert updated == ev.ReserveDataUpdated(POOL, 10, 0, ASSET, 1, 0, 2, 3 * 10**27, 4 * 10**27)
    swap = ev.decode_log(_log(POOL, ev.SWAP_BORROW_RATE_MODE, [_topic(ASSET), _topic(BOB)], [1]), pool)
    assert swap == ev.StableRateChange(POOL, 10, 0, ASSET, BOB)
    deficit = ev.decode_log(_log(POOL, ev.DEFICIT_CREATED, [_topic(BOB), _topic(ASSET)], [5]), pool)
    assert deficit == ev.DeficitCreated(POOL, 10, 0, BOB, ASSET, 5)
    assert ev.decode_log(_log(POOL, "FlashLoan(address,address,address,uint256,uint8,uint256,uint16)", [], []),
                         pool) is None  # fmt: skip
    for event in (supply, borrow, repay, withdraw, liq, on, deficit):
        assert event is not None and BOB in ev.user_accounts(event)


def test_configurator_and_provider_events_ask_for_a_refresh_or_resync() -> None:
    changed = ev.decode_log(_log(CONFIGURATOR, "ReservePaused(address,bool)", [_topic(ASSET)], [1]),
                            WATCHED[CONFIGURATOR.lower()])  # fmt: skip
    assert changed == ev.MarketChanged(CONFIGURATOR, 10, 0, "ReservePaused(address,bool)", False)
    moved = ev.decode_log(_log(PROVIDER, "PoolUpdated(address,address)", [_topic(ASSET), _topic(BOB)], []),
                          WATCHED[PROVIDER.lower()])  # fmt: skip
    assert isinstance(moved, ev.MarketChanged) and moved.resync
    assert ev.decode_log(_log(POOL, "ReservePaused(address,bool)", [_topic(ASSET)], [1]), WATCHED[POOL.lower()]) is None


@pytest.mark.parametrize(
    ("address", "signature", "topics", "words"),
    [
        (ATOKEN, ev.TOKEN_MINT, [_topic(BOB), _topic(ALICE)], [1, 2]),  # a word short
        (ATOKEN, ev.TOKEN_MINT, [_topic(BOB)], [1, 2, 3]),  # a topic short
        (ATOKEN, ev.TOKEN_BURN, [_topic(BOB), "0x" + "ff" * 32], [1, 2, 3]),  # not an address
        (POOL, ev.REPAY, [_topic(ASSET), _topic(BOB), _topic(ALICE)], [4, 2]),  # bool of 2
        (POOL, ev.USER_EMODE_SET, [_topic(BOB)], [256]),  # uint8 overflow
        (POOL, ev.SUPPLY, [_topic(ASSET), _topic(BOB), "0x" + "00" * 32], [2**160, 1]),  # user is not an address
        (POOL, ev.COLLATERAL_ENABLED, [_topic(ASSET), _topic(BOB)], [1]),  # data where none is
    ],
)
def test_malformed_logs_are_decode_errors(address: str, signature: str, topics: list[str], words: list[int]) -> None:
    with pytest.raises(DecodeError):
        ev.decode_log(_log(address, signature, topics, words), WATCHED[address.lower()])


def test_decode_logs_orders_by_block_and_log_index_and_rejects_strangers() -> None:
    logs = [
        _log(POOL, ev.USER_EMODE_SET, [_topic(BOB)], [2], block=11, index=0),
        _log(POOL, ev.USER_EMODE_SET, [_topic(BOB)], [1], block=10, index=5),
        _log(POOL, ev.USER_EMODE_SET, [_topic(BOB)], [3], block=10, index=2),
    ]
    events = ev.decode_logs(logs, WATCHED)
    assert [(e.block, e.log_index) for e in events] == [(10, 2), (10, 5), (11, 0)]
    assert [e.category for e in events if isinstance(e, ev.UserEModeSet)] == [3, 1, 2]
    with pytest.raises(DecodeError, match="not a watched contract"):
        ev.decode_logs([_log(ASSET, ev.USER_EMODE_SET, [_topic(BOB)], [2])], WATCHED)
