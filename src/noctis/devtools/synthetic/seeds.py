"""Random streams: every draw comes from a generator keyed by ``(seed, stream, ...)``.

Keying the streams (rather than drawing in sequence from one generator) keeps
each part of the archive independent of the others: the blocks of rows
(``BLOCK``, per block number) do not depend on how many tiles were shuffled
before them, nor on ``batch_size``.
"""

from __future__ import annotations

import numpy as np

# The second word of every seed's spawn key.
TILES, SENTINEL, COMMERCIAL, BLOCK, COUNTRY = range(5)


def rng(seed: int, *key: int) -> np.random.Generator:
    """The generator of stream ``key`` under ``seed`` (PCG64)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))
