"""Fixtures shared by every test: clean DSPy settings and no shared LM cache."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import dspy
import pytest
from dspy.dsp.utils.settings import DEFAULT_CONFIG


@pytest.fixture(autouse=True)
def isolated_dspy() -> Iterator[None]:
    """Run each test with DSPy's caches off and restore DSPy's default settings afterwards.

    A test that needs caching calls `dspy.configure_cache` itself. The next test gets a
    fresh, disabled cache, so no test reads another test's cached replies.
    """
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
    yield
    dspy.configure(**copy.deepcopy(DEFAULT_CONFIG))
    dspy.configure_cache(enable_disk_cache=False, enable_memory_cache=False)
