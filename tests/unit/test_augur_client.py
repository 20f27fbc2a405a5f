"""AugurClient against httpx.MockTransport: statuses, retries, budget, headers, secrets."""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from pydantic import SecretStr, ValidationError

from noctis import __version__
from noctis.augur import (
    DEFAULT_NOTIFY_PATH,
    AugurClient,
    Notification,
    NotificationEvent,
    RetryPolicy,
    _parse_retry_after,
    completed_key,
    failed_key,
)
from noctis.errors import AugurRejected, AugurUnavailable
from noctis.settings import Settings

TOKEN = "s3cr3t-augur-token-4f9a"
SECRET = SecretStr(TOKEN)
RUN_ID = "0b5a6c1e-7f3d-4e2a-9c4b-1d2e3f405162"
KEY = completed_key(12, 5, 41)
FAST = RetryPolicy(max_attempts=4, max_retry_seconds=60.0, backoff_base=0.5, backoff_max=8.0)

Handler = Callable[[httpx.Request], httpx.Response]


class FakeTime:
    """A clock that only moves when the client sleeps (or a handler says so)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def completed(**overrides: object) -> Notification:
    fields: dict[str, object] = {
        "event": NotificationEvent.COMPLETED,
        "dream_pk": 5,
        "imagery_finder_pk": 12,
        "flow_run_id": RUN_ID,
        "matched_count": 40,
        "new_count": 3,
        "coverage": 0.93,
        "plan_scenes": 4,
        "plan_coverage": 0.92,
    }
    return Notification.model_validate(fields | overrides)


def scripted(*responses: httpx.Response | Exception) -> tuple[Handler, list[httpx.Request]]:
    """A handler answering with ``responses`` in order (then 200), recording each request."""
    seen: list[httpx.Request] = []
    pending = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = pending.pop(0) if pending else httpx.Response(200, json={"status": "ok"})
        if isinstance(answer, Exception):
            raise answer
        return answer

    return handler, seen


def client_for(
    handler: Handler,
    fake: FakeTime,
    *,
    retry: RetryPolicy = FAST,
    token: SecretStr | None = SECRET,
) -> AugurClient:
    return AugurClient(
        base_url="https://augur.example/",
        token=token,
        connect_timeout=1.0,
        timeout=5.0,
        retry=retry,
        transport=httpx.MockTransport(handler),
        sleep=fake.sleep,
        clock=fake.clock,
    )


async def test_posts_the_notification_to_the_dream_path_with_every_header() -> None:
    handler, seen = scripted(httpx.Response(202))
    async with client_for(handler, FakeTime()) as client:
        receipt = await client.notify(completed(), idempotency_key=KEY)

    assert (receipt.status_code, receipt.attempts, receipt.duplicate) == (202, 1, False)
    [request] = seen
    assert request.method == "POST"
    assert str(request.url) == "https://augur.example/api/v1/dreams/5/divinations/continue"
    assert (
        request.headers["Idempotency-Key"] == "noctis:imagery-finder-12:dream-5:update-41:completed"
    )
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["User-Agent"] == f"noctis/{__version__}"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == {
        "event": "imagery-finder-study.completed",
        "dream_pk": 5,
        "imagery_finder_pk": 12,
        "flow_run_id": RUN_ID,
        "matched_count": 40,
        "new_count": 3,
        "coverage": 0.93,
        "plan_scenes": 4,
        "plan_coverage": 0.92,
    }


async def test_sends_the_error_of_a_failed_study_and_no_authorization_without_token() -> None:
    handler, seen = scripted()
    failed = completed(event=NotificationEvent.FAILED, error="InvalidFinder: inverted dates")
    async with client_for(handler, FakeTime(), token=None) as client:
        await client.notify(failed, idempotency_key=failed_key(12, 5, RUN_ID))

    body = json.loads(seen[0].content)
    assert (body["event"], body["error"]) == ("imagery-finder-study.failed", failed.error)
    assert (
        seen[0].headers["Idempotency-Key"]
        == f"noctis:imagery-finder-12:dream-5:run-{RUN_ID}:failed"
    )
    assert "Authorization" not in seen[0].headers


def test_a_notification_carries_an_error_exactly_when_the_study_failed() -> None:
    with pytest.raises(ValidationError):
        completed(event=NotificationEvent.FAILED)
    with pytest.raises(ValidationError):
        completed(error="not a failure")
    with pytest.raises(ValidationError):
        completed(matched_count=-1)
    long = completed(event=NotificationEvent.FAILED, error="x" * 10_000)
    assert long.error is not None and len(long.error) <= 2001


def test_a_key_names_the_study_and_the_update_or_the_failed_run() -> None:
    assert KEY == "noctis:imagery-finder-12:dream-5:update-41:completed"
    assert completed_key(12, 5, 41) == KEY  # the same update: the same key, whoever sends it
    assert completed_key(12, 5, 42) != KEY  # a rerun of the study is a new update
    assert completed_key(12, 6, 41) != KEY and completed_key(13, 5, 41) != KEY
    assert failed_key(12, 5, RUN_ID) == f"noctis:imagery-finder-12:dream-5:run-{RUN_ID}:failed"
    assert failed_key(12, 5, "another-run") != failed_key(12, 5, RUN_ID)


async def test_retries_500_then_succeeds_with_same_idempotency_key() -> None:
    fake = FakeTime()
    handler, seen = scripted(httpx.Response(500), httpx.Response(200))
    async with client_for(handler, fake) as client:
        receipt = await client.notify(completed(), idempotency_key=KEY)

    assert (receipt.status_code, receipt.attempts) == (200, 2)
    assert [r.headers["Idempotency-Key"] for r in seen] == [KEY, KEY]
    assert seen[0].content == seen[1].content
    assert len(fake.sleeps) == 1 and 0 <= fake.sleeps[0] <= FAST.backoff_base


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
async def test_retries_transient_statuses(status: int) -> None:
    handler, seen = scripted(httpx.Response(status), httpx.Response(status))
    async with client_for(handler, FakeTime()) as client:
        receipt = await client.notify(completed(), idempotency_key=KEY)
    assert (receipt.attempts, len(seen)) == (3, 3)


@pytest.mark.parametrize(
    "error",
    [httpx.ConnectError("refused"), httpx.ReadTimeout("timed out"), httpx.RemoteProtocolError("")],
)
async def test_retries_connection_errors_and_timeouts(error: Exception) -> None:
    handler, seen = scripted(error)
    async with client_for(handler, FakeTime()) as client:
        receipt = await client.notify(completed(), idempotency_key=KEY)
    assert (receipt.attempts, len(seen)) == (2, 2)


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (
            httpx.DecodingError("Error -3 while decompressing data"),
            "Augur's answer could not be decoded (DecodingError: Error -3 while decompressing",
        ),
        (httpx.TooManyRedirects("Exceeded maximum redirects."), "TooManyRedirects: Exceeded"),
    ],
)
async def test_every_request_error_is_a_failed_attempt_never_an_untyped_escape(
    error: httpx.RequestError, cause: str
) -> None:
    handler, seen = scripted(*[error] * 10)
    async with client_for(handler, FakeTime()) as client:
        with pytest.raises(AugurUnavailable) as caught:
            await client.notify(completed(), idempotency_key=KEY)
    assert len(seen) == FAST.max_attempts
    assert f"last cause: {cause}" in str(caught.value)


async def test_409_means_augur_already_has_it_and_is_a_success() -> None:
    handler, seen = scripted(httpx.Response(409, json={"detail": "duplicate"}))
    async with client_for(handler, FakeTime()) as client:
        receipt = await client.notify(completed(), idempotency_key=KEY)
    assert (receipt.status_code, receipt.duplicate, len(seen)) == (409, True, 1)


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (httpx.Response(400, json={"detail": "dream 5 is archived"}), "dream 5 is archived"),
        (httpx.Response(422, json={"message": "bad coverage"}), "bad coverage"),
        (httpx.Response(403, json={"error": "forbidden dream"}), "forbidden dream"),
        (httpx.Response(422, json={"detail": [{"loc": ["x"]}]}), '[{"loc": ["x"]}]'),
        (httpx.Response(404, text="no such route\n"), "no such route"),
        (httpx.Response(401), "Unauthorized"),
        (httpx.Response(301, headers={"Location": "https://elsewhere"}), "Moved Permanently"),
    ],
)
async def test_other_statuses_raise_augur_rejected_at_once_with_augurs_message(
    response: httpx.Response, message: str
) -> None:
    fake = FakeTime()
    handler, seen = scripted(response)
    async with client_for(handler, fake) as client:
        with pytest.raises(AugurRejected) as caught:
            await client.notify(completed(), idempotency_key=KEY)
    assert (caught.value.status_code, caught.value.augur_message) == (response.status_code, message)
    assert message in str(caught.value)
    assert (len(seen), fake.sleeps) == (1, [])


async def test_a_long_rejection_body_is_truncated() -> None:
    handler, _ = scripted(httpx.Response(400, text="y" * 5000))
    async with client_for(handler, FakeTime()) as client:
        with pytest.raises(AugurRejected) as caught:
            await client.notify(completed(), idempotency_key=KEY)
    assert 500 <= len(caught.value.augur_message) <= 501


@pytest.mark.parametrize("before", [480, 490, 495, 499])
@pytest.mark.parametrize("as_json", [False, True])
async def test_a_token_echoed_across_the_cut_leaves_no_part_of_itself(
    before: int, as_json: bool
) -> None:
    echo = "x" * before + f"{TOKEN} was refused"  # the token straddles the 500-character cut
    answer = httpx.Response(401, **({"json": {"detail": echo}} if as_json else {"text": echo}))
    handler, _ = scripted(answer)
    async with client_for(handler, FakeTime()) as client:
        with pytest.raises(AugurRejected) as caught:
            await client.notify(completed(), idempotency_key=KEY)
    message = str(caught.value)
    assert caught.value.augur_message == ("x" * before + "**********" + " was refused")[:500] + "…"
    assert not any(TOKEN[:n] in message for n in range(4, len(TOKEN) + 1)), message[-40:]


@pytest.mark.parametrize(("header", "expected"), [("3", 3.0), ("0", 0.0), ("20", 20.0)])
async def test_honours_retry_after_seconds_even_past_backoff_max(
    header: str, expected: float
) -> None:
    fake = FakeTime()
    handler, _ = scripted(httpx.Response(429, headers={"Retry-After": header}))
    async with client_for(handler, fake) as client:  # backoff max 8 s, budget 60 s
        await client.notify(completed(), idempotency_key=KEY)
    assert fake.sleeps == [expected]


async def test_a_retry_after_past_the_budget_ends_the_retries_never_retrying_sooner() -> None:
    """Augur asked for 120 s: the client used to retry at 30/60/90 s (the backoff max)."""
    fake = FakeTime()
    sent: list[float] = []

    def busy(request: httpx.Request) -> httpx.Response:
        sent.append(fake.now)
        return httpx.Response(429, headers={"Retry-After": "120"})

    async with client_for(busy, fake, retry=RetryPolicy()) as client:  # 5 attempts in 120 s
        with pytest.raises(AugurUnavailable) as caught:
            await client.notify(completed(), idempotency_key=KEY)
    assert (sent, fake.sleeps) == ([1000.0], [])
    assert "budget spent: Augur asked to wait 120 s (Retry-After)" in str(caught.value)
    assert "last cause: HTTP 429" in str(caught.value)


async def test_honours_retry_after_as_an_http_date() -> None:
    fake = FakeTime()
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=5), usegmt=True)
    handler, _ = scripted(httpx.Response(503, headers={"Retry-After": later}))
    async with client_for(handler, fake) as client:
        await client.notify(completed(), idempotency_key=KEY)
    assert 3.0 <= fake.sleeps[0] <= 5.0


def test_parses_retry_after_in_every_form() -> None:
    now = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert _parse_retry_after("120", now=now) == 120.0
    assert _parse_retry_after("Wed, 01 Jan 2025 12:00:30 GMT", now=now) == 30.0
    assert _parse_retry_after("Wed, 01 Jan 2025 11:00:00 GMT", now=now) == 0.0
    assert _parse_retry_after("-5", now=now) == 0.0
    for unusable in (None, "", "soon", "nan", "inf"):
        assert _parse_retry_after(unusable, now=now) is None


def test_backoff_is_exponential_with_full_jitter_and_capped() -> None:
    policy = RetryPolicy(max_attempts=10, max_retry_seconds=60, backoff_base=0.5, backoff_max=3.0)
    assert [policy.backoff(n, jitter=1.0) for n in (1, 2, 3, 4, 50)] == pytest.approx(
        [0.5, 1.0, 2.0, 3.0, 3.0]
    )
    assert policy.backoff(4, jitter=0.0) == 0.0
    assert policy.backoff(3, jitter=0.5) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


async def test_gives_up_after_max_attempts_naming_attempts_time_and_last_cause() -> None:
    fake = FakeTime()
    handler, seen = scripted(*[httpx.Response(503)] * 10)
    async with client_for(handler, fake) as client:
        with pytest.raises(AugurUnavailable) as caught:
            await client.notify(completed(), idempotency_key=KEY)
    assert len(seen) == FAST.max_attempts
    assert len(fake.sleeps) == FAST.max_attempts - 1
    assert all(0 <= delay <= FAST.backoff_max for delay in fake.sleeps)
    message = str(caught.value)
    assert "4 attempt(s)" in message and "max attempts reached" in message
    assert "last cause: HTTP 503" in message and "dream 5" in message


async def test_names_the_exception_when_the_last_cause_was_one() -> None:
    handler, _ = scripted(*[httpx.ConnectError("connection refused")] * 10)
    async with client_for(handler, FakeTime()) as client:
        with pytest.raises(AugurUnavailable, match=r"last cause: ConnectError: connection refused"):
            await client.notify(completed(), idempotency_key=KEY)


async def test_the_time_budget_stops_retries_before_max_attempts() -> None:
    fake = FakeTime()
    budget = RetryPolicy(max_attempts=100, max_retry_seconds=10.0, backoff_base=4, backoff_max=4)

    def slow_503(request: httpx.Request) -> httpx.Response:
        fake.now += 1.0  # each attempt takes a second
        return httpx.Response(503, headers={"Retry-After": "4"})

    async with client_for(slow_503, fake, retry=budget) as client:
        with pytest.raises(AugurUnavailable, match="budget spent") as caught:
            await client.notify(completed(), idempotency_key=KEY)
    # 1 s attempt + 4 s wait + 1 s attempt = 6 s; another 4 s wait would end at 10 s: stop.
    assert fake.sleeps == [4.0]
    assert "2 attempt(s) over 6.00 s" in str(caught.value)


async def test_logs_each_retry_at_warning(caplog: pytest.LogCaptureFixture) -> None:
    handler, _ = scripted(httpx.Response(502), httpx.Response(502))
    caplog.set_level(logging.WARNING, logger="noctis.augur")
    async with client_for(handler, FakeTime()) as client:
        await client.notify(completed(), idempotency_key=KEY)
    retries = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage().split(", attempt ")[1][:3] for r in retries] == ["1/4", "2/4"]
    assert all("HTTP 502" in r.getMessage() for r in retries)


async def test_token_never_appears_in_logs_exceptions_or_reprs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    fake = FakeTime()
    echo = f"invalid token Bearer {TOKEN}"
    handler, seen = scripted(
        httpx.Response(503, text=echo),
        httpx.ConnectError(f"proxy said {TOKEN}"),
        httpx.Response(500),
        httpx.ConnectError(f"proxy said {TOKEN}"),
        httpx.Response(401, json={"detail": echo}),
    )
    errors: list[BaseException] = []
    async with client_for(handler, fake) as client:
        texts = [repr(client), repr(completed()), repr(client._retry)]
        for _ in range(2):
            try:
                await client.notify(completed(), idempotency_key=KEY)
            except (AugurUnavailable, AugurRejected) as exc:
                errors.append(exc)

    assert [type(e) for e in errors] == [AugurUnavailable, AugurRejected]
    assert seen[0].headers["Authorization"] == f"Bearer {TOKEN}"  # it was sent, though
    for error in errors:
        texts += [str(error), repr(error), "".join(traceback.format_exception(error))]
    texts += [caplog.text, *(repr(r.args) for r in caplog.records)]
    assert caplog.records, "expected the retries to be logged"
    for text in texts:
        assert TOKEN not in text


def test_refuses_a_base_url_with_credentials_without_echoing_them() -> None:
    with pytest.raises(ValueError) as caught:
        AugurClient(
            base_url="https://noctis:hunter2@augur.example",
            connect_timeout=1,
            timeout=1,
            retry=FAST,
        )
    assert "hunter2" not in str(caught.value)


async def test_from_settings_reads_every_augur_knob() -> None:
    settings = Settings(
        noctis_augur_api_url="http://augur:8000/",
        noctis_augur_notify_path="/hooks/{dream_pk}",
        noctis_augur_api_token=SecretStr(TOKEN),
        noctis_augur_connect_timeout=2.0,
        noctis_augur_timeout=9.0,
        noctis_augur_max_attempts=7,
        noctis_augur_max_retry_seconds=42.0,
        noctis_augur_backoff_base=0.25,
        noctis_augur_backoff_max=4.0,
        _env_file=None,
    )
    handler, seen = scripted()
    client = AugurClient.from_settings(settings, transport=httpx.MockTransport(handler))
    async with client:
        await client.notify(completed(), idempotency_key=KEY)
    assert str(seen[0].url) == "http://augur:8000/hooks/5"
    assert seen[0].headers["Authorization"] == f"Bearer {TOKEN}"
    assert seen[0].extensions["timeout"] == {"connect": 2.0, "read": 9.0, "write": 9.0, "pool": 9.0}
    assert client._retry == RetryPolicy(
        max_attempts=7, max_retry_seconds=42.0, backoff_base=0.25, backoff_max=4.0
    )
    assert TOKEN not in repr(client)
    disabled = settings.model_copy(update={"noctis_augur_api_url": ""})
    with pytest.raises(ValueError, match="empty"):
        AugurClient.from_settings(disabled)
    assert Settings.model_fields["noctis_augur_notify_path"].default == DEFAULT_NOTIFY_PATH
