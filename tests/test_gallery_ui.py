"""The gallery as a user drives it, through NiceGUI's simulated user (no browser)."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import pytest
from nicegui import app, ui
from nicegui.elements.upload_files import SmallFileUpload
from nicegui.testing import User
from PIL import Image

from tests.conftest import app_services
from tests.fakes import GatedProvider, eventually


def marked(user: User, marker: str) -> list[ui.element]:
    """Elements with ``marker`` on the user's page; unlike ``user.find``, none is an answer too."""
    assert user.client is not None
    return [e for e in user.client.elements.values() if marker in e._markers]


def image_cards(user: User) -> list[ui.element]:
    return marked(user, "image-card")


def loading_cards(user: User) -> list[ui.element]:
    return [c for c in marked(user, "loading-card") if c.visible]


def open_dialogs(user: User) -> list[ui.dialog]:
    return [d for d in user.find(ui.dialog).elements if d.value]


async def start_edit(user: User, image_id: str, prompt: str, provider_label: str | None = None) -> None:
    user.find(marker=f"image-{image_id}").click()
    user.find(marker="edit").click()
    user.find(marker="prompt").type(prompt)
    if provider_label:
        user.find(marker="provider").click()
        user.find(provider_label).click()
    user.find("Start Edit").click()


def files_in(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


async def test_first_start_fills_the_gallery_with_samples(user: User, data_dir: Path) -> None:
    await user.open("/")
    cards = image_cards(user)
    assert len(cards) >= 6
    assert len(files_in(data_dir / "thumbs")) == len(cards)
    await user.should_see("Local engine (offline)")


async def test_start_edit_closes_dialog_shows_loading_card_and_adds_result(user: User) -> None:
    await user.open("/")
    services = app_services()
    before = len(image_cards(user))
    source = services.store.list()[0]

    await start_edit(user, source.id, "make it sepia and add a vignette")

    assert open_dialogs(user) == [], "the dialog closes at once"
    cards = loading_cards(user)
    assert len(cards) == 1, "the loading card is there before the job has even started"
    card = cards[0]
    assert "imgedit-loading-card" in card.classes
    assert any("imgedit-progress" in child.classes for child in card.descendants())
    assert any("imgedit-cancel" in child.classes for child in card.descendants())

    await eventually(lambda: len(image_cards(user)) == before + 1, message="the result card")
    await eventually(lambda: loading_cards(user) == [], message="the loading card to go")
    assert user.notify.contains("Edit finished: “make it sepia and add a vignette”")
    result = services.store.list()[0]
    assert result.parent_id == source.id
    assert result.prompt == "make it sepia and add a vignette"
    assert source.id in services.store, "the original stays"


async def test_two_parallel_edits_both_complete(user: User) -> None:
    await user.open("/")
    services = app_services()
    first, second = services.store.list()[:2]
    before = len(image_cards(user))

    await start_edit(user, first.id, "grayscale")
    await start_edit(user, second.id, "invert and blur 3")

    assert len(loading_cards(user)) == 2
    await eventually(lambda: len(image_cards(user)) == before + 2, message="both results")
    parents = {r.parent_id for r in services.store.list()[:2]}
    assert parents == {first.id, second.id}
    assert user.notify.contains("Edit finished: “grayscale”")
    assert user.notify.contains("Edit finished: “invert and blur 3”")


async def test_cancel_while_processing_removes_card_and_adds_nothing(user: User, data_dir: Path) -> None:
    await user.open("/")
    services = app_services()
    gated = GatedProvider()
    services.providers.add(gated)
    before_files = files_in(data_dir / "images")
    before = len(image_cards(user))

    await start_edit(user, services.store.list()[0].id, "anything", provider_label="Gated test engine")
    await eventually(gated.started.is_set, message="the provider to start")
    await user.should_see("Processing", retries=30)
    user.find(marker="cancel").click()

    assert loading_cards(user) == [], "the card goes away at once"
    (snapshot,) = services.registry.snapshots()
    final = await services.registry.wait(snapshot.id)
    assert final.stage == "cancelled"
    gated.gate.set()  # even if the provider finished now, nothing may land
    assert files_in(data_dir / "images") == before_files
    assert len(image_cards(user)) == before
    assert user.notify.contains("Cancelled. Nothing was added to the gallery.")


async def test_unknown_prompt_fails_with_what_the_engine_understands(user: User) -> None:
    await user.open("/")
    services = app_services()
    before = len(services.store)

    await start_edit(user, services.store.list()[0].id, "add glitter")

    await user.should_see("Failed", retries=50)
    await user.should_see("sepia", marker="loading-card")
    assert len(services.store) == before
    user.find(marker="dismiss").click()
    await eventually(lambda: loading_cards(user) == [], message="the failed card to go")
    assert services.registry.snapshots() == []


async def test_retry_runs_a_failed_job_again(user: User) -> None:
    await user.open("/")
    services = app_services()
    await start_edit(user, services.store.list()[0].id, "add glitter")
    await user.should_see("Retry", retries=50)
    user.find(marker="retry").click()
    user.find("Start Edit").click()  # Retry opens the form filled in; confirmed as it is
    await user.should_see("Failed (attempt 2)", retries=50)


async def test_empty_prompt_keeps_dialog_open_with_a_message(user: User) -> None:
    await user.open("/")
    services = app_services()
    await start_edit(user, services.store.list()[0].id, "   ")
    assert len(open_dialogs(user)) == 1
    prompt = user.find(marker="prompt").elements.pop()
    assert prompt.props.get("error") is True
    assert "Describe what to change" in prompt.props["error-message"]
    assert services.registry.snapshots() == []


async def test_new_image_generates_from_a_prompt(user: User) -> None:
    await user.open("/")
    services = app_services()
    before = len(image_cards(user))
    user.find(marker="new-image").click()
    user.find(marker="prompt").type("a red circle on a blue background")
    user.find("Generate").click()
    assert open_dialogs(user) == []
    assert len(loading_cards(user)) == 1
    await eventually(lambda: len(image_cards(user)) == before + 1, message="the generated image")
    newest = services.store.list()[0]
    assert newest.origin == "generate" and newest.prompt == "a red circle on a blue background"


async def test_upload_adds_images_and_refuses_non_images(user: User, data_dir: Path) -> None:
    await user.open("/")
    services = app_services()
    before = len(services.store)
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(buffer, "PNG")
    upload = user.find(marker="upload").elements.pop()

    await upload.handle_uploads(
        [
            SmallFileUpload(name="red.png", content_type="image/png", _data=buffer.getvalue()),
            SmallFileUpload(name="notes.txt", content_type="text/plain", _data=b"hello"),
        ]
    )

    await eventually(lambda: len(services.store) == before + 1, message="the upload")
    await eventually(
        lambda: user.notify.contains("“notes.txt” is a text file, not an image."), message="error"
    )
    assert services.store.list()[0].name == "red.png"
    await user.should_see("red.png")
    assert len(files_in(data_dir / "images")) == before + 1


async def test_delete_asks_first_then_removes_image_and_file(user: User, data_dir: Path) -> None:
    await user.open("/")
    services = app_services()
    victim = services.store.list()[0]
    before = len(image_cards(user))
    user.find(marker=f"image-{victim.id}").click()
    user.find("Delete").click()
    await user.should_see(f"Delete “{victim.title}”?")
    user.find(marker="confirm-delete").click()
    await eventually(lambda: len(image_cards(user)) == before - 1, message="the card to go")
    assert victim.id not in services.store
    assert not any(name.startswith(victim.id) for name in files_in(data_dir / "images"))


async def test_two_tabs_see_the_same_jobs_and_gallery(create_user) -> None:  # type: ignore[no-untyped-def]
    alice, bob = create_user(), create_user()
    await alice.open("/")
    await bob.open("/")
    services = app_services()
    gated = GatedProvider()
    services.providers.add(gated)
    before = len(image_cards(bob))

    await start_edit(alice, services.store.list()[0].id, "anything", provider_label="Gated test engine")
    await eventually(lambda: len(loading_cards(bob)) == 1, message="bob to see alice's job")
    gated.gate.set()
    await eventually(lambda: len(image_cards(bob)) == before + 1, message="bob to see the result")
    assert bob.notify.contains("Edit finished: “anything”")


@pytest.fixture
def one_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start the app with --max-concurrent 1 (requested before ``user``, which runs main.py)."""
    monkeypatch.setenv("IMGEDIT_MAX_CONCURRENT", "1")


async def test_queued_job_shows_its_position_and_starts_when_a_slot_frees(one_slot: None, user: User) -> None:
    await user.open("/")
    services = app_services()
    gated = GatedProvider()
    services.providers.add(gated)
    first, second = services.store.list()[:2]

    await start_edit(user, first.id, "first", provider_label="Gated test engine")
    await start_edit(user, second.id, "second", provider_label="Gated test engine")

    await user.should_see("Queued (position 1)", retries=30)
    await user.should_see("1 running · 1 queued", retries=30)
    gated.gate.set()
    await eventually(lambda: gated.calls == 2, message="the queued job to start")
    await eventually(lambda: loading_cards(user) == [], message="both to finish")


async def test_enter_submits_and_the_result_names_its_origin(user: User) -> None:
    await user.open("/")
    services = app_services()
    source = services.store.list()[0]
    user.find(marker=f"image-{source.id}").click()
    user.find(marker="edit").click()
    user.find(marker="prompt").type("mirror").trigger("keydown.enter")
    assert open_dialogs(user) == []
    await eventually(lambda: services.store.list()[0].prompt == "mirror", message="the mirrored result")
    await user.should_see(f"Edit of “{source.title}”: “mirror”", retries=30)


async def test_view_shows_the_full_image_and_download_serves_the_file(user: User) -> None:
    await user.open("/")
    services = app_services()
    image = services.store.list()[0]
    user.find(marker=f"image-{image.id}").click()
    user.find("View").click()
    viewer = next(e for e in user.client.elements.values() if e.props.get("alt") == "full size")
    assert viewer.props["src"] == f"/media/images/{image.id}"

    user.find("Download").click()
    response = await user.download.next(timeout=5)
    assert response.status_code == 200
    assert response.content == await services.store.read_bytes(image.id)
    assert "attachment" in response.headers["content-disposition"]
    assert response.headers["content-disposition"].endswith(f'.{image.extension}"')


async def test_media_routes_serve_by_id_only(user: User) -> None:
    await user.open("/")
    services = app_services()
    image = services.store.list()[0]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client:
        full = await client.get(f"/media/images/{image.id}")
        thumb = await client.get(f"/media/thumbs/{image.id}")
        assert full.status_code == 200 and full.headers["content-type"] == image.media_type
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/webp"
        for bad in ("../imgedit.sqlite3", "..%2Fimgedit.sqlite3", "0" * 32, "not-an-id", image.id + ".png"):
            assert (await client.get(f"/media/images/{bad}")).status_code == 404, bad


async def test_without_keys_only_the_local_engine_is_offered(user: User) -> None:
    await user.open("/")
    services = app_services()
    assert [p.name for p in services.providers.all()] == ["local"]
    user.find(marker="new-image").click()
    select = user.find(marker="provider").elements.pop()
    assert select.options == {"local": "Local engine (offline)"}


def _png(seed: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 24), (seed % 256, (seed * 7) % 256, (seed * 13) % 256)).save(out, "PNG")
    return out.getvalue()


def shown_ids(user: User) -> list[str]:
    """The image ids of the gallery's cards in page order (top left first)."""
    assert user.client is not None
    box = next(e for e in user.client.elements.values() if "imgedit-images-box" in e.classes)
    return [
        next(m.removeprefix("card-") for m in card._markers if m.startswith("card-"))
        for card in box.default_slot.children
    ]


async def test_a_big_gallery_shows_one_page_first_then_more_on_request(user: User) -> None:
    from imgedit.models import ImageOrigin
    from imgedit.ui.image_grid import PAGE_SIZE

    await user.open("/")
    services = app_services()
    for i in range(PAGE_SIZE + 10):
        services.store.add_sync(_png(i), origin=ImageOrigin.UPLOAD, name=f"many-{i:03d}.png")
    total = len(services.store)
    await user.open("/")  # a fresh page load of the big gallery
    newest = [r.id for r in services.store.list()]
    assert shown_ids(user) == newest[:PAGE_SIZE]  # one page, newest first, not the whole gallery
    await user.should_see(f"Show more ({total - PAGE_SIZE} older)")

    # a deleted card's place is filled from the next older image
    await services.store.delete(newest[3])
    await eventually(
        lambda: shown_ids(user) == [i for i in newest[: PAGE_SIZE + 1] if i != newest[3]],
        message="the next older image to fill in at the end",
    )

    # a new image goes on top and pushes nothing out
    fresh = services.store.add_sync(_png(999), origin=ImageOrigin.UPLOAD, name="fresh.png")
    await eventually(lambda: shown_ids(user)[:1] == [fresh.id], message="the new card on top")
    assert len(shown_ids(user)) == PAGE_SIZE + 1

    # more arrivals than a page between two ticks: all of them show, on top, in order
    burst = [
        services.store.add_sync(_png(1000 + i), origin=ImageOrigin.UPLOAD, name=f"burst-{i}.png").id
        for i in range(PAGE_SIZE + 5)
    ]
    await eventually(lambda: len(shown_ids(user)) == 2 * PAGE_SIZE + 6, message="every new card")
    assert shown_ids(user)[: len(burst)] == burst[::-1]

    user.find(marker="show-more").click()
    await eventually(
        lambda: shown_ids(user) == [r.id for r in services.store.list()], message="every image, in order"
    )
    assert not marked(user, "show-more")[0].visible
