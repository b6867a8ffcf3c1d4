"""Garbage-collector settings for a Porte-Voix process.

Every service keeps many objects alive for a long time (scoring's state cache and batches in
flight, moderation's history, ingest's directory, the API's schemas) and allocates many more per
batch that survive a little while. With CPython's defaults (a young collection every 700 net
allocations, a middle one every 10 young ones) the collector runs constantly, promotes those
objects and rescans them. Measured on scoring's awards workload (50,000 events, CPU time inside
the collector from `gc.callbacks`): 0.36–0.60 s with a young threshold of 10,000, 0.07 s with
100,000, out of about 4 s; a young generation of 100,000 objects is a few MB. Older generations
keep their defaults, so cycles are still collected.

`settle_gc` is for the moment a service is up: what it allocated until then (modules, schemas,
tables, models) lives as long as the process and is moved out of the collector's reach, so a
full collection does not walk it again (each ~25 ms in ingest otherwise).
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 100_000
# Scoring holds two script batches in flight, each with its events, effects and states: at
# 100,000 a young collection still came every ~20,000 awards and walked that working set (about
# 30 ms each: 0.09 s of CPU per 50,000 awards, ~1.5 µs per award); at 400,000, 0.01 s.
SCORING_YOUNG_THRESHOLD = 400_000


def tune_gc(young: int = YOUNG_THRESHOLD) -> None:
    """Raise the youngest generation's threshold (never lowers a larger one set elsewhere)."""
    current, middle, old = gc.get_threshold()
    gc.set_threshold(max(current, young), middle, old)


def settle_gc(young: int = YOUNG_THRESHOLD) -> None:
    """Tune the collector and freeze what the process allocated while starting."""
    tune_gc(young)
    gc.collect()
    gc.freeze()
