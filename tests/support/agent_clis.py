"""Claude Code and OpenAI's Codex CLI, installed from npm into a cache outside the repository
and run as a user would, with only the base URL, key and model pointed at the gateway.

They are test tools, never dependencies of the project: `npm install` puts the pinned versions
under `~/.cache/sluicegate-agents` (`SLUICEGATE_AGENTS_CACHE` moves it), once; a later run finds
them there. `python -m tests.support.agent_clis` installs them (`scripts/test` does, before
pytest), and the tests install them too when they are missing. A failed install fails the
tests: it never skips them.

Both CLIs reach for their vendors (updates, telemetry, feature flags). They are kept off the
network but for 127.0.0.1: their own switches turn that traffic off, and an HTTPS proxy that
answers nothing (with 127.0.0.1 exempt) catches whatever those switches miss.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

CLAUDE_CODE_VERSION = "2.1.332"
CODEX_VERSION = "0.171.0"
INSTALL_TIMEOUT_S = 15 * 60
DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: nothing listens, every connection is refused


def cache_dir() -> Path:
    configured = os.environ.get("SLUICEGATE_AGENTS_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "sluicegate-agents"


def _manifest() -> dict[str, object]:
    return {
        "name": "sluicegate-agent-clis",
        "private": True,
        "dependencies": {"@anthropic-ai/claude-code": CLAUDE_CODE_VERSION, "@openai/codex": CODEX_VERSION},
    }


def _bin(name: str) -> Path:
    return cache_dir() / "node_modules" / ".bin" / name


def _marker() -> Path:
    return cache_dir() / ".sluicegate-installed"


def _describe() -> str:
    return f"@anthropic-ai/claude-code {CLAUDE_CODE_VERSION}, @openai/codex {CODEX_VERSION}"


def ensure_installed() -> None:
    """Both CLIs at their pinned versions, installed with npm if missing; RuntimeError if not."""
    marker = _marker()
    if marker.exists() and marker.read_text() == _describe() and _bin("claude").exists() and _bin("codex").exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not on PATH (Debian: apt-get install nodejs npm)")
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    (root / "package.json").write_text(json.dumps(_manifest(), indent=2) + "\n")
    log_path = root / "install.log"
    command = [npm, "install", "--no-audit", "--no-fund", "--loglevel=error"]
    with log_path.open("w") as log:
        try:
            subprocess.run(command, cwd=root, check=True, stdout=log, stderr=log, timeout=INSTALL_TIMEOUT_S)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
            raise RuntimeError(f"npm install of {_describe()} failed ({exc}); see {log_path}") from exc
    for name in ("claude", "codex"):
        if not _bin(name).exists():
            raise RuntimeError(f"npm installed {_describe()} but `{name}` is missing; see {log_path}")
    marker.write_text(_describe())


def offline_env(home: Path) -> dict[str, str]:
    """A clean environment: a home of its own, and no way out but to 127.0.0.1."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "HTTPS_PROXY": DEAD_PROXY,
        "HTTP_PROXY": DEAD_PROXY,
        "https_proxy": DEAD_PROXY,
        "http_proxy": DEAD_PROXY,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    }


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        return f"exit {self.returncode}\n--- stdout\n{self.stdout[-6000:]}\n--- stderr\n{self.stderr[-4000:]}"


def _run(command: list[str], cwd: Path, env: dict[str, str], timeout_s: float) -> Run:
    try:
        done = subprocess.run(
            command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout_s
        )
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else exc.stdout or ""
        err = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else exc.stderr or ""
        return Run(-1, out, err + f"\n(timed out after {timeout_s:.0f} s)")
    return Run(done.returncode, done.stdout, done.stderr)


def claude_env(home: Path, base_url: str, api_key: str, model: str) -> dict[str, str]:
    """What a user sets to run Claude Code against the gateway: its URL, a key, the model (also
    for the side requests Claude Code makes with its small model), and its switches for
    updates, telemetry and other traffic to Anthropic."""
    return {
        **offline_env(home),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": api_key,
        "ANTHROPIC_MODEL": model,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": model,
        "ANTHROPIC_DEFAULT_SONNET_MODEL": model,
        "ANTHROPIC_DEFAULT_OPUS_MODEL": model,
        "CLAUDE_CODE_SUBAGENT_MODEL": model,
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
    }


def run_claude(
    prompt: str,
    cwd: Path,
    home: Path,
    base_url: str,
    api_key: str,
    model: str,
    *extra: str,
    env: dict[str, str] | None = None,
    timeout_s: float = 300,
) -> Run:
    """`claude -p PROMPT --output-format stream-json`: one JSON event a line, the last a `result`."""
    command = [str(_bin("claude")), "-p", prompt, "--output-format", "stream-json", "--verbose", *extra]
    return _run(command, cwd, {**claude_env(home, base_url, api_key, model), **(env or {})}, timeout_s)


def codex_config(base_url: str, model: str, extra: str = "") -> str:
    """A config.toml naming the gateway as a Responses provider (Codex speaks no other wire),
    with its update check and analytics off."""
    return (
        f'model = "{model}"\n'
        'model_provider = "sluicegate"\n'
        "check_for_update_on_startup = false\n"
        f"{extra}"
        "\n[analytics]\nenabled = false\n"
        "\n[model_providers.sluicegate]\n"
        'name = "sluicegate"\n'
        f'base_url = "{base_url}/v1"\n'
        'env_key = "SLUICEGATE_API_KEY"\n'
        'wire_api = "responses"\n'
    )


def run_codex(
    prompt: str,
    cwd: Path,
    home: Path,
    base_url: str,
    api_key: str,
    model: str,
    config_extra: str = "",
    timeout_s: float = 300,
) -> Run:
    """`codex exec PROMPT` with its own CODEX_HOME; the last message goes to stdout."""
    codex_home = home / "codex"
    codex_home.mkdir(parents=True, exist_ok=True)
    (codex_home / "config.toml").write_text(codex_config(base_url, model, config_extra))
    env = {**offline_env(home), "CODEX_HOME": str(codex_home), "SLUICEGATE_API_KEY": api_key}
    command = [str(_bin("codex")), "exec", "--skip-git-repo-check", "--json", prompt]
    return _run(command, cwd, env, timeout_s)


def stream_events(stdout: str) -> list[dict[str, object]]:
    """The JSON lines of a `--output-format stream-json` / `--json` run (other lines skipped)."""
    events: list[dict[str, object]] = []
    for line in stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return events


if __name__ == "__main__":
    try:
        ensure_installed()
    except RuntimeError as exc:
        print(f"agent CLIs: {exc}", file=sys.stderr)
        sys.exit(1)
    print(f"agent CLIs: {_describe()} in {cache_dir()}")
