"""The jobs tray as users drive it (NiceGUI's simulated user): every change made in one tab shows
in the other tab's tray, live, without reloading."""

from __future__ import annotations

import pytest
from nicegui import ui
from nicegui.testing import User

from tests.conftest import app_services
from tests.fakes import GatedProvider, eventually
from tests.test_gallery_ui import loading_cards, marked, start_edit

GATED = "Gated test engine"


@pytest.fixture
def one_slot(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start the app with --max-concurrent 1 (requested before the users, which run main.py)."""
    monkeypatch.setenv("IMGEDIT_MAX_CONCURRENT", "1")


def queued_prompts(user: User) -> list[str]:
    """The queued jobs' prompts in the order the tray lists them."""
    return _prompts(user, "tray-queued")


def running_prompts(user: User) -> list[str]:
    return _prompts(user, "tray-running")


def _prompts(user: User, box_marker: str) -> list[str]:
    (box,) = marked(user, box_marker)
    texts = []
    for row in box.default_slot.children:
        label = next(e for e in row.descendants() if "imgedit-tray-prompt" in e.classes)
        assert isinstance(label, ui.label)
        texts.append(label.text.split("“", 1)[1].rstrip("”"))
    return texts


def summary(user: User) -> str:
    (label,) = marked(user, "summary")
    assert isinstance(label, ui.label)
    return label.text


def status_of(user: User, prompt: str) -> str:
    services = app_services()
    job_id = next(s.id for s in services.registry.snapshots() if s.spec.prompt == prompt)
    (label,) = marked(user, f"tray-status-{job_id}")
    assert isinstance(label, ui.label)
    return label.text


def job_id(prompt: str) -> str:
    services = app_services()
    return str(next(s.id for s in services.registry.snapshots() if s.spec.prompt == prompt))


async def open_tray(user: User) -> ui.right_drawer:
    user.find(marker="tray-badge").click()
    (drawer,) = marked(user, "tray")
    assert isinstance(drawer, ui.right_drawer)
    assert drawer.value is True, "the badge opens the drawer"
    return drawer


async def three_jobs_on_one_slot(alice: User, bob: User) -> GatedProvider:
    """``first`` runs (held by the gate), ``second`` and ``third`` wait in the queue."""
    await alice.open("/")
    await bob.open("/")
    services = app_services()
    gated = GatedProvider()
    services.providers.add(gated)
    images = services.store.list()
    for image, prompt in zip(images, ("first", "second", "third"), strict=False):
        await start_edit(alice, image.id, prompt, provider_label=GATED)
    await eventually(gated.started.is_set, message="the first job to start")
    for user in (alice, bob):
        await open_tray(user)  # rows are built only while the drawer is open
        await eventually(lambda u=user: running_prompts(u) == ["first"], message="first running in the tray")
        await eventually(
            lambda u=user: queued_prompts(u) == ["second", "third"], message="two queued in the tray"
        )
    return gated


async def test_the_badge_opens_the_tray_with_running_and_queued_jobs(one_slot: None, create_user) -> None:  # type: ignore[no-untyped-def]
    alice, bob = create_user(), create_user()
    gated = await three_jobs_on_one_slot(alice, bob)
    assert summary(bob) == "1 running · 2 queued"
    await open_tray(alice)
    await alice.should_see("#1 in the queue", retries=30)
    assert status_of(alice, "second").startswith("#1 in the queue")
    assert status_of(alice, "third").startswith("#2 in the queue")
    await eventually(lambda: status_of(bob, "first").startswith("Processing · "), message="the running row")
    # Thumbnails of the sources, and every icon button named for screen readers.
    rows = marked(alice, "tray-job")
    sources = {s.spec.source_image_id for s in app_services().registry.snapshots()}
    thumbs = {e.props.get("src") for r in rows for e in r.descendants() if e.tag == "img"}
    assert thumbs == {f"/media/thumbs/{s}" for s in sources}
    buttons = [e for r in rows for e in r.descendants() if isinstance(e, ui.button)]
    assert buttons and all(b.props.get("aria-label") for b in buttons)
    assert marked(alice, f"tray-up-{job_id('second')}")[0].enabled is False, "the first can't go up"
    assert marked(alice, f"tray-down-{job_id('third')}")[0].enabled is False, "the last can't go down"
    gated.gate.set()
    await eventually(lambda: summary(bob) == "No jobs", message="all three done")


async def test_reorder_and_move_to_front_show_in_the_other_tab(one_slot: None, create_user) -> None:  # type: ignore[no-untyped-def]
    alice, bob = create_user(), create_user()
    gated = await three_jobs_on_one_slot(alice, bob)
    await open_tray(alice)

    alice.find(marker=f"tray-down-{job_id('second')}").click()
    await eventually(lambda: queued_prompts(bob) == ["third", "second"], message="bob to see the new order")
    assert queued_prompts(alice) == ["third", "second"]

    alice.find(marker=f"tray-up-{job_id('second')}").click()
    await eventually(lambda: queued_prompts(bob) == ["second", "third"], message="moved back up")

    alice.find(marker=f"tray-front-{job_id('third')}").click()
    await eventually(lambda: queued_prompts(bob) == ["third", "second"], message="third at the front")
    await eventually(lambda: status_of(bob, "third").startswith("#1 in the queue"), message="its position")

    # The queue order is the order they run in: with the gate open, third starts before second.
    started: list[str] = []
    services = app_services()
    services.registry.on_finish(lambda snapshot: started.append(snapshot.spec.prompt))
    gated.gate.set()
    await eventually(lambda: len(started) == 3, message="all three to finish")
    assert started == ["first", "third", "second"]


async def test_pause_holds_the_queue_and_resume_starts_it_in_every_tab(one_slot: None, create_user) -> None:  # type: ignore[no-untyped-def]
    alice, bob = create_user(), create_user()
    gated = await three_jobs_on_one_slot(alice, bob)
    await open_tray(alice)

    alice.find(marker="tray-pause").click()
    await eventually(lambda: summary(bob) == "Paused · 1 running · 2 queued", message="bob sees the pause")
    await eventually(
        lambda: status_of(bob, "second").endswith("paused"), message="the queued row says paused"
    )
    await bob.should_see("Resume queue", retries=30)

    gated.gate.set()  # the running job finishes; nothing new may start
    await eventually(lambda: running_prompts(bob) == [], message="first to finish")
    assert gated.calls == 1
    assert summary(bob) == "Paused · 2 queued"
    assert queued_prompts(bob) == ["second", "third"]
    assert app_services().registry.paused is True

    bob.find(marker="tray-pause").click()  # resumed from the other tab
    await eventually(lambda: gated.calls == 3, message="both queued jobs to run")
    await eventually(lambda: summary(alice) == "No jobs", message="alice sees the queue drained")


async def test_cancel_all_queued_leaves_the_running_job(one_slot: None, create_user) -> None:  # type: ignore[no-untyped-def]
    alice, bob = create_user(), create_user()
    gated = await three_jobs_on_one_slot(alice, bob)
    await open_tray(alice)

    alice.find(marker="tray-cancel-queued").click()
    assert alice.notify.contains("Cancelled 2 queued jobs.")
    await eventually(lambda: queued_prompts(bob) == [], message="bob's queue to empty")
    assert running_prompts(bob) == ["first"]
    assert summary(bob) == "1 running"
    await eventually(
        lambda: len(loading_cards(alice)) == 1, message="only the running card in alice's gallery"
    )
    await eventually(lambda: len(loading_cards(bob)) == 1, message="and in bob's")
    await eventually(  # alice's own tick (each tab has its own) disables it
        lambda: marked(alice, "tray-cancel-queued")[0].enabled is False, message="nothing left to cancel"
    )
    gated.gate.set()
    await eventually(lambda: summary(alice) == "No jobs", message="the running job to finish")
    assert gated.calls == 1


async def test_cancel_one_job_from_the_tray(one_slot: None, create_user) -> None:  # type: ignore[no-untyped-def]
    alice, bob = create_user(), create_user()
    gated = await three_jobs_on_one_slot(alice, bob)
    await open_tray(bob)

    bob.find(marker=f"tray-cancel-{job_id('third')}").click()
    await eventually(lambda: queued_prompts(alice) == ["second"], message="alice sees it gone")
    bob.find(marker=f"tray-cancel-{job_id('first')}").click()  # a running one
    await eventually(lambda: running_prompts(alice) == ["second"], message="second to take the slot")
    gated.gate.set()
    await eventually(lambda: summary(alice) == "No jobs", message="second to finish")


async def test_changing_jobs_at_once_starts_queued_jobs_and_shows_everywhere(
    one_slot: None, create_user
) -> None:  # type: ignore[no-untyped-def]
    alice, bob = create_user(), create_user()
    gated = await three_jobs_on_one_slot(alice, bob)
    await open_tray(alice)
    (bob_slots,) = marked(bob, "tray-slots")
    assert isinstance(bob_slots, ui.number)
    assert bob_slots.value == 1

    alice.find(marker="tray-slots").clear().type("3")
    await eventually(lambda: gated.calls == 3, message="the two queued jobs to start")
    assert app_services().registry.max_concurrent == 3
    await eventually(lambda: bob_slots.value == 3, message="bob's control to follow")
    await eventually(lambda: summary(bob) == "3 running", message="bob's badge")
    assert queued_prompts(bob) == []

    bob.find(marker="tray-slots").clear().type("2")
    await eventually(lambda: app_services().registry.max_concurrent == 2, message="bob's change")
    await eventually(lambda: marked(alice, "tray-slots")[0].value == 2, message="alice's control to follow")
    gated.gate.set()
    await eventually(lambda: summary(alice) == "No jobs", message="all to finish")


async def test_a_submit_reveals_its_card_and_asks_permission_to_notify(user: User) -> None:
    sent: list[str] = []
    await user.open("/")
    assert user.client is not None
    outbox = user.client.outbox
    original = outbox.enqueue_message

    def spy(message_type: str, data: object, target_id: str) -> None:
        if message_type == "run_javascript" and isinstance(data, dict):
            sent.append(str(data["code"]))
        original(message_type, data, target_id)

    outbox.enqueue_message = spy  # type: ignore[method-assign]

    services = app_services()
    gated = GatedProvider()
    services.providers.add(gated)
    await start_edit(user, services.store.list()[0].id, "anything", provider_label=GATED)
    (card,) = loading_cards(user)
    await eventually(lambda: any("askPermission" in code for code in sent), message="the permission request")
    assert any(f'imgeditNotify.reveal({{"id": {card.id}}})' in code for code in sent), (
        "its card is scrolled to"
    )
    await eventually(lambda: any('"running": 1' in code for code in sent), message="the title count")
    gated.gate.set()
    await eventually(
        lambda: any('"ok": true' in code for code in sent), message="the finish told the browser"
    )


async def test_a_failure_toast_shows_the_source_thumbnail(user: User) -> None:
    await user.open("/")
    services = app_services()
    source = services.store.list()[0]
    await start_edit(user, source.id, "add glitter")
    await eventually(lambda: marked(user, "failure-toast"), message="the failure toast")
    (toast,) = marked(user, "failure-toast")
    assert toast.props["options"]["avatar"] == f"/media/thumbs/{source.id}"
    assert [a["label"] for a in toast.props["options"]["actions"]] == ["Retry", "Dismiss"]


async def test_a_closed_tray_builds_no_rows_but_its_badge_stays_live(one_slot: None, create_user) -> None:  # type: ignore[no-untyped-def]
    alice, bob = create_user(), create_user()
    await three_jobs_on_one_slot(alice, bob)  # opens both trays
    carol = create_user()
    await carol.open("/")
    await eventually(lambda: summary(carol) == "1 running · 2 queued", message="carol's badge")
    assert marked(carol, "tray-job") == [], "no row is built while the drawer is closed"
    await open_tray(carol)
    # Opening builds every row at once, in queue order, with its status (no tick needed).
    assert running_prompts(carol) == ["first"]
    assert queued_prompts(carol) == ["second", "third"]
    assert status_of(carol, "third").startswith("#2 in the queue")
