"""Hardening of the gallery as users and hostile testers meet it (issue 6): odd text, one bad
card, huge and refused uploads, double submits, failures that must be seen, stale previews."""

from __future__ import annotations

import asyncio
import io
import logging
import tracemalloc
from pathlib import Path

import pytest
from nicegui import ui
from nicegui.elements.upload_files import LargeFileUpload, SmallFileUpload
from nicegui.testing import User
from PIL import Image

from imgedit import imaging
from imgedit.errors import ProviderRejected
from imgedit.jobs import JobStage
from imgedit.models import ImageOrigin, ImageRecord, JobKind, Quality
from imgedit.providers.base import Capabilities, ProgressSink, ProviderRequest, ProviderResult
from tests.conftest import app_services
from tests.fakes import eventually
from tests.test_gallery_ui import image_cards, loading_cards, marked, open_dialogs, start_edit

ODD_PROMPTS = {
    "hex escape": "a red circle C:\\x1",
    "unicode escape": "a blue star \\u12",
    "long unicode escape": "green waves \\U0001F",
    "named escape": "a sun \\N{oops}",
    "quotes": "a \"quoted\" 'moon' \\",
    "nul": "a grid\x00 of dots",
}


def thumb_alts(user: User) -> dict[str, str]:
    """Image id → the alt text of its thumbnail, as the browser gets it."""
    alts = {}
    for card in image_cards(user):
        image_id = next(m for m in card._markers if m.startswith("image-") and m != "image-card")[6:]
        img = next(e for e in card.descendants() if e.tag == "img")
        alts[image_id] = img.props["alt"]
    return alts


@pytest.mark.parametrize("prompt", ODD_PROMPTS.values(), ids=ODD_PROMPTS.keys())
async def test_odd_text_in_a_prompt_never_takes_the_gallery_down(create_user, prompt: str) -> None:  # type: ignore[no-untyped-def]
    first: User = create_user()
    await first.open("/")
    services = app_services()
    job_id = services.studio.submit_generate(prompt, Quality.LOW, "local", (64, 48))
    final = await services.registry.wait(job_id)
    assert final.stage is JobStage.COMPLETED, final.error
    record = services.store.get(final.result_image_id)
    assert "\x00" not in record.title, "control characters are stripped at submit"

    # The tab that was open shows the new card on its tick, with the text as typed ...
    await eventually(lambda: record.id in thumb_alts(first), message="the new card in the open tab")
    assert thumb_alts(first)[record.id] == record.title
    # ... and a fresh load of the page still works, for anyone.
    second: User = create_user()
    await second.open("/")
    assert thumb_alts(second)[record.id] == record.title
    await second.should_see(record.title)


async def test_a_file_name_with_a_nul_and_escapes_uploads_and_shows(create_user) -> None:  # type: ignore[no-untyped-def]
    first: User = create_user()
    await first.open("/")
    services = app_services()
    upload = first.find(marker="upload").elements.pop()
    await upload.handle_uploads(
        [SmallFileUpload(name="C:\\x1\x00 \\N{x}.png", content_type="image/png", _data=png_bytes())]
    )
    await eventually(lambda: services.store.list()[0].origin is ImageOrigin.UPLOAD, message="the upload")
    await eventually(lambda: services.store.list()[0].id in thumb_alts(first), message="its card")
    record = services.store.list()[0]
    assert "\x00" not in record.title
    second: User = create_user()
    await second.open("/")
    assert thumb_alts(second)[record.id] == record.title


async def test_one_card_that_cannot_be_built_does_not_stop_the_others(
    user: User, caplog: pytest.LogCaptureFixture
) -> None:
    await user.open("/")
    services = app_services()
    store = services.store
    # A row no card can be drawn for (an origin this version does not know), then a good upload.
    bad = ImageRecord(
        id=store.list()[0].id[:-4] + "beef",
        created_at=1e12,
        origin="mystery",
        width=1,
        height=1,  # type: ignore[arg-type]
        format="PNG",
    )
    store._show(bad)  # as if the store had loaded it
    good, _note = await store.add_upload(png_bytes(), name="good.png")

    timer = user.find(ui.timer).elements.pop()
    timer.callback()
    ids = set(thumb_alts(user))
    assert good.id in ids, "the good card arrives although another one failed"
    assert bad.id not in ids
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and bad.id in errors[0].getMessage()

    # The failed sync is tried again on the next ticks (the version was not taken as seen) and
    # logged once, not every second.
    timer.callback()
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1
    store._hide(bad)
    timer.callback()
    assert good.id in thumb_alts(user)
    caplog.clear()


def png_bytes(size: tuple[int, int] = (40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, "PNG")
    return buffer.getvalue()


async def test_an_upload_over_the_limit_is_refused_before_it_is_read(
    user: User, data_dir: Path, tmp_path: Path
) -> None:
    await user.open("/")
    services = app_services()
    before = len(services.store)
    upload = user.find(marker="upload").elements.pop()
    assert upload.props["max-file-size"] == imaging.MAX_UPLOAD_BYTES, "the browser refuses it first"
    # A hostile client skips the browser: a file over the limit arrives at the server anyway.
    huge = tmp_path / "huge.png"
    with huge.open("wb") as handle:
        handle.truncate(imaging.MAX_UPLOAD_BYTES + 10 * 1024 * 1024)  # sparse: costs no disk

    tracemalloc.start()
    try:
        await upload.handle_uploads([LargeFileUpload(name="huge.png", content_type="image/png", _path=huge)])
        await eventually(lambda: user.notify.contains("“huge.png” is larger than 50 MB. Nothing was added."))
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert peak < 8 * 1024 * 1024, f"{peak / 1e6:.0f} MB were allocated for a refused upload"
    assert len(services.store) == before
    assert len(list((data_dir / "images").iterdir())) == before


async def test_every_refused_file_is_named_with_its_reason_and_the_strip_tells_the_outcome(
    user: User, data_dir: Path
) -> None:
    await user.open("/")
    services = app_services()
    before = len(services.store)
    upload = user.find(marker="upload").elements.pop()
    await upload.handle_uploads(
        [
            SmallFileUpload(name="red.png", content_type="image/png", _data=png_bytes()),
            SmallFileUpload(name="notes.txt", content_type="text/plain", _data=b"hello"),
        ]
    )
    await eventually(lambda: any("“notes.txt”" in m for m in user.notify.messages), message="the refusal")
    assert len(services.store) == before + 1
    assert user.notify.contains("Added “red.png” to the gallery.")
    assert any("“notes.txt”" in m and "Nothing was added" in m for m in user.notify.messages)
    status = marked(user, "upload-status")[0]
    assert "Added 1." in status.text and "notes.txt" in status.text

    # Files the browser itself refused (type or size) come as a "rejected" event: each is named.
    user.find(marker="upload").trigger(
        "rejected",
        [{"name": "movie.mp4", "reason": "accept"}, {"name": "big.tif", "reason": "max-file-size"}],
    )
    await eventually(lambda: user.notify.contains("“movie.mp4” is not an image. Nothing was added."))
    assert user.notify.contains("“big.tif” is larger than 50 MB. Nothing was added.")
    assert "movie.mp4" in status.text and "big.tif" in status.text
    assert len(services.store) == before + 1


async def test_double_click_and_double_enter_make_one_job_each(user: User) -> None:
    await user.open("/")
    services = app_services()
    source = services.store.list()[0]
    submitted: list[str] = []
    original = services.registry.submit

    def counting_submit(spec, work=None, **kwargs):  # type: ignore[no-untyped-def]
        submitted.append(spec.prompt)
        return original(spec, work, **kwargs)

    services.registry.submit = counting_submit
    await start_edit(user, source.id, "sepia")
    user.find("Start Edit").click()  # the second click of a double click
    assert submitted == ["sepia"]

    user.find(marker=f"image-{source.id}").click()
    user.find(marker="edit").click()
    user.find(marker="prompt").type("invert")
    user.find(marker="prompt").trigger("keydown.enter")
    user.find(marker="prompt").trigger("keydown.enter")
    assert submitted == ["sepia", "invert"]
    assert open_dialogs(user) == []

    # A new open of the dialog takes a new job again.
    await start_edit(user, source.id, "mirror")
    assert submitted == ["sepia", "invert", "mirror"]


def failure_toasts(user: User) -> list[ui.notification]:
    return [e for e in marked(user, "failure-toast") if isinstance(e, ui.notification)]


async def test_a_failure_gets_a_toast_with_the_reason_and_retry(create_user) -> None:  # type: ignore[no-untyped-def]
    first: User = create_user()
    await first.open("/")
    second: User = create_user()
    await second.open("/")
    services = app_services()
    source = services.store.list()[0]
    await start_edit(first, source.id, "make it wobbly")

    for tab in (first, second):  # every open tab hears of it, wherever the card is
        await eventually(lambda tab=tab: failure_toasts(tab), message="the failure toast")
        toast = failure_toasts(tab)[0]
        assert "Edit failed: “make it wobbly”" in toast.message
        assert "I don't understand" in toast.message and len(toast.message) < 300, (
            "short; the card has it all"
        )
        assert [a["label"] for a in toast.props["options"]["actions"]] == ["Retry", "Dismiss"]

    # Retry from the toast runs the job again (and fails again here, with another toast).
    jobs_before = {s.id for s in services.registry.snapshots()}
    first.find(marker="failure-toast").trigger("retry")
    first.find("Start Edit").click()  # Retry opens the form filled in; confirmed as it is
    await eventually(lambda: {s.id for s in services.registry.snapshots()} - jobs_before, message="a new job")
    # Reloading the page does not repeat old news.
    third: User = create_user()
    await third.open("/")
    await asyncio.sleep(0)
    assert failure_toasts(third) == []


class PreviewThenFail:
    """Sends a live preview, then refuses: the card of a failed job that once had a preview."""

    name = "preview-fail"
    label = "Preview then fail"
    capabilities = Capabilities(edit=True, generate=True, stream_previews=True)

    def expected_seconds(self, kind: JobKind, quality: Quality) -> float:
        return 2.0

    def describe(self, kind: JobKind) -> str:
        return "Shows a preview, then fails."

    async def edit(self, request: ProviderRequest, sink: ProgressSink) -> ProviderResult:
        return await self.generate(request, sink)

    async def generate(self, request: ProviderRequest, sink: ProgressSink) -> ProviderResult:
        sink.preview(png_bytes((8, 8)))
        raise ProviderRejected("The server refused the prompt.")


async def test_a_failed_card_shows_no_broken_preview_in_a_new_tab(create_user) -> None:  # type: ignore[no-untyped-def]
    first: User = create_user()
    await first.open("/")
    services = app_services()
    services.providers.add(PreviewThenFail())
    job_id = services.studio.submit_generate("a moon", Quality.LOW, "preview-fail")
    final = await services.registry.wait(job_id)
    assert final.stage is JobStage.FAILED and final.preview_version == 1

    second: User = create_user()
    await second.open("/")
    card = next(c for c in loading_cards(second) if f"job-{job_id}" in c._markers)
    previews = [e for e in card.descendants() if "imgedit-preview" in e.classes]
    assert previews and all(not p.visible and "src" not in p.props for p in previews)
    await second.should_see("The server refused the prompt.")
