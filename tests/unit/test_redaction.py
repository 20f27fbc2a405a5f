"""Every form a secret takes in a message is masked (noctis.redaction)."""

from __future__ import annotations

import json
from urllib.parse import quote, quote_plus

import pytest

from noctis.redaction import MASK, redact

SECRET = "pw with space/#?&é\n"


@pytest.mark.parametrize(
    "form",
    [
        SECRET,
        repr(SECRET)[1:-1],
        repr(SECRET.encode())[2:-1],
        quote(SECRET, safe=""),
        quote_plus(SECRET),
        json.dumps(SECRET)[1:-1],
    ],
    ids=["raw", "repr", "bytes-repr", "url", "url-plus", "json"],
)
def test_every_form_is_masked(form: str) -> None:
    text = f"connect failed: header b'Bearer x' value {form} rejected"
    masked = redact(text, [SECRET])
    assert form not in masked
    assert MASK in masked
    assert masked.startswith("connect failed: header")


def test_no_secret_no_change_and_short_secrets_are_left_alone() -> None:
    assert redact("nothing here", [None, ""]) == "nothing here"
    assert redact("a b a", ["a"]) == "a b a"
