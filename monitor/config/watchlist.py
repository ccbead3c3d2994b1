"""The watch list: wallets a person follows, kept in a file the config names (``watch: watch.yaml``)
and edited by ``liqmon watch add|remove|list`` so nobody edits YAML by hand.

One entry per wallet::

    wallets:
      - address: "0x1234..."
        label: treasury              # its name in the messages
        markets: [aave-v3-base]      # omitted: every market of the config
        notify: ["desk:-1001234"]    # channel:destination, a route for this wallet only
        levels: {warning: 1.5}       # its own hard levels (on top of the optimized policy)

:func:`expand_watchlist` turns the file into the config keys that already mean these things,
BEFORE validation (so every value is validated, and errors name the watch file): the address joins
``accounts`` of each market that lists accounts (a market that discovers borrowers finds it by
its events), ``label`` -> ``alerts.labels``, ``notify`` -> one ``alerts.routes`` entry per target
selecting this wallet, ``levels`` -> ``alerts.policy.account_levels``.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from monitor.config.validate import Validator
from monitor.errors import ConfigError

HEADER = (
    "# liqmon watch list, edited by `liqmon watch add|remove|list` (hand edits are fine too).\n"
    "# Each wallet: address, label, markets (omitted: all), notify (channel:destination), levels.\n"
)
_WALLET_KEYS = ("address", "label", "markets", "notify", "levels")


@dataclass(frozen=True, slots=True)
class Wallet:
    address: str
    label: str = ""
    markets: tuple[str, ...] = ()
    notify: tuple[str, ...] = ()
    levels: Mapping[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"address": self.address}
        if self.label:
            out["label"] = self.label
        if self.markets:
            out["markets"] = list(self.markets)
        if self.notify:
            out["notify"] = list(self.notify)
        if self.levels:
            out["levels"] = dict(self.levels)
        return out


def watch_path(data: Mapping[Any, Any], source: Path) -> Path | None:
    """The watch file a loaded config names (relative to the config's directory), or None."""
    name = data.get("watch")
    if not isinstance(name, str) or not name:
        return None
    path = Path(name).expanduser()
    return path if path.is_absolute() else source.parent / path


def read_wallets(path: Path) -> list[dict[str, Any]]:
    """The raw wallet entries of ``path`` (none when the file does not exist yet)."""
    if not path.exists():
        return []
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the watch list ({' '.join(str(exc).split())})") from None
    if data is None:
        return []
    if not isinstance(data, Mapping) or not isinstance(data.get("wallets", []), list):
        raise ConfigError(f"{path}: expected a mapping with a `wallets:` list")
    wallets: list[dict[str, Any]] = []
    for i, entry in enumerate(data.get("wallets") or []):
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{path}: wallets[{i}]: expected a mapping with address, label, markets, notify, levels")
        wallets.append(dict(entry))
    return wallets


def write_wallets(path: Path, wallets: Sequence[Wallet | Mapping[str, Any]]) -> None:
    """Write the watch list atomically (a crash leaves the old file or the new one, never half)."""
    rows = [w.as_dict() if isinstance(w, Wallet) else dict(w) for w in wallets]
    text = HEADER + yaml.safe_dump({"wallets": rows}, sort_keys=False, default_flow_style=None, allow_unicode=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def expand_watchlist(data: Mapping[Any, Any], source: Path, v: Validator) -> Mapping[Any, Any]:
    """``data`` with its watch file's wallets turned into accounts, labels, routes and levels."""
    raw_markets = data.get("markets")
    only = [m for m in raw_markets or [] if isinstance(m, Mapping) and m.get("watch_only")] if isinstance(
        raw_markets, list) else []  # fmt: skip
    if "watch" not in data and not only:
        return data
    rest = {k: val for k, val in data.items() if k != "watch"}
    path = watch_path(data, source)
    if path is None:
        v.fail("watch", "expected the name of a watch-list file, e.g. watch.yaml (markets with watch_only read it)")
    wallets = read_wallets(path)
    markets: list[Any] = [dict(m) if isinstance(m, Mapping) else m for m in rest.get("markets") or []]
    for m in markets:
        if isinstance(m, dict) and m.pop("watch_only", False):
            m.setdefault("accounts", [])  # the wallets below join it
    alerts = dict(rest.get("alerts") or {}) if isinstance(rest.get("alerts") or {}, Mapping) else {}
    labels = dict(alerts.get("labels") or {})
    routes = list(alerts.get("routes") or [])
    if "routes" not in alerts and set(alerts.get("channels") or {"console": None}) == {"console"}:
        routes.append({"channel": "console", "min_severity": "watch"})  # the default route stays
    policy = dict(alerts.get("policy") or {})
    levels = dict(policy.get("account_levels") or {})
    names = [m.get("name") for m in markets if isinstance(m, Mapping)]
    for i, wallet in enumerate(wallets):
        where = f"{path.name}: wallets[{i}]"
        unknown = [k for k in wallet if k not in _WALLET_KEYS]
        if unknown:
            v.fail(where, f"unknown key {unknown[0]!r} (expected {', '.join(_WALLET_KEYS)})")
        address = wallet.get("address")
        if not isinstance(address, str):
            v.fail(f"{where}.address", "required: the wallet's 0x address")
        address = v.address(address, f"{where}.address")
        scope = wallet.get("markets") or []
        if not isinstance(scope, list):
            v.fail(f"{where}.markets", "expected a list of market names")
        for name in scope:
            if name not in names:
                v.fail(f"{where}.markets", f"unknown market {name!r} (the config has: {', '.join(map(str, names))})")
        for m in markets:
            listed = isinstance(m, Mapping) and isinstance(m.get("accounts"), list)
            if listed and (not scope or m["name"] in scope) and address.lower() not in map(str.lower, m["accounts"]):
                m["accounts"] = [*m["accounts"], address]
        if wallet.get("label"):
            labels[address] = wallet["label"]
        for j, target in enumerate(wallet.get("notify") or []):
            channel, sep, to = str(target).partition(":")
            if not channel:
                v.fail(f"{where}.notify[{j}]", f"expected channel:destination, got {target!r}")
            route: dict[str, Any] = {"channel": channel, "accounts": [address], "min_severity": "watch"}
            if sep and to:
                route["to"] = to
            if scope:
                route["markets"] = list(scope)
            routes.append(route)
        if wallet.get("levels"):
            levels[address] = wallet["levels"]
    for i, m in enumerate(markets):
        if isinstance(m, Mapping) and m.get("accounts") == []:
            v.fail(
                f"markets[{i}]",
                f"{m.get('name')!r} watches only the wallets of {path.name} and none is listed for it:"
                " add one with `liqmon watch add 0x... --config FILE`",
            )
    if labels:
        alerts["labels"] = labels
    if routes:
        alerts["routes"] = routes
    if levels:
        policy["account_levels"] = levels
        alerts["policy"] = policy
    if alerts:
        rest["alerts"] = alerts
    rest["markets"] = markets
    return rest
