"""Prefect flows. Importing a flow module connects to nothing."""
