"""URLs the browser loads directly (img src, links, stylesheets), under the server's path prefix.

Behind a reverse proxy that serves imgedit under ``--root-path /imgedit``, an ``<img src>`` of
``/media/thumbs/x`` would miss it; every such URL is made here. NiceGUI prefixes by itself what
it navigates to or downloads (``ui.navigate.to``, ``ui.download``): give those the bare path.

Usage: ``urls.configure(settings.root_path)`` once; ``urls.thumb(image_id)`` in the pages.
"""

from __future__ import annotations

_prefix = ""


def configure(root_path: str) -> None:
    global _prefix
    _prefix = root_path.rstrip("/")


def prefixed(path: str) -> str:
    """``path`` (starting with ``/``) as the browser must request it."""
    return f"{_prefix}{path}"


def image(image_id: str) -> str:
    return prefixed(f"/media/images/{image_id}")


def thumb(image_id: str) -> str:
    return prefixed(f"/media/thumbs/{image_id}")


def preview(job_id: str, version: int) -> str:
    return prefixed(f"/media/previews/{job_id}?v={version}")


DOWNLOAD_PATH = "/media/download/{}"
"""For ``ui.download.from_url`` (which adds the prefix itself)."""
