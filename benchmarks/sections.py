"""The benchmarks' sections of RESULTS.md: each between its own begin and end markers."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Final, TypeVar

from benchmarks.db import parse_size

T = TypeVar("T")


def replace_section(path: Path, begin: str, end: str, section: str) -> None:
    """Put ``section`` (which starts with ``begin`` and ends with ``end`` and a newline) where
    the one between the same markers stands in ``path``, or append it."""
    text = path.read_text()
    if begin in text:
        text = text[: text.index(begin)] + section + text[text.index(end) + len(end) + 1 :]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


RESULTS: Final = Path(__file__).with_name("RESULTS.md")


def section_main(
    argv: list[str] | None,
    *,
    prog: str,
    doc: str | None,
    size: str,
    runs: int,
    measure: Callable[[int, int, str | None], Coroutine[Any, Any, T]],
    render: Callable[[int, int, T], str],
    markers: tuple[str, str],
) -> int:
    """The command line of a benchmark with one archive and one section of RESULTS.md:
    ``--size``, ``--runs``, ``--server-url`` (a server to build the archive on) and
    ``--write`` (replace its section between ``markers``); prints the section."""
    parser = argparse.ArgumentParser(prog=f"python -m {prog}", description=doc)
    parser.add_argument("--size", default=size)
    parser.add_argument("--runs", type=int, default=runs)
    parser.add_argument("--server-url")
    parser.add_argument("--write", action="store_true", help="replace its section of RESULTS.md")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    items = parse_size(args.size)
    section = render(items, args.runs, asyncio.run(measure(items, args.runs, args.server_url)))
    print(section)
    if args.write:
        replace_section(RESULTS, *markers, section)
    return 0
