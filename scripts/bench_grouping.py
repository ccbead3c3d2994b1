"""Grouped against one-message-per-alert delivery to one Telegram chat, in the same run.

A tick's alerts are recorded in a temporary store and delivered to the local Telegram Bot API
peer (tests/support_peers.py) through the real TelegramChannel, paced per chat as Telegram
requires (``--interval``, default 0.35 s: what the issue measured, 19 messages in 6.6 s). Prints
messages and wall time per tick size, both ways, and the ratios.

    .venv/bin/python scripts/bench_grouping.py [--sizes 9,19,50,200] [--interval 0.35]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.alerts.outbox import deliver_due
from monitor.alerts.telegram import TelegramChannel
from monitor.config.alerts import GroupingConfig
from monitor.store import Store
from tests.support_peers import TELEGRAM_TEST_TOKEN, TelegramServer


def record(store: Store, n: int) -> None:
    alerts = []
    for i in range(n):
        severity = ("watch", "warning", "critical", "liquidatable")[i % 4]
        subject = f"0x{i + 1:040x}"
        text = json.dumps({"severity": severity, "title": f"m: {subject[:6]}…{subject[-4:]} HF {1 + i / 1000:.3f}",
                           "lines": ["what to do", "why this level"]})  # fmt: skip
        row = {"subject": subject, "severity": severity, "previous": "ok", "reason": "first", "hf": 1 + i / 1000,
               "threshold": 1.1, "detail": text}  # fmt: skip
        alerts.append((row, [{"channel": "tg", "destination": "-100123", "message": text}]))
    store.record_alerts("m", 1, [], alerts)


def run(n: int, interval: float, grouping: GroupingConfig | None) -> tuple[int, float]:
    with tempfile.TemporaryDirectory() as tmp, TelegramServer() as peer, Store(Path(tmp) / "b.db") as store:
        channel = TelegramChannel("tg", TELEGRAM_TEST_TOKEN, base_url=peer.base_url, min_interval_per_chat_s=interval)
        record(store, n)
        start = time.perf_counter()
        stats = deliver_due(store, {"tg": channel}, time.time() + 1, grouping=grouping)
        elapsed = time.perf_counter() - start
        channel.close()
        assert stats.sent == n and len(peer.messages) == stats.messages
        return stats.messages, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="9,19,50,200", help="alerts per tick, comma-separated")
    parser.add_argument("--interval", type=float, default=0.35, help="seconds between two messages to one chat")
    args = parser.parse_args()
    print(f"{'alerts':>6}  {'one per alert':>20}  {'grouped':>18}  {'messages':>9}  {'time':>7}")
    for n in (int(x) for x in args.sizes.split(",")):
        m1, t1 = run(n, args.interval, None)
        m2, t2 = run(n, args.interval, GroupingConfig())
        ratio = t1 / max(t2, 1e-9)
        print(f"{n:>6}  {m1:>5} msg {t1:>8.2f} s  {m2:>5} msg {t2:>6.2f} s  {m1 / m2:>8.1f}x  {ratio:>6.1f}x")


if __name__ == "__main__":
    main()
