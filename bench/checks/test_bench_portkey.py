"""Portkey as a bench target: what gets installed, how it is started, and the loopback shim.

None of these needs Portkey installed or the network; the shim tests need only Node.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from bench import portkey_env
from bench.targets import ALL_TARGETS, PORTKEY, portkey_headers, start_portkey

NODE = shutil.which("node")
needs_node = pytest.mark.tools  # node: `python -m bench.check` installs it


def test_portkey_is_a_target_of_every_scenario_by_default() -> None:
    assert PORTKEY in ALL_TARGETS


def test_package_pins_the_node_server_that_keeps_headers_mutable() -> None:
    manifest = portkey_env.package_json("1.15.2", "1.13.8")
    assert manifest["dependencies"] == {"@portkey-ai/gateway": "1.15.2"}
    assert manifest["overrides"] == {"@hono/node-server": "1.13.8"}
    assert manifest["private"] is True
    assert "overrides" not in portkey_env.package_json("1.15.2", "")  # reproduces the failure


def test_description_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BENCH_PORTKEY_VERSION", raising=False)
    monkeypatch.delenv("BENCH_PORTKEY_NODE_SERVER", raising=False)
    assert portkey_env.describe() == "@portkey-ai/gateway 1.15.2 with @hono/node-server 1.13.8"
    monkeypatch.setenv("BENCH_PORTKEY_VERSION", "1.9.8")
    monkeypatch.setenv("BENCH_PORTKEY_NODE_SERVER", "")
    assert portkey_env.describe() == "@portkey-ai/gateway 1.9.8 (dependencies as npm resolves them)"


def test_command_preloads_the_shim_and_runs_headless() -> None:
    cmd = portkey_env.command("/usr/bin/node", 18999)
    assert cmd[:3] == ["/usr/bin/node", "--require", str(portkey_env.LOOPBACK_SHIM)]
    assert cmd[3].endswith("@portkey-ai/gateway/build/start-server.js")
    assert cmd[4:] == ["--port=18999", "--headless"]
    assert portkey_env.LOOPBACK_SHIM.is_file()


def test_routing_headers_point_at_the_mock() -> None:
    headers = portkey_headers("http://127.0.0.1:9000/v1")
    assert headers["x-portkey-provider"] == "openai"
    assert headers["x-portkey-custom-host"] == "http://127.0.0.1:9000/v1"


def test_missing_node_is_a_failed_target_not_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BENCH_NODE", raising=False)
    monkeypatch.setattr(portkey_env.shutil, "which", lambda _name: None)
    target = start_portkey(tmp_path, "http://127.0.0.1:9000/v1", ["mock-c5-t50"], workers=2)
    assert not target.ok
    assert "node" in (target.error or "")
    assert target.procs == []


def _listen_address(listen_call: str, env: dict[str, str] | None = None) -> str:
    """Where a Node http server started with the shim preloaded listens."""
    assert NODE is not None
    script = (
        "const s = require('node:http').createServer();"
        "const done = () => { console.log(JSON.stringify(s.address())); s.close(); };"
        f"{listen_call};"
    )
    done = subprocess.run(
        [NODE, "--require", str(portkey_env.LOOPBACK_SHIM), "-e", script],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
        env=env,
    )
    return str(json.loads(done.stdout)["address"])


@needs_node
@pytest.mark.parametrize(
    "listen_call",
    [
        "s.listen(0, undefined, done)",  # what @hono/node-server's serve() does without a hostname
        "s.listen(0, done)",
        "s.listen(0, 64, done)",
        "s.listen({ port: 0 }, done)",
    ],
)
def test_shim_binds_hostless_listens_to_loopback(listen_call: str) -> None:
    assert _listen_address(listen_call) == "127.0.0.1"


@needs_node
def test_shim_leaves_an_explicit_host_alone() -> None:
    assert _listen_address("s.listen(0, '127.0.0.2', done)") == "127.0.0.2"
    assert _listen_address("s.listen({ port: 0, host: '127.0.0.3' }, done)") == "127.0.0.3"


@needs_node
def test_without_the_shim_node_listens_on_every_interface() -> None:
    """The reason for the shim: the same call with nothing preloaded is not on loopback."""
    assert NODE is not None
    script = (
        "const s = require('node:http').createServer();"
        "s.listen(0, undefined, () => { console.log(s.address().address); s.close(); });"
    )
    done = subprocess.run([NODE, "-e", script], capture_output=True, text=True, timeout=30, check=True)
    assert done.stdout.strip() in {"::", "0.0.0.0"}
