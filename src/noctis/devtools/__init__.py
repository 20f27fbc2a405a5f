"""Noctis' tooling, not the product: the demo, the synthetic archive, throwaway PostGIS
clusters, maps and the reference formulation of the match rule.

The product never imports this package, except the CLI's ``demo`` command, lazily
(import-linter checks it in CI).
"""
