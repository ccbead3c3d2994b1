"""Hostile nodes (tests/support_proxy.HostileProxy) in front of a real devnet, one mode each:
no stored row is lost, changed, hidden or malformed; the error is a clear one-liner; memory
and time stay bounded (peak RSS growth and wall clock asserted, generously: 2 shared cores)."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.errors import MonitorError
from monitor.scan import scan_all
from monitor.store import Store
from tests.faults.conftest import SmallDevnet, assert_history_kept, bounded, raw_rows, visible
from tests.support_proxy import HostileProxy

pytestmark = [pytest.mark.devnet]

MARKET = "aave-v3-devnet"


def scan(small: SmallDevnet, urls: list[str], db: Path, **chain: object) -> list[int]:
    with Store(db) as store:
        return [r.snapshot.block for r in scan_all(small.config(urls, db, **chain), store)]


def failing_scan(small: SmallDevnet, urls: list[str], db: Path, **chain: object) -> str:
    with pytest.raises(MonitorError) as info:
        scan(small, urls, db, **chain)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


def history(small: SmallDevnet, tmp_path: Path) -> tuple[Path, dict[str, list[tuple[object, ...]]], dict[str, object]]:
    db = small.history(tmp_path)
    small.node.mine(4)  # the chain moved on since the stored scans
    return db, raw_rows(db), visible(db)


# --------------------------------------------------------------------------- lag


def test_lagging_node_alone_deletes_nothing_and_says_it_lags(small_devnet: SmallDevnet, tmp_path: Path) -> None:
    db, before, shown = history(small_devnet, tmp_path)
    with HostileProxy(small_devnet.url, "lag", lag=12) as lagging, bounded(30, 64):
        message = failing_scan(small_devnet, [lagging.url], db)
    assert "lag" in message and "behind block" in message and "nothing deleted" in message, message
    assert lagging.counts["attacked"] > 0
    assert_history_kept(db, before, shown)
    with Store(db) as store:
        assert store.orphaned_blocks(MARKET) == []


def test_lagging_preferred_node_is_skipped_for_newer_blocks(small_devnet: SmallDevnet, tmp_path: Path) -> None:
    db, before, shown = history(small_devnet, tmp_path)
    head = small_devnet.node.client.block_number()
    with HostileProxy(small_devnet.url, "lag", lag=12) as lagging, bounded(30, 64):
        blocks = scan(small_devnet, [lagging.url, small_devnet.url], db)
    assert blocks == [head]  # the synced endpoint's head, read from it
    assert_history_kept(db, before, shown)
    assert len(visible(db)["scans"]) == len(shown["scans"]) + 1  # type: ignore[arg-type]


# --------------------------------------------------------------------------- hashes


def test_hash_flipping_node_alone_marks_nothing(small_devnet: SmallDevnet, tmp_path: Path) -> None:
    db, before, shown = history(small_devnet, tmp_path)
    with HostileProxy(small_devnet.url, "hash_flip") as liar, bounded(30, 64):
        message = failing_scan(small_devnet, [liar.url], db)
    assert "hash" in message and ("not believed" in message or "changed hash" in message), message
    assert_history_kept(db, before, shown)
    with Store(db) as store:
        assert store.orphaned_blocks(MARKET) == []


def test_hash_flipping_node_is_outvoted_and_distrusted(small_devnet: SmallDevnet, tmp_path: Path) -> None:
    db, before, shown = history(small_devnet, tmp_path)
    with HostileProxy(small_devnet.url, "hash_flip") as liar, bounded(30, 64):
        scan(small_devnet, [liar.url, small_devnet.url], db)
    assert liar.counts["attacked"] > 0
    assert_history_kept(db, before, shown)
    with Store(db) as store:
        assert store.orphaned_blocks(MARKET) == []
        newest = store.scans()[-1]
    assert newest["block_hash"] == small_devnet.node.client.get_block(newest["block"])["hash"]


@pytest.mark.parametrize(("mode", "words"), [("bad_hashes", "32-byte hash"), ("missing_fields", "no hash")])
def test_malformed_hashes_are_refused(small_devnet: SmallDevnet, tmp_path: Path, mode: str, words: str) -> None:
    db, before, shown = history(small_devnet, tmp_path)
    with HostileProxy(small_devnet.url, mode) as liar, bounded(30, 64):
        url = liar.url
        message = failing_scan(small_devnet, [url], db)
    assert words in message and url in message, message
    assert_history_kept(db, before, shown)
    assert b"<script>" not in db.read_bytes()


def test_log_without_block_hash_is_a_clear_error(small_devnet: SmallDevnet, tmp_path: Path) -> None:
    db = tmp_path / "fresh.db"  # discovery from the first block: the Borrow logs come through the liar
    with HostileProxy(small_devnet.url, "missing_fields", methods=["eth_getLogs"]) as liar, bounded(30, 64):
        message = failing_scan(small_devnet, [liar.url], db)
        assert liar.counts["attacked"] >= 1
    assert "a log has no blockHash" in message, message
    with Store(db) as store:
        assert store.accounts(MARKET) == [] and store.scans() == []


# --------------------------------------------------------------------------- chain, logs


def test_chain_flip_is_caught_on_failover(small_devnet: SmallDevnet, tmp_path: Path) -> None:
    db, before, shown = history(small_devnet, tmp_path)
    # the preferred endpoint starts well then redirects; the backup started on our chain, now serves chain 1
    with HostileProxy(small_devnet.url, "redirect", after=1) as first, \
            HostileProxy(small_devnet.url, "chain_flip", after=1, chain_id=1) as backup, bounded(30, 64):  # fmt: skip
        backup_url = backup.url
        message = failing_scan(small_devnet, [first.url, backup_url], db)
    assert f"{backup_url}: serves chain 1, not the configured chain 31337" in message, message
    assert backup.counts["attacked"] >= 1
    assert_history_kept(db, before, shown)


def test_fake_logs_alone_are_refused(small_devnet: SmallDevnet, tmp_path: Path) -> None:
    db, before, shown = history(small_devnet, tmp_path)
    with HostileProxy(small_devnet.url, "fake_logs", fake_logs=2000) as liar, bounded(30, 64):
        message = failing_scan(small_devnet, [liar.url], db)
    assert "not the filtered address" in message and "does not match the request" in message, message
    assert_history_kept(db, before, shown)  # also: exactly the seeded accounts, not one fake


def test_fake_logs_node_is_skipped_for_an_honest_one(small_devnet: SmallDevnet, tmp_path: Path) -> None:
    db, before, shown = history(small_devnet, tmp_path)
    with HostileProxy(small_devnet.url, "fake_logs", fake_logs=2000) as liar, bounded(30, 64):
        scan(small_devnet, [liar.url, small_devnet.url], db)
    assert liar.counts["attacked"] > 0
    assert_history_kept(db, before, shown)


# --------------------------------------------------------------------------- transport attacks


def test_redirect_is_refused_with_the_target_masked(small_devnet: SmallDevnet, tmp_path: Path) -> None:
    db, before, shown = history(small_devnet, tmp_path)
    with HostileProxy(small_devnet.url, "redirect") as evil, bounded(30, 64):
        message = failing_scan(small_devnet, [evil.url], db)
    assert "redirected (HTTP 307) to http://<secret>@127.0.0.1:9/rpc?apikey=<secret>" in message, message
    assert "redirects are refused" in message and "hunter2" not in message and "K3Y" not in message
    assert_history_kept(db, before, shown)


@pytest.mark.parametrize("mode", ["huge_body", "endless_stream"])
def test_huge_and_endless_answers_are_cut_at_the_cap(small_devnet: SmallDevnet, tmp_path: Path, mode: str) -> None:
    db, before, shown = history(small_devnet, tmp_path)
    cap = 4 * 1024 * 1024
    with HostileProxy(small_devnet.url, mode, methods=["eth_call"]) as evil, bounded(30, 96):
        message = failing_scan(small_devnet, [evil.url], db, max_response_bytes=cap)
    assert f"beyond the {cap:,}-byte cap" in message, message
    assert evil.counts["attacked"] >= 1
    assert evil.counts["streamed"] < 64 * cap  # the client hung up: far from 1 GiB / for ever
    assert_history_kept(db, before, shown)


def test_trickle_is_cut_by_the_deadline_and_the_budget(small_devnet: SmallDevnet, tmp_path: Path) -> None:
    db, before, shown = history(small_devnet, tmp_path)
    with HostileProxy(small_devnet.url, "trickle", methods=["eth_call"]) as slow, bounded(20, 64) as spent:
        message = failing_scan(small_devnet, [slow.url], db, request_timeout_s=1.0, retry_budget_s=3.0, max_retries=0)
    assert "within the 1 s deadline" in message, message
    assert spent.seconds >= 0 and slow.counts["attacked"] >= 2  # retried within the budget, then gave up
    assert_history_kept(db, before, shown)
