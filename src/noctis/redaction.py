"""Secrets out of text: every form a secret can take in a message is masked.

A secret reaches a message raw, but also as a driver or HTTP library prints it: escaped
(``'tok\\n'`` in a ``repr``, ``b'Bearer tok\\n'`` in an httpx protocol error), URL-encoded
(``tok%0A`` in a logged URL), or JSON-escaped. :func:`redact` masks each of them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "**********"
MIN_LENGTH = 4
"""Shorter secrets are not masked: masking ``ab`` everywhere would garble every message, and
a secret that short protects nothing."""


def forms(secret: str) -> set[str]:
    """The forms ``secret`` takes in text: raw, escaped, bytes-escaped, URL- and JSON-encoded."""
    variants = {
        secret,
        repr(secret)[1:-1],
        secret.encode("unicode_escape").decode("ascii"),
        repr(secret.encode("utf-8", "backslashreplace"))[2:-1],
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
    }
    return {v for v in variants if len(v) >= MIN_LENGTH}


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every form of every secret replaced by ``**********`` (longest first)."""
    found = sorted({f for s in secrets if s for f in forms(s)}, key=len, reverse=True)
    for form in found:
        text = text.replace(form, MASK)
    return text
