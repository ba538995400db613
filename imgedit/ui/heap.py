"""Keep Python's full garbage collections out of the 1-second tick: ``freeze_startup_heap``.

A full (oldest-generation) collection walks every tracked object. Once NiceGUI, FastAPI, the
app's pages and the gallery's records are loaded that is a few hundred thousand objects, and a
collection that lands in a tick made it take ~90 ms instead of ~3 (``bench/tick.py``, the
"stage" scenario's maximum). Objects alive at the end of start-up live as long as the process,
so ``gc.freeze()`` moves them out of the collector's sight: later collections walk only what
was made since (cards, snapshots, requests), and still free it. Must not import nicegui.

Wire it as the last start-up hook of the real server, not under NiceGUI's user simulation
(there a process runs many apps one after another, and what one froze would never be freed)::

    if not simulated:
        app.on_startup(heap.freeze_startup_heap)
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)


def freeze_startup_heap() -> int:
    """Collect what start-up left as garbage, then freeze everything still alive; the number of
    objects frozen. Call once start-up is done (calling again freezes what was made since)."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.debug("froze %d start-up objects out of the garbage collector's full collections", frozen)
    return frozen
