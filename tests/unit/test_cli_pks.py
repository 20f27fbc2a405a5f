"""Ids beyond bigint are refused by the CLI before anything runs (exit 2), like 0."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from noctis.cli import app

runner = CliRunner()
TOO_BIG = str(2**63)


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--imagery-finder-pk", TOO_BIG, "--dream-pk", "1"],
        ["plan", "--imagery-finder-pk", "1", "--dream-pk", TOO_BIG],
        ["study", "close", "--imagery-finder-pk", TOO_BIG, "--dream-pk", "1"],
        ["outbox", "requeue", "--id", TOO_BIG],
        ["outbox", "requeue", "--id", "-3"],
    ],
    ids=["run", "plan", "close", "requeue", "requeue-negative"],
)
def test_an_id_outside_bigint_is_refused_before_running(args: list[str]) -> None:
    outcome = runner.invoke(app, args)
    assert outcome.exit_code == 2, outcome.output
