"""The model names and the function declaration the Gemini door's tests share."""

from __future__ import annotations

from google.genai import types

OPENAI_MODEL = "gpt-door"
GEMINI_MODEL = "gemini-door"
CLAUDE_MODEL = "claude-door"
EMBEDDED = "all-minilm-l6-v2"
UPSTREAM_GEMINI = "gemini-2.5-flash"
WEATHER = types.FunctionDeclaration(
    name="get_weather",
    description="The weather in a city",
    parameters=types.Schema(
        type=types.Type.OBJECT,
        properties={"city": types.Schema(type=types.Type.STRING)},
        required=["city"],
    ),
)
