"""The streaming guide's examples, written in the project's own words and code, so they run on
any clone (tests/test_seed_examples.py runs the guide's own text when it is present beside the
repository). Only a base URL and a key are needed; the model is the guide's `gpt-4o`, served by
the embedded model under that alias."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from openai import OpenAI

from tests.support.server import Gateway

MODEL = "gpt-4o"


def test_curl_streams_data_lines_ending_in_done(gateway: Gateway) -> None:
    command = f"""curl -sN {gateway.v1}/chat/completions \\
      -H "Authorization: Bearer {gateway.api_key}" \\
      -H "Content-Type: application/json" \\
      -d '{{"model": "{MODEL}", "messages": [{{"role": "user", "content": "Say hi in five words"}}], "stream": true}}'
    """
    output = subprocess.run(["bash", "-c", command], capture_output=True, timeout=120, check=True).stdout.decode()
    # SSE comments (the keep-alives a slow model's stream gets) are not events
    lines = [line for line in output.split("\n") if line and not line.startswith(":")]
    assert all(line.startswith("data: ") for line in lines) and lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    for chunk in chunks:
        assert {"id", "object", "created", "model", "choices"} <= set(chunk)
        assert chunk["object"] == "chat.completion.chunk"
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks).strip()
    assert chunks[-1]["choices"][0]["delta"] == {} and chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")


def test_python_loop_gathers_the_full_response(gateway: Gateway) -> None:
    client = OpenAI(api_key=gateway.api_key, base_url=gateway.v1)
    stream = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Write a short poem"}], stream=True, max_tokens=60
    )
    full_response = ""
    finish = None
    for chunk in stream:
        if chunk.choices[0].delta.content:
            full_response += chunk.choices[0].delta.content
        finish = chunk.choices[0].finish_reason or finish
    assert full_response.strip() and finish in ("stop", "length")


def test_async_client_streams(gateway: Gateway) -> None:
    program = textwrap.dedent(
        f"""
        import asyncio
        from openai import AsyncOpenAI

        async def main():
            client = AsyncOpenAI(api_key={gateway.api_key!r}, base_url={gateway.v1!r})
            stream = await client.chat.completions.create(
                model={MODEL!r},
                messages=[{{"role": "user", "content": "Tell me a joke"}}],
                stream=True,
                max_tokens=40,
            )
            async for chunk in stream:
                if chunk.choices[0].delta.content:
                    print(chunk.choices[0].delta.content, end="", flush=True)

        asyncio.run(main())
        """
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() and "Traceback" not in result.stderr
