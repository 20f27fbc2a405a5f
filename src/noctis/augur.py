"""Tell Augur that a study's imagery is recorded (or that the study failed), so the study goes on.

``POST {NOCTIS_AUGUR_API_URL}{NOCTIS_AUGUR_NOTIFY_PATH}`` (``{dream_pk}`` filled in) with a
:class:`Notification` as JSON. ``error`` is omitted on success and required on failure.
Headers: ``Idempotency-Key`` (one per logical notification, the same on every attempt by every
sender: :func:`completed_key`, :func:`failed_key`, so Augur can drop duplicates),
``Authorization: Bearer <token>`` when a token is set, ``User-Agent: noctis/<version>``,
``Content-Type: application/json``.

======================================  ==================================================
Augur's answer                          What :meth:`AugurClient.notify` does
======================================  ==================================================
2xx                                     returns a :class:`NotifyReceipt`
409 (already received)                  returns a receipt with ``duplicate=True``
408, 429, 5xx, ``httpx.RequestError``  retried; ``AugurUnavailable`` once the budget is spent
any other 4xx (and 1xx/3xx)             ``AugurRejected(status, Augur's message)`` at once
======================================  ==================================================

``httpx.RequestError`` is every failed exchange: a timeout, a refused or dropped connection, an
answer httpx cannot decode (a proxy's page whose ``Content-Encoding`` lies), a redirect loop.

Retries use exponential backoff with full jitter: ``uniform(0, min(max, base * 2**(n-1)))``
after attempt ``n``. A ``Retry-After`` (seconds or HTTP-date) replaces it and is honoured: the
next attempt never comes sooner than Augur asked, even past the backoff max. Retries stop at
``max_attempts`` or when the next wait (a ``Retry-After`` too) would overrun
``max_retry_seconds`` counted from the first attempt, whichever comes first: a server asking
for a longer wait cannot park the flow, and the outbox's dispatcher sends it later. Each
attempt's timeout is also cut to the time left, so ``notify`` never runs much past the budget.
Each retry is logged at WARNING (attempt n/m, cause, delay).

The token is a ``SecretStr``, unwrapped only in the httpx auth flow (to set the header) and to
scrub it, in every form it can take (:mod:`noctis.redaction`), from any text Augur or httpx
sends back: no log, message or repr of ours can carry it. A request httpx refuses to build (a
malformed header, an unsupported URL) is a configuration error, raised at once, never retried.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from enum import StrEnum
from typing import Any, Self
from uuid import UUID

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from noctis import __version__
from noctis.errors import AugurRejected, AugurUnavailable, ConfigurationError
from noctis.redaction import redact
from noctis.settings import DEFAULT_NOTIFY_PATH as DEFAULT_NOTIFY_PATH
from noctis.settings import Settings, check_bearer_token, check_notify_path

logger = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({408, 429})
MESSAGE_LIMIT = 500  # characters of Augur's answer kept in AugurRejected
ERROR_LIMIT = 2000  # characters of a failure sent to Augur: a traceback must not cause a 413


class NotificationEvent(StrEnum):
    COMPLETED = "imagery-finder-study.completed"
    FAILED = "imagery-finder-study.failed"
    UPDATED = "imagery-finder-study.updated"
    """A standing study gained (or lost) scenes after it ran: one per study per matcher batch."""


class Notification(BaseModel):
    """What Augur needs to continue the dream: which study, which run, what was found."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event: NotificationEvent
    dream_pk: int
    imagery_finder_pk: int
    flow_run_id: str = Field(min_length=1)  # str(flow_run.id)
    matched_count: int = Field(default=0, ge=0)
    new_count: int = Field(default=0, ge=0)
    coverage: float | None = Field(default=None, ge=0.0, allow_inf_nan=False)
    plan_scenes: int | None = Field(default=None, ge=0)
    """Scenes in the coverage plan of the whole window (None: a point AOI, or a failure)."""
    plan_coverage: float | None = Field(default=None, ge=0.0, allow_inf_nan=False)
    """Share of the AOI those scenes cover (in the terms of ``coverage``)."""
    error: str | None = None
    removed_count: int | None = Field(default=None, ge=0)
    """``updated`` only: lookup rows removed because an updated scene no longer matches."""

    @field_validator("error")
    @classmethod
    def _truncate_error(cls, value: str | None) -> str | None:
        return value if value is None or len(value) <= ERROR_LIMIT else value[:ERROR_LIMIT] + "…"

    @model_validator(mode="after")
    def _error_iff_failed(self) -> Self:
        if (self.event is NotificationEvent.FAILED) != bool(self.error):
            raise ValueError("error must be set for a failed event, and only for one")
        return self

    def body(self) -> dict[str, Any]:
        """The JSON body: every field, ``error`` left out on success and ``removed_count``
        outside ``updated``."""
        absent = {name for name in ("error", "removed_count") if getattr(self, name) is None}
        return self.model_dump(mode="json", exclude=absent)


def completed_key(imagery_finder_pk: int, dream_pk: int, update_id: int) -> str:
    """``noctis:imagery-finder-<pk>:dream-<pk>:update-<n>:completed``: the key of one committed
    study update, ``n`` being its outbox row (never reused). Every attempt, by the flow or a
    dispatcher, and a link retried after a lost COMMIT, carry the same key; a rerun of the study
    is a new update, with a new key. The outbox computes it in SQL (``OUTBOX_KEY_SQL``)."""
    study = f"noctis:imagery-finder-{imagery_finder_pk}:dream-{dream_pk}"
    return f"{study}:update-{update_id}:completed"


def updated_key(imagery_finder_pk: int, dream_pk: int, update_id: int) -> str:
    """``noctis:imagery-finder-<pk>:dream-<pk>:update-<n>:updated``: the key of one standing
    match batch's update of a study, ``n`` being its outbox row, as :func:`completed_key`."""
    study = f"noctis:imagery-finder-{imagery_finder_pk}:dream-{dream_pk}"
    return f"{study}:update-{update_id}:updated"


def failed_key(imagery_finder_pk: int, dream_pk: int, flow_run_id: str | UUID) -> str:
    """``noctis:imagery-finder-<pk>:dream-<pk>:run-<flow run id>:failed``: a failure is one
    flow run's, whoever announces it (the run itself, or the dispatcher after a crash)."""
    study = f"noctis:imagery-finder-{imagery_finder_pk}:dream-{dream_pk}"
    return f"{study}:run-{flow_run_id}:failed"


@dataclass(frozen=True, kw_only=True)
class NotifyReceipt:
    status_code: int
    attempts: int
    elapsed: float  # seconds, first attempt to answer
    duplicate: bool  # Augur answered 409: it had this notification already


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    max_attempts: int = 5
    max_retry_seconds: float = 120.0
    backoff_base: float = 0.5
    backoff_max: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.max_retry_seconds <= 0:
            raise ValueError("RetryPolicy needs max_attempts >= 1 and max_retry_seconds > 0")
        if self.backoff_base < 0 or self.backoff_max < 0:
            raise ValueError("RetryPolicy backoff_base and backoff_max must be >= 0")

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        return cls(
            max_attempts=settings.noctis_augur_max_attempts,
            max_retry_seconds=settings.noctis_augur_max_retry_seconds,
            backoff_base=settings.noctis_augur_backoff_base,
            backoff_max=settings.noctis_augur_backoff_max,
        )

    def backoff(self, attempt: int, *, jitter: float) -> float:
        """The wait after failed attempt ``attempt`` (1-based); ``jitter`` in ``[0, 1]``."""
        return jitter * min(self.backoff_max, self.backoff_base * 2.0 ** min(attempt - 1, 62))


class _Bearer(httpx.Auth):
    """Unwraps the token only while httpx builds the request: nothing else ever holds it."""

    def __init__(self, token: SecretStr) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        yield request


class AugurClient:
    """Sends notifications to Augur, retrying transient failures; use as ``async with``."""

    def __init__(
        self,
        *,
        base_url: str,
        notify_path: str = DEFAULT_NOTIFY_PATH,
        token: SecretStr | None = None,
        connect_timeout: float,
        timeout: float,
        retry: RetryPolicy,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        url = httpx.URL(base_url.strip().rstrip("/"))
        if url.scheme not in {"http", "https"} or not url.host:
            raise ValueError("the Augur URL (NOCTIS_AUGUR_API_URL) must be an http(s) URL")
        if url.userinfo or url.query or url.fragment:
            raise ValueError("NOCTIS_AUGUR_API_URL must not hold credentials (use the token)")
        try:
            check_notify_path(notify_path)
        except ValueError as exc:
            raise ValueError(f"the notify path (NOCTIS_AUGUR_NOTIFY_PATH) {exc}") from None
        if token is not None:
            try:
                token = SecretStr(check_bearer_token(token.get_secret_value()))
            except ValueError as exc:  # never sent: httpx would quote the header in its error
                raise ConfigurationError(f"NOCTIS_AUGUR_API_TOKEN {exc}") from None
        self._base_url = str(url).rstrip("/")
        self._notify_path = "/" + notify_path.lstrip("/")
        self._token = token
        self._connect_timeout, self._timeout = connect_timeout, timeout
        self._retry, self._sleep, self._clock = retry, sleep, clock
        self._http = httpx.AsyncClient(
            transport=transport,
            auth=_Bearer(token) if token is not None else None,
            headers={"User-Agent": f"noctis/{__version__}", "Accept": "application/json"},
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            follow_redirects=False,
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> AugurClient:
        if not settings.augur_enabled:
            raise ValueError("NOCTIS_AUGUR_API_URL is empty: check settings.augur_enabled first")
        return cls(
            base_url=settings.noctis_augur_api_url,
            notify_path=settings.noctis_augur_notify_path,
            token=settings.noctis_augur_api_token,
            connect_timeout=settings.noctis_augur_connect_timeout,
            timeout=settings.noctis_augur_timeout,
            retry=RetryPolicy.from_settings(settings),
            transport=transport,
        )

    def __repr__(self) -> str:
        token = "**********" if self._token is not None else None
        return f"AugurClient(base_url={self._base_url!r}, token={token!r}, retry={self._retry!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def notify(self, notification: Notification, *, idempotency_key: str) -> NotifyReceipt:
        """POST the notification until Augur takes it, refuses it, or the retry budget runs out."""
        path = self._notify_path.format(
            dream_pk=notification.dream_pk, imagery_finder_pk=notification.imagery_finder_pk
        )
        what = f"{notification.event} for dream {notification.dream_pk}"
        headers = {"Idempotency-Key": idempotency_key, "Content-Type": "application/json"}
        body = json.dumps(notification.body()).encode()
        policy, start, attempt = self._retry, self._clock(), 0
        while True:
            attempt += 1
            limit = min(self._timeout, max(start + policy.max_retry_seconds - self._clock(), 0.01))
            timeout = httpx.Timeout(limit, connect=min(self._connect_timeout, limit))
            retry_after, error = None, None
            try:
                async with asyncio.timeout(limit):
                    response = await self._http.post(
                        self._base_url + path, content=body, headers=headers, timeout=timeout
                    )
            except (httpx.LocalProtocolError, httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
                raise ConfigurationError(
                    f"Noctis could not build the request to Augur ({type(exc).__name__}: "
                    f"{self._scrub(str(exc))}): check NOCTIS_AUGUR_API_URL and "
                    "NOCTIS_AUGUR_API_TOKEN"
                ) from None  # the original quotes the request; it must not be chained
            except (httpx.RequestError, TimeoutError) as exc:
                # every failed exchange (above): none may escape untyped and abort an outbox pass
                text = self._scrub(str(exc))
                error = exc if text == str(exc) else None  # never chain one quoting the token
                cause = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
                if isinstance(exc, httpx.DecodingError):
                    cause = f"Augur's answer could not be decoded ({cause})"
            else:
                status = response.status_code
                if 200 <= status < 300 or status == 409:
                    elapsed = self._clock() - start
                    logger.info("Augur took the %s: HTTP %d, %d attempt(s)", what, status, attempt)
                    return NotifyReceipt(
                        status_code=status,
                        attempts=attempt,
                        elapsed=elapsed,
                        duplicate=status == 409,
                    )
                if status not in RETRYABLE_STATUSES and status < 500:
                    raise AugurRejected(
                        status, _clip(self._scrub(_augur_message(response))), what=what
                    )
                cause = f"HTTP {status}"
                retry_after = _parse_retry_after(response.headers.get("Retry-After"))
            if retry_after is None:
                delay = policy.backoff(attempt, jitter=random.random())  # noqa: S311
            else:  # never sooner than asked; a wait past the budget ends the retries (below)
                delay = retry_after
            spent = self._clock() - start
            if attempt >= policy.max_attempts or spent + delay >= policy.max_retry_seconds:
                stop = "max attempts reached" if attempt >= policy.max_attempts else "budget spent"
                if retry_after is not None and attempt < policy.max_attempts:
                    stop = f"budget spent: Augur asked to wait {retry_after:g} s (Retry-After)"
                raise AugurUnavailable(
                    f"Augur at {self._base_url}{path} did not take the {what}: {attempt} attempt(s)"
                    f" over {spent:.2f} s ({stop}, limit {policy.max_attempts} attempts in"
                    f" {policy.max_retry_seconds:g} s); last cause: {cause}",
                    retry_after=retry_after,
                ) from error
            logger.warning(
                "Augur notification (%s) failed, attempt %d/%d: %s; retrying in %.2f s",
                *(what, attempt, policy.max_attempts, cause, delay),
            )
            await self._sleep(delay)

    def _scrub(self, text: str) -> str:
        """Augur or a proxy may echo the token back; it must not reach a message or a log."""
        return redact(text, [self._token.get_secret_value() if self._token is not None else None])


def _clip(text: str, limit: int = MESSAGE_LIMIT) -> str:
    """``text`` cut to ``limit`` characters. Cut only scrubbed text: a cut through an echoed
    token leaves a prefix that no longer matches the token, and so would not be masked."""
    return text if len(text) <= limit else text[:limit] + "…"


def _augur_message(response: httpx.Response) -> str:
    """Augur's own words, whole: a JSON ``detail``/``message``/``error``, else the body text
    (scrub it, then :func:`_clip` it)."""
    try:
        data = response.json()
    except ValueError:
        data = None
    found = None
    if isinstance(data, dict):
        found = next((data[k] for k in ("detail", "message", "error") if data.get(k)), None)
    if found is not None:
        text = found if isinstance(found, str) else json.dumps(found)
    else:
        text = response.text.strip() or response.reason_phrase
    return text


def _parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or HTTP-date); None if unusable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(seconds, 0.0) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)
