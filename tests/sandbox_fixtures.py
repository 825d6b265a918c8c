"""pytest fixtures for the sandbox; the lead's conftest.py imports them (`from tests.sandbox_fixtures import *`)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from connectors.sandbox.server import Sandbox
from monitor.clock import SettableClock

BRAND_X_USER_ID = "1600000000000000001"
BRAND_X_HANDLE = "nordlysshop"
PAGE_ID = "104000000000001"
PAGE_NAME = "Nordlys Shop"

__all__ = ["BRAND_X_HANDLE", "BRAND_X_USER_ID", "PAGE_ID", "PAGE_NAME", "sandbox"]


@pytest.fixture
def sandbox(clock: SettableClock) -> Iterator[Sandbox]:
    """A fresh sandbox on a free port, stopped after the test. Its clock follows the test's `clock`."""
    box = Sandbox(port=0, brand_x_user_id=BRAND_X_USER_ID, brand_x_handle=BRAND_X_HANDLE,
                  page_id=PAGE_ID, page_name=PAGE_NAME, clock=clock).start()
    try:
        yield box
    finally:
        box.stop()
