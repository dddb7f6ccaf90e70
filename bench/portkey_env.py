"""Install Portkey's open-source gateway (npm ``@portkey-ai/gateway``) under ``bench/.cache/portkey``.

Portkey is only a comparison target: it is never a project dependency, and a failed install is
reported as a failed target rather than crashing the benchmark.

Why the ``@hono/node-server`` override: Portkey's package asks for ``@hono/node-server ^1.3.3`` and
ships no lockfile, so a fresh install resolves the newest 1.x (1.19.x here). From 1.14 on, that
package's lightweight ``Response`` keeps ``init.headers`` *by reference* when ``init`` is a native
``Response``. Portkey streams with ``new Response(readable, upstreamFetchResponse)`` and then appends
its ``x-portkey-*`` headers (``updateHeaders``); the headers it appends to are the upstream fetch
response's own, which undici guards as ``immutable``. Every stream then fails with ``TypeError:
immutable`` and ``{"status":"failure","message":"Something went wrong"}``; on every Node release
(20 and 22 tried), because the guard is the fetch standard's. Up to 1.13.x, ``@hono/node-server``
copied those headers into a plain object, so they stayed mutable (Portkey's own repository pins
1.13.5). Pinning 1.13.8, the last 1.13 release, through npm ``overrides`` fixes streaming without
changing a line of Portkey's code (Portkey-AI/gateway issue 1389 reports the same).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

CACHE_DIR = Path(__file__).resolve().parent / ".cache"
INSTALL_DIR = CACHE_DIR / "portkey"
LOOPBACK_SHIM = Path(__file__).resolve().parent / "portkey_loopback.cjs"
# Pinned so results are comparable across runs; override with BENCH_PORTKEY_VERSION.
DEFAULT_VERSION = "1.15.2"
# The last @hono/node-server whose Response copies a native Response's headers (see above);
# BENCH_PORTKEY_NODE_SERVER="" installs Portkey's own resolution and reproduces the failure.
DEFAULT_NODE_SERVER = "1.13.8"
INSTALL_TIMEOUT_S = 10 * 60
ENTRY = Path("node_modules") / "@portkey-ai" / "gateway" / "build" / "start-server.js"


class PortkeyUnavailable(RuntimeError):
    """Portkey could not be installed; the message is the reason shown in the report."""


def portkey_version() -> str:
    return os.environ.get("BENCH_PORTKEY_VERSION", DEFAULT_VERSION)


def node_server_override() -> str:
    return os.environ.get("BENCH_PORTKEY_NODE_SERVER", DEFAULT_NODE_SERVER)


def describe() -> str:
    """What is installed, as shown in the report."""
    override = node_server_override()
    pinned = f" with @hono/node-server {override}" if override else " (dependencies as npm resolves them)"
    return f"@portkey-ai/gateway {portkey_version()}{pinned}"


def package_json(version: str, node_server: str) -> dict[str, object]:
    """The private package whose only dependency is Portkey, with the one override that makes it stream."""
    manifest: dict[str, object] = {
        "name": "sluicegate-bench-portkey",
        "private": True,
        "dependencies": {"@portkey-ai/gateway": version},
    }
    if node_server:
        manifest["overrides"] = {"@hono/node-server": node_server}
    return manifest


def entry_script() -> Path:
    return INSTALL_DIR / ENTRY


def node_executable() -> str | None:
    return os.environ.get("BENCH_NODE") or shutil.which("node")


def command(node: str, port: int) -> list[str]:
    """Start Portkey as its ``npx`` entry does, bound to 127.0.0.1 by the preloaded shim."""
    return [node, "--require", str(LOOPBACK_SHIM), str(entry_script()), f"--port={port}", "--headless"]


def _marker() -> Path:
    return INSTALL_DIR / ".bench-installed"


def is_installed() -> bool:
    marker = _marker()
    return marker.exists() and marker.read_text().strip() == describe() and entry_script().exists()


def ensure_portkey(log_path: Path | None = None) -> Path:
    """Return Portkey's start script, installing it with npm first if needed (one-time, ~10 s)."""
    if node_executable() is None:
        raise PortkeyUnavailable("`node` is not on PATH (Debian: apt-get install nodejs npm)")
    if is_installed():
        return entry_script()
    npm = shutil.which("npm")
    if npm is None:
        raise PortkeyUnavailable("`npm` is not on PATH (Debian: apt-get install npm)")
    INSTALL_DIR.mkdir(parents=True, exist_ok=True)
    manifest = package_json(portkey_version(), node_server_override())
    (INSTALL_DIR / "package.json").write_text(json.dumps(manifest, indent=2) + "\n")
    (INSTALL_DIR / "package-lock.json").unlink(missing_ok=True)
    log_path = log_path or CACHE_DIR / "portkey-install.log"
    started = time.monotonic()
    # --ignore-scripts: Portkey's only install script is patch-package, and its package ships no patches.
    cmd = [npm, "install", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error"]
    with log_path.open("w") as log:
        try:
            subprocess.run(
                cmd, cwd=INSTALL_DIR, check=True, stdout=log, stderr=log, timeout=INSTALL_TIMEOUT_S
            )
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            raise PortkeyUnavailable(f"npm install of {describe()} failed ({exc}); see {log_path}") from exc
    if not entry_script().exists():
        raise PortkeyUnavailable(f"{describe()} installed but {ENTRY} is missing; see {log_path}")
    _marker().write_text(describe())
    print(f"[bench] installed {describe()} in {time.monotonic() - started:.0f}s", file=sys.stderr)
    return entry_script()


if __name__ == "__main__":
    print(ensure_portkey())
