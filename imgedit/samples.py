"""Sample pictures that seed an empty gallery, drawn offline by the local engine.

Owns ``SAMPLE_PROMPTS`` and ``render_sample``. Pure and synchronous; no network, no files.
Must not import nicegui or anything under ``imgedit.ui``.
"""

from __future__ import annotations

import functools
import io

from imgedit.models import Quality

SAMPLE_SIZE = (768, 512)

SAMPLE_PROMPTS: tuple[str, ...] = (
    "sunset over mountains with a big sun",
    "ocean waves under the moon at night",
    "pink and purple circles on a navy background",
    "yellow stars on a dark blue radial gradient",
    "teal and orange stripes",
    "forest mountains under a big moon",
    "coral dots on a teal background with a white triangle",
    "three big orange squares on a pastel background",
)


@functools.lru_cache(maxsize=len(SAMPLE_PROMPTS))
def render_sample(prompt: str) -> bytes:
    """PNG bytes of ``prompt`` at ``SAMPLE_SIZE``; fast enough to render every sample at start-up.

    Kept once drawn (bytes are immutable): a process that seeds several data dirs, like the
    test suite, draws each sample once."""
    from imgedit.providers.local_draw import draw_from_prompt  # only an empty gallery needs it

    image = draw_from_prompt(
        prompt,
        SAMPLE_SIZE,
        quality=Quality.MEDIUM,
        on_progress=lambda _fraction, _message: None,
        should_stop=lambda: False,
    )
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()
