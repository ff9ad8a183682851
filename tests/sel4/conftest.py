"""Shared fixtures for the seL4 tests: one Microkit 1.2.6 SDK per test session.

The ``sdk`` fixture builds the SDK on first use (minutes, once) or takes the cached / given one (seconds), so
``make test`` runs these tests whenever sources or an SDK are available. Without them every test that uses it
is skipped with the reason printed (``-ra`` in pytest's addopts lists it in the summary too).
"""

from __future__ import annotations

import sys

import pytest

from septum.sel4.sdk import Sdk, SdkError, ensure_sdk, sdk_unavailable_reason


@pytest.fixture(scope="session")
def sdk() -> Sdk:
    reason = sdk_unavailable_reason()
    if reason is not None:
        message = f"seL4 tests skipped: no Microkit SDK: {reason}"
        print(message, file=sys.stderr)
        pytest.skip(message)
    try:
        return ensure_sdk()
    except SdkError as exc:
        # Sources and tools were there but the build failed: that is a failure to see, not a skip.
        pytest.fail(f"the Microkit SDK could not be built: {exc}", pytrace=False)
