"""Config of an OpenAI-compatible upstream (OpenAI, vLLM, llama.cpp server, Ollama...)."""

from __future__ import annotations

from typing import Literal

from sluicegate.model_config.entry import HTTPModelEntry


class OpenAIConfig(HTTPModelEntry):
    provider: Literal["openai"]
    # the server continues a trailing assistant message (vLLM's `continue_final_message`,
    # llama.cpp server's prefill): it may then take over an answer another deployment began
    # (mid-stream fail-over). A hosted OpenAI endpoint cannot: leave it off there.
    continue_final_message: bool = False
    # the byte relay (providers/openai/relay.py): a chat-completions client's stream gets the
    # text chunks' pieces as this upstream wrote them, undecoded; off: every chunk is decoded
    # and encoded again (the translated path, which the relay's output equals)
    passthrough: bool = True
