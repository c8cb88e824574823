"""Shared set-up for end-to-end tests: real processes on 127.0.0.1."""

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
