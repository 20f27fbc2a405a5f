"""Moved to :mod:`noctis.devtools.localdb`."""

# TEMPORARY shim, removed at merge: demo.py still imports it on this branch.
from noctis.devtools.localdb import INSTALL_HINT, LocalPostgis, LocalPostgisUnavailable, free_port

__all__ = ["INSTALL_HINT", "LocalPostgis", "LocalPostgisUnavailable", "free_port"]
