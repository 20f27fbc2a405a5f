"""The outbox's chaos run: real processes, faults at random points, every notice checked.

``python -m tests.chaos --studies 200`` runs it at full size (docs/reliability.md records the
figure); ``tests/e2e/test_chaos_outbox.py`` runs it reduced in the suite. The pieces:
``stack`` (PostGIS, a Prefect server on PostgreSQL, ``noctis``' deployments, a process worker,
the loopback Augur), ``faults`` (the driver), ``check`` (what must hold at the end).
"""
