"""Moved to :mod:`noctis.devtools.maps`."""

# TEMPORARY shim, removed at merge: demo.py still imports it on this branch.
from noctis.devtools.maps import draw as draw
