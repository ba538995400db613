"""What the 1-second tick sends (NiceGUI's simulated user, the real app): nothing for cards whose
shown values did not change, and for a hundred jobs that all moved on, one compact message whose
values are the ones the elements now hold on the server. Speed itself lives in bench/tick.py."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from nicegui import ui
from nicegui.testing import User

from imgedit.jobs import JobContext, JobSpec, JobStage
from imgedit.models import JobKind, Quality
from imgedit.ui import heap
from imgedit.ui.job_card import card_attributes
from imgedit.ui.patch import TEXT
from tests.conftest import app_services
from tests.fakes import eventually
from tests.test_gallery_ui import loading_cards, marked

JOBS = 100


@pytest.fixture
def many_slots(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMGEDIT_MAX_CONCURRENT", str(JOBS))


async def running_jobs(count: int) -> tuple[list[JobContext], asyncio.Event]:
    """``count`` jobs in PROCESSING that never finish on their own (set the event to end them)."""
    services = app_services()
    contexts: list[JobContext] = []
    release = asyncio.Event()

    async def work(context: JobContext) -> None:
        context.stage(JobStage.PROCESSING, "Working")
        contexts.append(context)
        await release.wait()

    source = services.store.list()[0].id
    for index in range(count):
        spec = JobSpec(
            kind=JobKind.EDIT,
            prompt=f"job {index}",
            quality=Quality.MEDIUM,
            provider="local",
            source_image_id=source,
        )
        services.registry.submit(spec, work)
    await eventually(lambda: len(contexts) == count, message="every job running")
    return contexts, release


@contextmanager
def sent(user: User) -> Iterator[tuple[list[ui.element], list[str]]]:
    """The element updates and the javascript this tab queues inside the block."""
    assert user.client is not None
    outbox = user.client.outbox
    updates: list[ui.element] = []
    scripts: list[str] = []
    enqueue_update, enqueue_message = outbox.enqueue_update, outbox.enqueue_message

    def spy_update(element: ui.element) -> None:
        updates.append(element)
        enqueue_update(element)

    def spy_message(message_type: str, data: Any, target_id: str) -> None:
        if message_type == "run_javascript":
            scripts.append(str(data["code"]))
        enqueue_message(message_type, data, target_id)

    outbox.enqueue_update = spy_update  # type: ignore[method-assign]
    outbox.enqueue_message = spy_message  # type: ignore[method-assign]
    try:
        yield updates, scripts
    finally:
        outbox.enqueue_update = enqueue_update  # type: ignore[method-assign]
        outbox.enqueue_message = enqueue_message  # type: ignore[method-assign]


def tick(user: User) -> None:
    (timer,) = user.find(ui.timer).elements
    timer.callback()  # type: ignore[misc]


def patch_ops(scripts: list[str]) -> list[tuple[int, str, Any]]:
    """The (element id, key, value) changes of the patch messages among ``scripts``."""
    ops: list[tuple[int, str, Any]] = []
    for code in scripts:
        if "imgeditPatch(" in code:
            for element_id, *changes in json.loads(code.split("imgeditPatch(", 1)[1].removesuffix(")")):
                ops += [(element_id, changes[i], changes[i + 1]) for i in range(0, len(changes), 2)]
    return ops


async def settled(user: User, count: int) -> list[JobContext]:
    contexts, _release = await running_jobs(count)
    await user.open("/")
    await eventually(lambda: len(loading_cards(user)) == count, message="a card for every job")
    tick(user)
    return contexts


async def test_a_tick_where_nothing_shown_changed_sends_nothing(many_slots: None, user: User) -> None:
    contexts = await settled(user, JOBS)
    for context in contexts:
        context.progress(0.4)
    tick(user)
    # The registry moves on (every job says something), but nothing a card or the closed tray
    # shows changes: the same message again. The browser advances bars and times by itself.
    for context in contexts:
        context.message("Working")
    with sent(user) as (updates, scripts):
        tick(user)
    assert updates == [] and scripts == [], "no element update and no javascript at all"


async def test_a_hundred_jobs_reporting_progress_cost_one_message_of_true_values(
    many_slots: None, user: User
) -> None:
    contexts = await settled(user, JOBS)
    live = marked(user, "live")[0]
    with sent(user) as (updates, scripts):
        for context in contexts:
            context.progress(0.6, "Step 12 of 20")
        tick(user)
    # One message for every card; the live region (screen-reader news) is the only whole update.
    assert [s for s in scripts if "imgeditPatch(" in s] == scripts[-1:] and len(scripts) == 1
    assert set(updates) <= {live}
    assert live.text == f"Half way: {JOBS} jobs.", "many jobs at the same point are told as a count"

    ops = patch_ops(scripts)
    by_id = {element.id: element for element in user.client.elements.values()}  # type: ignore[union-attr]
    for element_id, key, value in ops:
        element = by_id[element_id]
        held = element.text if key == TEXT else element.props.get(key)  # type: ignore[attr-defined]
        assert held == value, f"the browser is told what the server holds ({key})"
    shown = {s.progress for s in app_services().registry.snapshots()}
    assert len(shown) == 1 and shown.pop() > 0.5
    for card in loading_cards(user):
        assert card.props["data-progress"] == card.props["data-floor"] > 0.5
    assert len(ops) <= 6 * JOBS, "a few values per card, not whole elements"
    await user.should_see("Step 12 of 20")


async def test_a_stage_change_shows_on_every_card_and_in_the_tray(many_slots: None, user: User) -> None:
    contexts = await settled(user, 3)
    user.find(marker="tray-badge").click()  # tray rows exist while the drawer is open
    tick(user)
    for context in contexts:
        context.stage(JobStage.FINALIZING, "Saving")
    with sent(user) as (updates, scripts):
        tick(user)
    assert updates == [] or {e.id for e in updates} == {marked(user, "live")[0].id}
    assert len(scripts) == 1
    assert {card.props["data-stage"] for card in loading_cards(user)} == {"finalizing"}
    await user.should_see("Finalizing")
    await user.should_see("Saving")
    statuses = [e for e in user.find(marker="tray-job").elements]
    assert len(statuses) == 3
    for context in contexts:
        (status,) = marked(user, f"tray-status-{context.job_id}")
        assert status.text.startswith("Finalizing · ")  # type: ignore[attr-defined]


async def test_the_cards_attributes_are_those_card_attributes_gives(many_slots: None, user: User) -> None:
    """The tick computes the card's ``data-*`` values inline; they stay what the reference
    function (``card_attributes``) says, through progress, milestones and a stage change."""
    contexts = await settled(user, 3)
    contexts[0].progress(0.37)
    contexts[1].progress(0.5, exact=False)
    contexts[2].stage(JobStage.FINALIZING, "Saving")
    tick(user)
    snapshots = {s.id: s for s in app_services().registry.snapshots()}
    for context in contexts:
        (card,) = marked(user, f"job-{context.job_id}")
        expected = card_attributes(snapshots[context.job_id], now=time.time())
        expected.pop("data-deadline")  # moves with the wall clock for queued cards only
        held = {key: card.props.get(key) for key in expected}
        assert held == expected


async def test_a_registry_snapshot_is_a_whole_frozen_job_snapshot(user: User) -> None:
    """Snapshots are built slot by slot for speed: every field is set, and it stays immutable."""
    services = app_services()
    release = asyncio.Event()

    async def work(context: JobContext) -> None:
        context.progress(0.25, "a quarter")
        await release.wait()

    spec = JobSpec(kind=JobKind.GENERATE, prompt="a fox", quality=Quality.LOW, provider="local")
    job_id = services.registry.submit(spec, work)
    await eventually(lambda: services.registry.snapshot(job_id).message == "a quarter")
    snapshot = services.registry.snapshot(job_id)
    assert dataclasses.replace(snapshot) == snapshot  # reads every field (an unset slot raises)
    assert dataclasses.asdict(snapshot)["progress_source"] == "reported"
    with pytest.raises(dataclasses.FrozenInstanceError):
        snapshot.message = "changed"  # type: ignore[misc]
    release.set()
    await services.registry.wait(job_id)


def test_after_start_up_the_collector_still_frees_what_comes_later() -> None:
    class Node:
        def __init__(self) -> None:
            self.me = self  # a cycle: only the garbage collector frees it

    threshold = gc.get_threshold()
    try:
        assert heap.after_startup() > 0
        assert gc.get_threshold()[:2] == (heap.YOUNG_THRESHOLD, heap.MIDDLE_THRESHOLD)
        node = weakref.ref(Node())
        gc.collect()
        assert node() is None, "objects made after the freeze are still collected"
    finally:
        gc.unfreeze()  # the test process runs many apps: leave nothing frozen behind
        gc.set_threshold(*threshold)
