"""Tooling around Noctis, not the product: nothing in ``noctis`` imports it, except the
CLI's ``demo`` command, lazily (import-linter checks it in CI).

- :mod:`.demo`: ``noctis demo``, the whole job on a throwaway PostGIS;
- :mod:`.synthetic`: a deterministic synthetic archive (cities, tile grid, scenes, COPY loader,
  AOIs) for the demo, the benchmarks and the tests;
- :mod:`.localdb`: throwaway PostGIS clusters from the local binaries, and ``free_port``;
- :mod:`.reference`: the match rule written a second time, independently of the
  repositories, to check the recorded rows against;
- :mod:`.maps`: the demo's PNG map.
"""
