"""Fixtures for the provider tests."""

from __future__ import annotations

import pytest
from openai import OpenAI

from tests.support.server import Gateway


@pytest.fixture
def client(gateway: Gateway) -> OpenAI:
    return OpenAI(base_url=gateway.v1, api_key=gateway.api_key, max_retries=0, timeout=15)
