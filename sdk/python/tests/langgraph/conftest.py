"""Fixtures of the LangGraph adapter tests.

They run against the real server of ``tests/conftest.py``: ``server`` (one
per session) and ``fresh_server`` (one per test, which the test may
restart). A missing server binary fails the tests; it never skips them.
"""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def context_id() -> str:
    """A fresh context id (the adapters create their context on first use)."""
    return "lg-" + uuid.uuid4().hex[:12]
