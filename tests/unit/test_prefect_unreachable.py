"""A Prefect API that cannot be reached is a PrefectUnavailable saying what to do."""

from __future__ import annotations

import httpx

from noctis.errors import PrefectUnavailable
from noctis.runtime import prefect_unreachable


def test_prefect_unreachable_names_what_to_do_for_a_down_api_only() -> None:
    for error in (
        RuntimeError("Failed to reach API at http://127.0.0.1:1/api/"),
        httpx.ConnectError("All connection attempts failed"),
    ):
        unreachable = prefect_unreachable(error)
        assert isinstance(unreachable, PrefectUnavailable)
        assert "PREFECT_API_URL could not be reached" in str(unreachable)
        assert "prefect server start" in str(unreachable)
    assert prefect_unreachable(RuntimeError("something else")) is None
    assert prefect_unreachable(ValueError("Failed to reach API at x")) is None
