"""A gallery of thousands of images made in seconds, for tests at scale.

One small PNG and its thumbnail are written once and copied under each id; the rows go in
through one transaction. Every file is real and every row is what ``ImageStore`` writes, so the
app opens the folder as it would a gallery grown by hand.

Usage: ``ids = fill(data_dir, 10_000)`` (newest last)
"""

from __future__ import annotations

import io
import shutil
import time
from pathlib import Path

from PIL import Image

from imgedit import imaging
from imgedit.models import ImageOrigin, new_image_id
from imgedit.storage import ImageStore


def fill(data_dir: Path, count: int, *, prompt_every: int = 0, start: float | None = None) -> list[str]:
    """Add ``count`` uploads named ``scale-00000.png`` ... one second apart, ending now; every
    ``prompt_every``-th image (if set) is an edit with the prompt "make it blue"."""
    store = ImageStore(data_dir)
    store.open()
    try:
        picture = Image.new("RGB", (32, 24), "teal")
        buffer = io.BytesIO()
        picture.save(buffer, "PNG")
        png = buffer.getvalue()
        thumb = imaging.thumbnail(png)
        first = (time.time() - count) if start is None else start
        model_png, model_thumb = data_dir / "model.png", data_dir / "model.webp"
        model_png.write_bytes(png)
        model_thumb.write_bytes(thumb)
        ids: list[str] = []
        statements = []
        for i in range(count):
            image_id = new_image_id()
            ids.append(image_id)
            edit = bool(prompt_every) and i % prompt_every == 0
            shutil.copyfile(model_png, store.images_dir / f"{image_id}.png")
            shutil.copyfile(model_thumb, store.thumbs_dir / f"{image_id}.webp")
            statements.append(
                (
                    "INSERT INTO images (id, created_at, origin, width, height, format, name, prompt) "
                    "VALUES (?, ?, ?, 32, 24, 'PNG', ?, ?)",
                    (
                        image_id,
                        first + i,
                        (ImageOrigin.EDIT if edit else ImageOrigin.UPLOAD).value,
                        "" if edit else f"scale-{i:05d}.png",
                        "make it blue" if edit else None,
                    ),
                )
            )
        store.db.execute_many(statements)
        model_png.unlink()
        model_thumb.unlink()
        return ids
    finally:
        store.close()
