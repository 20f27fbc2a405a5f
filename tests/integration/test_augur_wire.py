"""AugurClient against a real HTTP server on loopback (tests/support/augur_stub.py).

The unit tests cover the logic with a mock transport; these prove it holds on a real socket:
real timeouts, a real refused connection, real Retry-After waits. Each test stays under 3 s.
"""

from __future__ import annotations

import logging
import threading
import time

import httpx
import pytest
from pydantic import SecretStr

from noctis.augur import AugurClient, Notification, NotificationEvent, RetryPolicy, completed_key
from noctis.devtools.localdb import free_port
from noctis.errors import AugurRejected, AugurUnavailable, ConfigurationError
from tests.support.augur_stub import AugurStub, Reply

TOKEN = "wire-token-7c1d2e"
RUN_ID = "5f0c9a2b-1e3d-4c5b-8a7f-6e5d4c3b2a10"
KEY = completed_key(12, 5, 7)
PATH = "/api/v1/dreams/5/divinations/continue"
QUICK = RetryPolicy(max_attempts=4, max_retry_seconds=2.5, backoff_base=0.02, backoff_max=1.5)
NOTIFICATION = Notification(
    event=NotificationEvent.COMPLETED,
    dream_pk=5,
    imagery_finder_pk=12,
    flow_run_id=RUN_ID,
    matched_count=40,
    new_count=3,
    coverage=0.93,
)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """A proxy from the environment must not stand between the client and the stub."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)


def client_for(url: str, *, retry: RetryPolicy = QUICK, timeout: float = 1.0) -> AugurClient:
    return AugurClient(
        base_url=url, token=SecretStr(TOKEN), connect_timeout=0.5, timeout=timeout, retry=retry
    )


async def test_posts_json_with_every_header_over_the_wire(augur_stub: AugurStub) -> None:
    async with client_for(augur_stub.url) as client:
        receipt = await client.notify(NOTIFICATION, idempotency_key=KEY)

    assert (receipt.status_code, receipt.attempts, receipt.duplicate) == (200, 1, False)
    [request] = augur_stub.requests
    assert (request.method, request.path) == ("POST", PATH)
    assert request.header("Idempotency-Key") == KEY
    assert request.header("Authorization") == f"Bearer {TOKEN}"
    assert request.header("Content-Type") == "application/json"
    assert (request.header("User-Agent") or "").startswith("noctis/")
    assert request.json == NOTIFICATION.body()
    assert "error" not in request.json


async def test_retries_500_then_succeeds_with_same_idempotency_key(augur_stub: AugurStub) -> None:
    augur_stub.script([500, 200])
    async with client_for(augur_stub.url) as client:
        receipt = await client.notify(NOTIFICATION, idempotency_key=KEY)

    assert (receipt.status_code, receipt.attempts) == (200, 2)
    assert [r.header("Idempotency-Key") for r in augur_stub.requests] == [KEY, KEY]
    assert augur_stub.requests[0].body == augur_stub.requests[1].body


async def test_honours_retry_after_on_429(augur_stub: AugurStub) -> None:
    augur_stub.script([Reply(429, headers={"Retry-After": "1"}), 200])
    started = time.monotonic()
    async with client_for(augur_stub.url) as client:
        receipt = await client.notify(NOTIFICATION, idempotency_key=KEY)

    first, second = augur_stub.requests
    assert receipt.attempts == 2
    assert second.time - first.time >= 1.0
    assert time.monotonic() - started >= 1.0


async def test_retries_timeouts_then_raises_augur_unavailable(augur_stub: AugurStub) -> None:
    augur_stub.script([Reply(stall=5.0)] * 3)
    retry = RetryPolicy(max_attempts=3, max_retry_seconds=2.5, backoff_base=0.02, backoff_max=0.1)
    started = time.monotonic()
    async with client_for(augur_stub.url, retry=retry, timeout=0.2) as client:
        with pytest.raises(AugurUnavailable, match=r"3 attempt\(s\).*Timeout") as caught:
            await client.notify(NOTIFICATION, idempotency_key=KEY)

    assert len(augur_stub.requests) == 3
    assert time.monotonic() - started < 2.0
    assert TOKEN not in str(caught.value)


async def test_a_timeout_then_success_is_a_success(augur_stub: AugurStub) -> None:
    augur_stub.script([Reply(stall=5.0), 200])
    async with client_for(augur_stub.url, timeout=0.2) as client:
        receipt = await client.notify(NOTIFICATION, idempotency_key=KEY)
    assert (receipt.status_code, receipt.attempts) == (200, 2)


async def test_connection_refused_raises_augur_unavailable_after_bounded_attempts() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    async with client_for(url) as client:
        with pytest.raises(AugurUnavailable, match=r"4 attempt\(s\).*ConnectError") as caught:
            await client.notify(NOTIFICATION, idempotency_key=KEY)
    assert time.monotonic() - started < 2.5
    assert url in str(caught.value) and TOKEN not in str(caught.value)


async def test_a_dropped_connection_is_retried(augur_stub: AugurStub) -> None:
    augur_stub.script([Reply(disconnect=True), 201])
    async with client_for(augur_stub.url) as client:
        receipt = await client.notify(NOTIFICATION, idempotency_key=KEY)
    assert (receipt.status_code, receipt.attempts) == (201, 2)


GARBLED = {"Content-Encoding": "gzip"}  # a proxy's page whose body is not gzip at all


async def test_an_answer_that_cannot_be_decoded_is_a_failed_attempt(augur_stub: AugurStub) -> None:
    augur_stub.script([Reply(502, text="<html>bad gateway</html>", headers=GARBLED), 201])
    async with client_for(augur_stub.url) as client:
        receipt = await client.notify(NOTIFICATION, idempotency_key=KEY)
    assert (receipt.status_code, receipt.attempts) == (201, 2)


async def test_answers_that_never_decode_end_as_augur_unavailable(augur_stub: AugurStub) -> None:
    augur_stub.fallback(Reply(503, text="upstream down", headers=GARBLED))
    async with client_for(augur_stub.url) as client:
        with pytest.raises(AugurUnavailable) as caught:
            await client.notify(NOTIFICATION, idempotency_key=KEY)
    assert len(augur_stub.requests) == QUICK.max_attempts
    assert "last cause: Augur's answer could not be decoded (DecodingError: " in str(caught.value)


async def test_409_means_augur_already_has_it(augur_stub: AugurStub) -> None:
    augur_stub.script([Reply(409, json={"detail": "already received"})])
    async with client_for(augur_stub.url) as client:
        receipt = await client.notify(NOTIFICATION, idempotency_key=KEY)
    assert (receipt.status_code, receipt.duplicate, len(augur_stub.requests)) == (409, True, 1)


async def test_400_raises_augur_rejected_at_once_with_augurs_message(
    augur_stub: AugurStub,
) -> None:
    augur_stub.script([Reply(400, json={"detail": "dream 5 is archived"})])
    async with client_for(augur_stub.url) as client:
        with pytest.raises(AugurRejected) as caught:
            await client.notify(NOTIFICATION, idempotency_key=KEY)

    assert len(augur_stub.requests) == 1
    assert caught.value.status_code == 400
    assert caught.value.augur_message == "dream 5 is archived"
    assert "dream 5 is archived" in str(caught.value)


async def test_retry_after_past_the_backoff_max_is_waited_in_full(augur_stub: AugurStub) -> None:
    augur_stub.script([Reply(503, headers={"Retry-After": "0.6"}), 201])
    capped = RetryPolicy(max_attempts=3, max_retry_seconds=2.5, backoff_base=0.01, backoff_max=0.1)
    async with client_for(augur_stub.url, retry=capped) as client:
        receipt = await client.notify(NOTIFICATION, idempotency_key=KEY)
    first, second = augur_stub.requests
    assert receipt.attempts == 2 and second.time - first.time >= 0.6  # not the 0.1 s cap


async def test_retry_after_past_the_budget_stops_at_once(augur_stub: AugurStub) -> None:
    augur_stub.fallback(Reply(429, headers={"Retry-After": "120"}))
    started = time.monotonic()
    async with client_for(augur_stub.url) as client:
        with pytest.raises(AugurUnavailable, match=r"asked to wait 120 s \(Retry-After\)"):
            await client.notify(NOTIFICATION, idempotency_key=KEY)
    assert len(augur_stub.requests) == 1 and time.monotonic() - started < 1.0


async def test_the_time_budget_bounds_retries(augur_stub: AugurStub) -> None:
    augur_stub.script([Reply(503, headers={"Retry-After": "0.4"})] * 20)
    budget = RetryPolicy(max_attempts=20, max_retry_seconds=1.0, backoff_base=0.4, backoff_max=0.4)
    started = time.monotonic()
    async with client_for(augur_stub.url, retry=budget) as client:
        with pytest.raises(AugurUnavailable, match="budget spent"):
            await client.notify(NOTIFICATION, idempotency_key=KEY)

    assert time.monotonic() - started < 1.3  # the 1 s budget, plus the last attempt's own time
    assert 2 <= len(augur_stub.requests) <= 3


async def test_a_stall_is_cut_to_the_time_left_in_the_budget(augur_stub: AugurStub) -> None:
    augur_stub.script([500, Reply(stall=5.0)])
    budget = RetryPolicy(max_attempts=5, max_retry_seconds=0.6, backoff_base=0.1, backoff_max=0.1)
    started = time.monotonic()
    async with client_for(augur_stub.url, retry=budget, timeout=2.0) as client:
        with pytest.raises(AugurUnavailable):
            await client.notify(NOTIFICATION, idempotency_key=KEY)
    assert time.monotonic() - started < 1.0


async def test_no_log_record_carries_the_token_even_at_debug(
    augur_stub: AugurStub, caplog: pytest.LogCaptureFixture
) -> None:
    """httpx logs the URL at INFO, httpcore every step at DEBUG: none may show the token."""
    caplog.set_level(logging.DEBUG)
    augur_stub.script([503, Reply(401, json={"detail": f"bad token {TOKEN}"})])
    async with client_for(augur_stub.url) as client:
        with pytest.raises(AugurRejected) as caught:
            await client.notify(NOTIFICATION, idempotency_key=KEY)

    loggers = {record.name for record in caplog.records}
    assert {"httpx", "httpcore.http11", "noctis.augur"} <= loggers
    assert TOKEN not in caplog.text
    assert TOKEN not in str(caught.value)


def test_the_stub_stops_promptly_while_a_handler_stalls() -> None:
    stub = AugurStub().start()
    stub.script([Reply(stall=30.0)])
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(stub.url + "/x", json={}, timeout=0.2)
    started = time.monotonic()
    stub.stop()
    assert time.monotonic() - started < 1.0
    assert [r.path for r in stub.requests] == ["/x"]
    assert not [t for t in threading.enumerate() if t.name.startswith("augur-stub")]


@pytest.mark.parametrize("token", ["tok\nen-7c1d2e", "tok\x00-7c1d2e", "tök-7c1d2e"])
def test_a_token_no_header_can_carry_is_refused_before_anything_is_sent(token: str) -> None:
    """Settings refuse such a token first; a client built around them refuses it too, rather
    than let httpx fail on the wire and quote the header (as escaped bytes) in its errors."""
    with pytest.raises(ConfigurationError) as refused:
        AugurClient(
            base_url="http://127.0.0.1:9", token=SecretStr(token), connect_timeout=0.5,
            timeout=1.0, retry=QUICK,
        )  # fmt: skip
    assert str(refused.value).startswith("NOCTIS_AUGUR_API_TOKEN ")
    for form in {token, repr(token)[1:-1], repr(token.encode())[2:-1], "7c1d2e"}:
        assert form not in str(refused.value)


async def test_a_token_with_a_trailing_newline_is_sent_without_it(augur_stub: AugurStub) -> None:
    client = AugurClient(
        base_url=augur_stub.url, token=SecretStr(TOKEN + "\n"), connect_timeout=0.5,
        timeout=1.0, retry=QUICK,
    )  # fmt: skip
    async with client:
        await client.notify(NOTIFICATION, idempotency_key=KEY)
    assert augur_stub.requests[0].header("Authorization") == f"Bearer {TOKEN}"
