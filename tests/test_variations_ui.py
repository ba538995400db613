"""Variations through NiceGUI's simulated user: the dialog asks for n results, the card shows n
slots filling as each result lands in the gallery, the results sit together and the image
dialog switches between them. Retry keeps the number."""

from __future__ import annotations

from nicegui import ui
from nicegui.testing import User

from imgedit.jobs import JobStage
from imgedit.models import Quality
from tests.conftest import app_services
from tests.fakes import eventually
from tests.test_gallery_ui import image_cards, loading_cards, marked, open_dialogs
from tests.test_retry_dialog import RefusingProvider, click, field
from tests.test_variations import SteppingProvider


def slots(user: User) -> list[ui.element]:
    return marked(user, "variation-slot")


def filled(user: User) -> list[bool]:
    return [slot.props.get("data-filled") == "true" for slot in slots(user)]


async def test_three_variations_fill_their_slots_as_they_land(user: User) -> None:
    await user.open("/")
    services = app_services()
    provider = SteppingProvider()
    services.providers.add(provider)
    before = len(services.store)

    user.find(marker="new-image").click()
    user.find(marker="prompt").type("three moons")
    user.find(marker="provider").click()
    user.find("Stepping engine").click()
    user.find(marker="variations").click()
    user.find("3 images").click()
    user.find("Generate").click()

    assert open_dialogs(user) == []
    (job,) = services.registry.snapshots()
    assert job.spec.variations == 3
    await eventually(lambda: len(slots(user)) == 3, message="a card with three slots")
    assert filled(user) == [False, False, False]
    assert [s.props["aria-label"] for s in slots(user)] == [
        f"Variation {n} of 3: not made yet" for n in (1, 2, 3)
    ]

    await eventually(provider.waiting.is_set)
    provider.steps.put_nowait(None)
    await eventually(lambda: filled(user) == [True, False, False], message="the first slot to fill")
    (first,) = services.registry.snapshot(job.id).result_image_ids
    assert marked(user, f"image-{first}"), "the first result is in the gallery before the job ends"
    assert len(loading_cards(user)) == 1, "the card stays for the rest"

    def meta_of(image_id: str) -> str:
        (card,) = marked(user, f"image-{image_id}")
        return " ".join(str(getattr(e, "text", "")) for e in card.descendants())

    assert "Variation" not in meta_of(first), "alone so far: not numbered yet"

    await eventually(provider.waiting.is_set)
    provider.steps.put_nowait(None)
    await eventually(lambda: filled(user) == [True, True, False], message="the second slot to fill")
    await eventually(lambda: "Variation 1 · Generated" in meta_of(first), message="the first numbered")
    await eventually(provider.waiting.is_set)
    provider.steps.put_nowait(None)
    final = await services.registry.wait(job.id)
    assert final.stage is JobStage.COMPLETED and len(final.result_image_ids) == 3
    await eventually(lambda: loading_cards(user) == [], message="the card to go")
    assert len(services.store) == before + 3

    # Together in the gallery, in order, numbered.
    shown = [c for c in image_cards(user) if any(m.startswith("image-") for m in c._markers)]
    ids = [next(m[6:] for m in c._markers if m.startswith("image-") and m != "image-card") for c in shown]
    at = ids.index(final.result_image_ids[0])
    assert ids[at : at + 3] == list(final.result_image_ids)
    await user.should_see("Variation 2 · Generated")
    await user.should_see("Variation 3 · Generated")

    # The image dialog lists the siblings and switches between them in place.
    user.find(marker=f"image-{final.result_image_ids[0]}").click()
    steps = marked(user, "variation")
    assert [s.props["aria-label"] for s in steps] == [f"Show variation {n} of 3" for n in (1, 2, 3)]
    assert [s.props.get("aria-current") for s in steps] == ["true", None, None]
    await services.journal.flush()
    await user.should_see(f"seed {final.spec.seed} · variation 1 of 3")
    click(user, marked(user, "variation-3")[0])
    assert [s.props.get("aria-current") for s in marked(user, "variation")] == [None, None, "true"]
    assert len(open_dialogs(user)) == 1


async def test_retry_opens_with_the_number_of_variations(user: User) -> None:
    await user.open("/")
    services = app_services()
    services.providers.add(RefusingProvider())
    first = services.studio.submit_generate("teal stripes", Quality.LOW, "refusing", variations=2)
    await services.registry.wait(first)
    await user.should_see("Retry", retries=50)

    user.find(marker="retry").click()
    assert field(user, "variations").value == 2
    user.find(marker="provider").click()
    user.find("Local engine (offline)").click()
    user.find("Generate").click()

    (job,) = services.registry.snapshots()
    assert job.spec.variations == 2 and job.spec.provider == "local"
    final = await services.registry.wait(job.id)
    assert final.stage is JobStage.COMPLETED and len(final.result_image_ids) == 2


async def test_a_batch_edit_asks_each_image_for_its_variations(user: User) -> None:
    await user.open("/")
    services = app_services()
    chosen = [r.id for r in services.store.list()[:2]]
    for image_id in chosen:
        user.find(marker=f"select-{image_id}").click()
    user.find(marker="edit-selected").click()
    user.find(marker="batch-prompt").type("sepia")
    # ("2 images" is also the dialog's title, "Edit 2 images": the select is set directly.)
    field(user, "batch-variations").set_value(2)
    user.find(marker="batch-start").click()

    jobs = services.registry.snapshots()
    assert len(jobs) == 2 and {j.spec.variations for j in jobs} == {2}
    finals = [await services.registry.wait(j.id) for j in jobs]
    assert all(f.stage is JobStage.COMPLETED and len(f.result_image_ids) == 2 for f in finals)
    made = [services.store.get(i) for f in finals for i in f.result_image_ids]
    assert sorted(r.parent_id or "" for r in made) == sorted(chosen * 2)


async def test_cancel_after_a_variation_landed_says_what_was_kept(user: User) -> None:
    await user.open("/")
    services = app_services()
    provider = SteppingProvider()
    services.providers.add(provider)
    job = services.studio.submit_generate("three moons", Quality.LOW, "stepping", variations=3)
    await eventually(provider.waiting.is_set)
    provider.steps.put_nowait(None)
    await eventually(lambda: filled(user) == [True, False, False], message="the first slot to fill")
    await eventually(provider.waiting.is_set)
    services.registry.cancel(job)  # from another tab (the tab that cancels shows no toast)
    final = await services.registry.wait(job)
    assert final.stage is JobStage.CANCELLED and len(final.result_image_ids) == 1
    await eventually(
        lambda: user.notify.contains("New image cancelled · 1 of 3 variations kept: “three moons”"),
        message="the cancel toast",
    )
    assert marked(user, f"image-{final.result_image_ids[0]}"), "the kept variation stays in the gallery"
