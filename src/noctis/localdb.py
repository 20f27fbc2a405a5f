"""Moved to :mod:`noctis.devtools.localdb`."""

# TEMPORARY shim, removed at merge: demo.py still imports it on this branch.
# ruff: noqa: I001  (one import of explicit re-exports, `X as X` for mypy --strict)
from noctis.devtools.localdb import (
    INSTALL_HINT as INSTALL_HINT,
    LocalPostgis as LocalPostgis,
    LocalPostgisUnavailable as LocalPostgisUnavailable,
    free_port as free_port,
)
