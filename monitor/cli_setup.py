"""Getting started: ``liqmon init`` (a commented config from presets) and ``liqmon watch
add|remove|list`` (the watch list, without editing YAML by hand)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from monitor.config import load_config
from monitor.config.core import OfflineEnv
from monitor.config.presets import chain_presets, market_presets
from monitor.config.watchlist import Wallet, read_wallets, watch_path, write_wallets
from monitor.errors import ConfigError, InputError

TOKEN_ENV = "LIQMON_TELEGRAM_TOKEN"
_LEVEL_NAMES = ("watch", "warning", "critical")


# -- init -----------------------------------------------------------------------------------


def _preset_lines(names: Sequence[str], watch_only: bool) -> list[str]:
    markets = market_presets()
    lines = []
    for name in names:
        p = markets[name]
        chain = chain_presets()[p.chain]
        lines.append(f"  - preset: {name:<28} # {p.protocol} on {p.chain} (chain id {chain.chain_id}), from block"
                     f" {p.start_block:,}")  # fmt: skip
        if watch_only:
            lines.append(f"    {'watch_only: true':<37}# only the wallets of watch.yaml (delete: all borrowers)")
    return lines


def config_text(
    presets: Sequence[str],
    *,
    watch_only: bool = True,
    telegram_chat: str | None = None,
    token_env: str = TOKEN_ENV,
    min_severity: str = "warning",
    db: str = "liqmon.db",
    today: dt.date | None = None,
) -> str:
    """The commented config ``liqmon init`` writes (validated by the caller)."""
    markets = market_presets()
    chains = list(dict.fromkeys(markets[p].chain for p in presets))
    day = (today or dt.datetime.now(dt.UTC).date()).isoformat()
    out = [
        f"# liqmon config written by `liqmon init` on {day}.",
        "# Check it:   liqmon doctor --config THIS_FILE --offline   (then without --offline: the RPC nodes)",
        "# Add wallets: liqmon watch add 0x... --label NAME --config THIS_FILE",
        "# Run:         liqmon run --config THIS_FILE",
        "# Every key is checked at load; secrets only ever come from environment variables.",
        "",
        "watch: watch.yaml                   # the wallets `liqmon watch add` keeps (beside this file)",
        "",
        "chains:                             # public nodes; put your own first (keys as ${NAME} from the env)",
    ]
    for name in chains:
        c = chain_presets()[name]
        out += [f"  {name}:", f"    chain_id: {c.chain_id}", "    rpc_urls:"]
        out += [f"      - {url}" for url in c.rpc_urls]
        out += [f"      # - https://your-node.example/{name}/${{RPC_KEY}}", f"    max_log_range: {c.max_log_range}"]
    out += ["", "markets:", *_preset_lines(presets, watch_only), "", "store:",
            f"  path: {db:<31} # the SQLite history, relative to this file", "", "alerts:", "  channels:",
            "    console: {type: console}"]  # fmt: skip
    if telegram_chat is not None:
        out.append(f"    telegram: {{type: telegram, token_env: {token_env}}}   # export {token_env}=<bot token>")
    out += ["  routes:", f"    - {{channel: console, min_severity: {min_severity}}}"]
    if telegram_chat is not None:
        out.append(f'    - {{channel: telegram, to: "{telegram_chat}", min_severity: {min_severity}}}')
    else:
        out += [
            "    # Telegram: create a bot with @BotFather, send it a message, then open",
            "    # https://api.telegram.org/bot<token>/getUpdates : the chat id is result[0].message.chat.id",
            "    # (or run `liqmon init --telegram CHAT_ID` again)",
        ]
    out += ["", "daemon:", "  mode: block                       # follow every new block", "  interval_s: 12", ""]
    return "\n".join(out)


def _ask(prompt: str, default: str = "") -> str:
    answer = input(f"{prompt}{f' [{default}]' if default else ''}: ").strip()
    return answer or default


def _interactive(args: argparse.Namespace) -> None:
    names = sorted(market_presets())
    print("Markets liqmon knows (presets):", file=sys.stderr)
    for i, name in enumerate(names, 1):
        print(f"  {i:2}. {name}", file=sys.stderr)
    picked = _ask("Numbers or names, comma-separated", "1")
    args.preset = [names[int(x) - 1] if x.strip().isdigit() and 0 < int(x) <= len(names) else x.strip()
                   for x in picked.split(",") if x.strip()]  # fmt: skip
    args.watch_only = _ask("Only your own wallets (y), or every borrower of the market (n)?", "y").lower() != "n"
    chat = _ask("Telegram chat id for the alerts (empty: console only)")
    args.telegram = chat or None


def cmd_init(args: argparse.Namespace) -> int:
    if args.list_presets:
        for name, p in sorted(market_presets().items()):
            chain = chain_presets()[p.chain]
            print(f"{name:<28} {p.protocol:<12} {p.chain} (chain id {chain.chain_id})")
        return 0
    if not args.preset:
        if not sys.stdin.isatty():
            raise InputError("give the market(s) with --preset NAME (liqmon init --list-presets lists them)")
        _interactive(args)
    unknown = [p for p in args.preset if p not in market_presets()]
    if unknown:
        raise InputError(f"unknown preset {unknown[0]!r}: liqmon init --list-presets lists them")
    out: Path = args.output
    if out.exists() and not args.force:
        raise InputError(f"{out} exists: give another --output, or --force to overwrite it")
    text = config_text(args.preset, watch_only=args.watch_only, telegram_chat=args.telegram, token_env=args.token_env)
    out.parent.mkdir(parents=True, exist_ok=True)
    watch = out.parent / "watch.yaml"
    if not watch.exists():
        write_wallets(watch, [])
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out} ({', '.join(args.preset)}) and {watch}", file=sys.stderr)
    print(f"next: liqmon watch add 0x... --label NAME --config {out}", file=sys.stderr)
    if args.telegram is not None:
        print(f"      export {args.token_env}=<your bot token>; liqmon doctor --config {out}", file=sys.stderr)
    return 0


# -- watch ----------------------------------------------------------------------------------


def _raw_config(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found (liqmon init writes one)") from None
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the config ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def _watch_file(config: Path, data: dict[str, Any]) -> Path:
    path = watch_path(data, config)
    if path is None:
        raise ConfigError(
            f"{config}: no `watch:` key; add `watch: watch.yaml` at the top level (liqmon init writes it)"
        )
    return path


def parse_levels(text: str) -> dict[str, float]:
    """``1.5`` (a warning level) or ``warning=1.5,critical=1.2``."""
    levels: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.strip().partition("=")
        if not sep:
            name, value = "warning", name
        if name not in _LEVEL_NAMES:
            raise InputError(f"--levels: unknown severity {name!r} (use watch, warning, critical)")
        try:
            number = float(value)
        except ValueError:
            raise InputError(f"--levels: {value!r} is not a health factor") from None
        if not 1.0 < number < 100.0:
            raise InputError(f"--levels: {name}={value} must be a health factor above 1")
        levels[name] = number
    return levels


Wallets = list[dict[str, Any]]


def _edit(args: argparse.Namespace, change: Callable[[Wallets], Wallets]) -> Wallets:
    """Apply ``change`` to the watch list, validate the whole config, put the old list back if it fails."""
    data = _raw_config(args.config)
    path = _watch_file(args.config, data)
    before = read_wallets(path)
    after = change([dict(w) for w in before])
    write_wallets(path, after)
    try:
        load_config(args.config, env=OfflineEnv())  # secrets need not be set to edit the list
    except ConfigError as exc:
        if not after and "none is listed for it" in str(exc):  # the last wallet removed: allowed, said
            print(f"note: {exc}", file=sys.stderr)
            return after
        write_wallets(path, before)
        raise
    return after


def cmd_watch(args: argparse.Namespace) -> int:
    if args.action == "list":
        data = _raw_config(args.config)
        wallets = read_wallets(_watch_file(args.config, data))
        if args.json:
            print(json.dumps(wallets, indent=2))
        elif not wallets:
            print(f"no wallets yet: liqmon watch add 0x... --config {args.config}")
        for w in wallets if not args.json else []:
            extra = [f"markets {', '.join(w['markets'])}" if w.get("markets") else "all markets"]
            extra += [f"notify {', '.join(w['notify'])}"] if w.get("notify") else []
            extra += [", ".join(f"{k} {v:g}" for k, v in w["levels"].items())] if w.get("levels") else []
            print(f"{w['address']}  {w.get('label') or '-':<16} {'; '.join(extra)}")
        return 0
    if not args.address:
        raise InputError(f"watch {args.action} needs the wallet address (0x + 40 hex digits)")
    address = args.address.strip()
    if args.action == "remove":

        def drop(wallets: list[dict[str, Any]]) -> list[dict[str, Any]]:
            kept = [w for w in wallets if str(w.get("address", "")).lower() != address.lower()]
            if len(kept) == len(wallets):
                raise InputError(f"{address} is not on the watch list (liqmon watch list)")
            return kept

        _edit(args, drop)
        print(f"removed {address}")
        return 0
    channels = (_raw_config(args.config).get("alerts") or {}).get("channels") or {"console": {}}
    for target in args.notify or []:
        channel = target.partition(":")[0]
        if channel not in channels:
            raise InputError(f"--notify {target}: no channel {channel!r} in the config (has: {', '.join(channels)})")
    wallet = Wallet(
        address=address, label=args.label or "", markets=tuple(args.market or ()), notify=tuple(args.notify or ()),
        levels=parse_levels(args.levels) if args.levels else {},
    )  # fmt: skip

    def add(wallets: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, w in enumerate(wallets):
            if str(w.get("address", "")).lower() == address.lower():
                merged = {**w, **{k: v for k, v in wallet.as_dict().items() if k != "address"}}
                return [*wallets[:i], merged, *wallets[i + 1 :]]
        return [*wallets, wallet.as_dict()]

    _edit(args, add)
    print(f"watching {address}{f' ({wallet.label})' if wallet.label else ''}")
    return 0


def add_setup_parsers(sub: Any) -> None:
    init = sub.add_parser(
        "init",
        help="write a commented config from presets (interactive without --preset)",
        description="Writes a config for real markets by name (see --list-presets) and an empty watch.yaml beside "
        "it. Without --preset, on a terminal, it asks. Check the result with liqmon doctor --offline.",
    )
    init.add_argument("--preset", action="append", metavar="NAME", help="a market preset (repeat for several)")
    init.add_argument("--list-presets", action="store_true", help="list the presets and exit")
    init.add_argument("--all-borrowers", dest="watch_only", action="store_false",
                      help="follow every borrower of the market (default: only the wallets you add)")  # fmt: skip
    init.add_argument("--telegram", metavar="CHAT_ID", help="route alerts to this Telegram chat")
    init.add_argument("--token-env", default=TOKEN_ENV, help=f"env variable holding the bot token ({TOKEN_ENV})")
    init.add_argument("-o", "--output", type=Path, default=Path("config.yaml"), help="file to write (config.yaml)")
    init.add_argument("--force", action="store_true", help="overwrite an existing file")
    init.set_defaults(func=cmd_init, watch_only=True)

    watch = sub.add_parser(
        "watch",
        help="add, remove or list watched wallets (the config's watch file)",
        description="Edits the watch list the config names (`watch: watch.yaml`) and validates the config after "
        "each change (a change that would not load is undone). Examples: liqmon watch add 0xAbC... --label "
        "treasury --notify telegram:-1001234 --levels warning=1.5 --config config.yaml",
    )
    watch.add_argument("action", choices=("add", "remove", "list"))
    watch.add_argument("address", nargs="?", help="the wallet (0x + 40 hex digits)")
    watch.add_argument("--config", required=True, type=Path, help="config file (YAML)")
    watch.add_argument("--label", help="its name in the messages")
    watch.add_argument("--market", action="append", help="only this market (repeat; default: all)")
    watch.add_argument("--notify", action="append", metavar="CHANNEL:TO", help="also route its alerts here")
    watch.add_argument("--levels", help="its own hard levels: 1.5 (warning) or warning=1.5,critical=1.2")
    watch.add_argument("--json", action="store_true", help="list: JSON")
    watch.set_defaults(func=cmd_watch)
