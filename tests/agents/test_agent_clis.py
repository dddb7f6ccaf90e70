"""Claude Code and OpenAI's Codex CLI, unchanged, through the gateway: only their base URL, key
and model (and, for the embedded model, settings that keep their prompt small) are set.

The four paths people use: Claude Code -> an Anthropic upstream (its body forwarded as sent),
Claude Code -> an OpenAI-compatible model (translated), Codex -> an OpenAI-compatible model
(the Responses door, translated to chat), Codex -> an Anthropic model (the Responses door,
translated to Messages). Each upstream is a local server speaking that provider's exact wire and
playing the model for one tool round trip: the agent reads a file from its working directory
with its own tool, and the final answer carries the file's first line. Then each CLI against
the embedded model, where it must complete with an answer.

The CLIs are installed from npm into a cache outside the repository (tests/support/agent_clis.py);
if that fails the tests fail, never skip.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import agent_clis
from tests.support.agent_upstream import ANSWER_PREFIX, AgentAnthropicUpstream, AgentOpenAIUpstream
from tests.support.server import LOCAL_MODEL, Gateway, start_gateway

OPENAI_MODEL = "gpt-4.1"  # a name Claude Code does not know as Claude's
ANTHROPIC_MODEL = "claude-sonnet-4-5"
LOCAL_CONTEXT = 8192
CLI_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def installed() -> None:
    try:
        agent_clis.ensure_installed()
    except RuntimeError as exc:
        pytest.fail(f"Claude Code and Codex could not be installed: {exc}")


@pytest.fixture(scope="module")
def anthropic_agent() -> Iterator[AgentAnthropicUpstream]:
    server = AgentAnthropicUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def openai_agent() -> Iterator[AgentOpenAIUpstream]:
    server = AgentOpenAIUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def agents_gateway(
    tmp_path_factory: pytest.TempPathFactory,
    anthropic_agent: AgentAnthropicUpstream,
    openai_agent: AgentOpenAIUpstream,
) -> Iterator[Gateway]:
    config = {
        "models": [
            {"name": LOCAL_MODEL, "provider": "local", "n_ctx": LOCAL_CONTEXT, "default_max_tokens": 256},
            {"name": OPENAI_MODEL, "provider": "openai", "base_url": openai_agent.base_url, "api_key": "up-key"},
            {
                "name": ANTHROPIC_MODEL,
                "provider": "anthropic",
                "base_url": anthropic_agent.base_url,
                "api_key": "up-key",
            },
        ],
    }
    server = start_gateway(tmp_path_factory.mktemp("agents-gateway"), config)
    yield server
    server.stop()


@pytest.fixture
def workdir(tmp_path: Path) -> tuple[Path, str]:
    """A project with one file whose first line is new for each test."""
    first_line = f"The build number is {uuid.uuid4().hex}."
    work = tmp_path / "project"
    work.mkdir()
    (work / "notes.txt").write_text(f"{first_line}\nSecond line.\n")
    return work, first_line


def _refusals_since(gateway: Gateway, lines_before: int) -> list[str]:
    """The gateway's access-log lines of refused requests since a run began: a CLI that
    recovers from a 400 by retrying differently (Claude Code drops its system entries) must
    not hide one."""
    lines = gateway.log().splitlines()[lines_before:]
    return [line for line in lines if "sluicegate.access" in line and " status=4" in line]


def _claude_result(run: agent_clis.Run) -> dict[str, Any]:
    results = [event for event in agent_clis.stream_events(run.stdout) if event.get("type") == "result"]
    assert results, run.describe()
    result = results[-1]
    assert result.get("subtype") == "success" and not result.get("is_error"), run.describe()
    return result


def _claude_tool_uses(run: agent_clis.Run) -> list[str]:
    names: list[str] = []
    for event in agent_clis.stream_events(run.stdout):
        message = event.get("message")
        if event.get("type") == "assistant" and isinstance(message, dict):
            names += [block.get("name") for block in message.get("content") or [] if block.get("type") == "tool_use"]
    return names


def _codex_messages(run: agent_clis.Run) -> tuple[list[str], list[str]]:
    """(the agent's messages, the commands it ran) from `codex exec --json`."""
    messages: list[str] = []
    commands: list[str] = []
    for event in agent_clis.stream_events(run.stdout):
        item = event.get("item")
        if event.get("type") != "item.completed" or not isinstance(item, dict):
            continue
        if item.get("type") == "agent_message":
            messages.append(str(item.get("text")))
        elif item.get("type") == "command_execution":
            commands.append(str(item.get("command")))
    return messages, commands


# --- Claude Code ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "upstream_kind"),
    [(ANTHROPIC_MODEL, "anthropic"), (OPENAI_MODEL, "openai")],
    ids=["anthropic-native", "openai-translated"],
)
def test_claude_code_reads_a_file_through_the_gateway(
    installed: None,
    agents_gateway: Gateway,
    anthropic_agent: AgentAnthropicUpstream,
    openai_agent: AgentOpenAIUpstream,
    workdir: tuple[Path, str],
    tmp_path: Path,
    model: str,
    upstream_kind: str,
) -> None:
    work, first_line = workdir
    upstream = anthropic_agent if upstream_kind == "anthropic" else openai_agent
    upstream.reset()
    upstream.file_path = str(work / "notes.txt")
    lines_before = len(agents_gateway.log().splitlines())
    run = agent_clis.run_claude(
        "What is the first line of notes.txt?",
        work,
        tmp_path / "home",
        agents_gateway.base_url,
        agents_gateway.api_key,
        model,
        timeout_s=CLI_TIMEOUT_S,
    )
    result = _claude_result(run)
    assert first_line in str(result["result"]) and ANSWER_PREFIX.strip() in str(result["result"]), run.describe()
    assert "Read" in _claude_tool_uses(run), run.describe()
    assert not _refusals_since(agents_gateway, lines_before)
    # the gateway saw Claude Code's own requests: its tools, and the file read back as a tool result
    assert any(first_line in str(body) for body in upstream.requests)
    if model == OPENAI_MODEL:  # for a model it does not know as Claude's, its environment is a
        # system entry after the user's message: it arrived in place
        roles = [[message.get("role") for message in body.get("messages") or []] for body in upstream.requests]
        assert any("system" in turn[1:] for turn in roles), roles


def test_claude_code_answers_on_the_embedded_model(
    installed: None, agents_gateway: Gateway, workdir: tuple[Path, str], tmp_path: Path
) -> None:
    """Unchanged but for its settings: no tools and a one-line system prompt, so its prompt fits
    the small model's context (its full prompt is about 13,000 tokens), and a short answer."""
    work, _ = workdir
    lines_before = len(agents_gateway.log().splitlines())
    run = agent_clis.run_claude(
        "Say hello.",
        work,
        tmp_path / "home",
        agents_gateway.base_url,
        agents_gateway.api_key,
        LOCAL_MODEL,
        "--tools",
        "",
        "--system-prompt",
        "You are a helpful assistant. Answer briefly.",
        "--disable-slash-commands",
        env={"CLAUDE_CODE_MAX_OUTPUT_TOKENS": "256"},
        timeout_s=CLI_TIMEOUT_S,
    )
    results = [event for event in agent_clis.stream_events(run.stdout) if event.get("type") == "result"]
    assert results, run.describe()
    result = results[-1]
    if result.get("is_error"):
        # A 135M model sometimes talks past the answer cap it was given, and Claude Code then gives
        # up with its own "exceeded the output token maximum": the model's verbosity, not the
        # wire. Every other error fails, and the model's text must have reached the CLI whole.
        assert result.get("api_error") == "max_output_tokens", run.describe()
    else:
        assert str(result["result"]).strip(), run.describe()
    assert _claude_texts(run), run.describe()
    assert not _refusals_since(agents_gateway, lines_before)


def _claude_texts(run: agent_clis.Run) -> list[str]:
    """The text blocks of the model's own answers (not Claude Code's synthetic messages)."""
    texts: list[str] = []
    for event in agent_clis.stream_events(run.stdout):
        message = event.get("message")
        if event.get("type") == "assistant" and isinstance(message, dict) and message.get("model") == LOCAL_MODEL:
            texts += [str(block.get("text")) for block in message.get("content") or [] if block.get("type") == "text"]
    return [text for text in texts if text.strip()]


# --- Codex ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "upstream_kind"),
    [(OPENAI_MODEL, "openai"), (ANTHROPIC_MODEL, "anthropic")],
    ids=["openai-translated", "anthropic-translated"],
)
def test_codex_reads_a_file_through_the_gateway(
    installed: None,
    agents_gateway: Gateway,
    anthropic_agent: AgentAnthropicUpstream,
    openai_agent: AgentOpenAIUpstream,
    workdir: tuple[Path, str],
    tmp_path: Path,
    model: str,
    upstream_kind: str,
) -> None:
    work, first_line = workdir
    upstream = anthropic_agent if upstream_kind == "anthropic" else openai_agent
    upstream.reset()
    upstream.file_path = "notes.txt"
    lines_before = len(agents_gateway.log().splitlines())
    run = agent_clis.run_codex(
        "What is the first line of notes.txt?",
        work,
        tmp_path / "home",
        agents_gateway.base_url,
        agents_gateway.api_key,
        model,
        timeout_s=CLI_TIMEOUT_S,
    )
    assert run.returncode == 0, run.describe()
    messages, commands = _codex_messages(run)
    assert any("notes.txt" in command for command in commands), run.describe()
    assert messages and first_line in messages[-1], run.describe()
    assert not _refusals_since(agents_gateway, lines_before)
    assert any(first_line in str(body) for body in upstream.requests)
    # Codex's default tools arrive: its namespaced sub-agent tools as functions, web search left out
    offered = str(upstream.requests[0].get("tools"))
    assert "multi_agent_v1__spawn_agent" in offered and "web_search" not in offered


def test_codex_answers_on_the_embedded_model(
    installed: None, agents_gateway: Gateway, workdir: tuple[Path, str], tmp_path: Path
) -> None:
    """Unchanged but for its settings: short instructions, no sub-agent, goal or web-search tools,
    no skills list, and the model's context window."""
    work, _ = workdir
    instructions = tmp_path / "instructions.md"
    instructions.write_text("You are a helpful assistant. Answer briefly.\n")
    lines_before = len(agents_gateway.log().splitlines())
    run = agent_clis.run_codex(
        "Say hello.",
        work,
        tmp_path / "home",
        agents_gateway.base_url,
        agents_gateway.api_key,
        LOCAL_MODEL,
        config_extra=(
            f'model_instructions_file = "{instructions}"\n'
            f"model_context_window = {LOCAL_CONTEXT}\n"
            'web_search = "disabled"\n'
            "\n[features]\ngoals = false\n"
            "\n[agents]\nenabled = false\n"
            "\n[skills]\ninclude_instructions = false\n"
        ),
        timeout_s=CLI_TIMEOUT_S,
    )
    assert run.returncode == 0, run.describe()
    messages, _ = _codex_messages(run)
    assert messages and messages[-1].strip(), run.describe()
    assert not _refusals_since(agents_gateway, lines_before)
