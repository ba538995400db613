"""Keep Python's garbage collector out of the 1-second tick's way: ``after_startup``.

A full (oldest-generation) collection walks every tracked object. Once NiceGUI, FastAPI, the
app's pages and the gallery's records are loaded that is over a hundred thousand objects, and a
full collection that landed in a tick made it take ~80 ms instead of ~3 (``bench/tick.py``, the
"stage" scenario's maximum). Two changes, measured there:

- objects alive at the end of start-up live as long as the process, so ``gc.freeze()`` moves
  them out of the collector's sight: later collections walk only what was made since (cards,
  snapshots, requests) and still free it (a full collection then took ~30 ms with 100 live
  cards in a tab, not ~80);
- the youngest generation is collected after 3,000 net allocations instead of 700, and the
  middle one after 5 young collections instead of 10: a tick that keeps a hundred snapshots, or
  a burst of jobs writing their journal rows, sets off fewer collections, each of them short
  (in the 50 "stage" ticks, the heap frozen: ~150 collections with Python's thresholds, one or
  two of them full at ~27 ms; 33 with these, the longest 2 ms, none full). Bigger young
  generations were worse: at 10,000 a middle collection took ~20 ms.

Wire it as the last start-up hook of the real server, not under NiceGUI's user simulation
(there one process runs many apps one after another, and what one froze would never be freed)::

    if not simulated:
        app.on_startup(heap.after_startup)

Must not import nicegui.
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)

YOUNG_THRESHOLD = 3_000
"""Net allocations between two collections of the youngest generation (Python's default: 700)."""
MIDDLE_THRESHOLD = 5
"""Young collections between two collections of the middle generation (Python's default: 10)."""


def after_startup() -> int:
    """Freeze everything alive, and set the collector's thresholds (above); the number of
    objects frozen. Call once start-up is done (calling again freezes what was made since).

    No collection first: with 10,000 images loaded one took ~45 ms of start-up (P6) and freed
    nothing (start-up leaves its garbage to reference counting, not to cycles)."""
    gc.freeze()
    old = gc.get_threshold()[2]
    gc.set_threshold(YOUNG_THRESHOLD, MIDDLE_THRESHOLD, old)
    frozen = gc.get_freeze_count()
    log.debug("froze %d start-up objects; collections at %s", frozen, gc.get_threshold())
    return frozen
