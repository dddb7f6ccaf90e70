"""The user's streaming guide (../shared/seed/streaming-guide.vi.txt), run as a user would run it.

The examples are cut out of the guide's text and run as they are; only the base URL and the key
are swapped for this gateway's. The guide's model, `gpt-4o`, is an alias of the embedded model
(as in the gateway's default configuration), and answers name the model that wrote them. No `max_tokens` is added: the embedded model
ends "Write a short poem" by itself within a few hundred tokens (a few seconds here).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from openai import OpenAI

from tests.support.server import Gateway

GUIDE = Path(__file__).resolve().parents[1].parent / "shared" / "seed" / "streaming-guide.vi.txt"
GUIDE_URL = "https://api.lemondata.cc/v1"
GUIDE_KEY = "sk-your-api-key"
GUIDE_MODEL = "gpt-4o"


@pytest.fixture(scope="module")
def guide() -> str:
    if not GUIDE.is_file():
        pytest.skip(f"{GUIDE} is not present")
    return GUIDE.read_text(encoding="utf-8")


def excerpt(text: str, first_line: str, last_line: str) -> str:
    """The guide's lines from the one starting with `first_line` to the one equal to `last_line`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(first_line))
    end = next(i for i in range(start, len(lines)) if lines[i].strip() == last_line)
    return "\n".join(lines[start : end + 1]) + "\n"


def for_gateway(code: str, gateway: Gateway) -> str:
    """Only the base URL and the key change; the guide's `gpt-4o` is served by the embedded model."""
    for old in (GUIDE_URL, GUIDE_KEY, f'"{GUIDE_MODEL}"'):
        assert old in code, f"the guide's example no longer contains {old!r}"
    return code.replace(GUIDE_URL, gateway.v1).replace(GUIDE_KEY, gateway.api_key)


def test_curl_example(guide: str, gateway: Gateway) -> None:
    command = for_gateway(excerpt(guide, "curl https://", "}'"), gateway)
    assert command.startswith("curl ")
    # As the brief's user would run it in a terminal: silent, unbuffered.
    command = "curl -sN " + command[len("curl ") :]
    # Through a shell, as pasted in a terminal: the `\` line continuations and quotes are the guide's.
    result = subprocess.run(["bash", "-c", command], capture_output=True, timeout=120, check=True)
    output = result.stdout.decode("utf-8")
    # SSE comments (the keep-alives a slow model's stream gets) are not events
    lines = [line for line in output.split("\n") if line and not line.startswith(":")]
    assert lines, output
    assert all(line.startswith("data: ") for line in lines), output[:500]
    assert output.endswith("data: [DONE]\n\n")
    chunks = [json.loads(line[len("data: ") :]) for line in lines[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text.strip()
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    # The guide's documented chunk format: these fields, on every chunk.
    for c in chunks:
        assert {"id", "object", "created", "model", "choices"} <= set(c)
        assert c["model"] == gateway.model


def test_python_full_response_loop(guide: str, gateway: Gateway, capsys: pytest.CaptureFixture[str]) -> None:
    loop = excerpt(guide, 'full_response = ""', 'print(f"\\n\\nFull response: {full_response}")')
    client = OpenAI(api_key=gateway.api_key, base_url=gateway.v1)
    stream = client.chat.completions.create(
        model=GUIDE_MODEL,
        messages=[{"role": "user", "content": "Write a short poem"}],
        stream=True,
    )
    namespace = {"stream": stream}
    exec(compile(loop, "streaming-guide.vi.txt", "exec"), namespace)
    out = capsys.readouterr().out
    full = namespace["full_response"]
    assert isinstance(full, str) and full.strip()
    assert out == f"{full}\n\nFull response: {full}\n"


def test_async_example(guide: str, gateway: Gateway) -> None:
    code = for_gateway(excerpt(guide, "import asyncio", "asyncio.run(main())"), gateway)
    compile(code, "streaming-guide.vi.txt", "exec")
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert "Traceback" not in result.stderr
