"""The benchmarks' sections of RESULTS.md: each between its own begin and end markers."""

from __future__ import annotations

from pathlib import Path


def replace_section(path: Path, begin: str, end: str, section: str) -> None:
    """Put ``section`` (which starts with ``begin`` and ends with ``end`` and a newline) where
    the one between the same markers stands in ``path``, or append it."""
    text = path.read_text()
    if begin in text:
        text = text[: text.index(begin)] + section + text[text.index(end) + len(end) + 1 :]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)
