"""Load (issue 6): 200 jobs submitted from 5 clients at once are all accounted for, none twice."""

from __future__ import annotations

import asyncio
from collections import Counter

from nicegui.testing import User

from imgedit.jobs import JobStage
from imgedit.models import Quality
from tests.conftest import app_services
from tests.fakes import eventually
from tests.test_gallery_ui import image_cards, loading_cards

CLIENTS, PER_CLIENT = 5, 40


async def test_two_hundred_jobs_from_five_clients_all_land_once(create_user) -> None:  # type: ignore[no-untyped-def]
    tabs: list[User] = [create_user() for _ in range(CLIENTS)]
    for tab in tabs:
        await tab.open("/")
    services = app_services()
    before = {r.id for r in services.store.list()}

    async def client(number: int) -> list[str]:
        ids = []
        for i in range(PER_CLIENT):
            ids.append(services.studio.submit_generate(f"dots {number}-{i}", Quality.LOW, "local", (48, 32)))
            await asyncio.sleep(0)  # the clients interleave, as their clicks would
        return ids

    job_ids = [j for ids in await asyncio.gather(*(client(n) for n in range(CLIENTS))) for j in ids]
    assert len(set(job_ids)) == CLIENTS * PER_CLIENT
    finals = [await services.registry.wait(j) for j in job_ids]

    assert Counter(f.stage for f in finals) == {JobStage.COMPLETED: CLIENTS * PER_CLIENT}
    new = [r for r in services.store.list() if r.id not in before]
    prompts = Counter(r.prompt for r in new)
    assert len(new) == CLIENTS * PER_CLIENT and max(prompts.values()) == 1, "none lost, none twice"
    assert {f.result_image_id for f in finals} == {r.id for r in new}
    for tab in tabs:  # every client sees every result and no card left spinning
        await eventually(lambda tab=tab: len(image_cards(tab)) == len(before) + CLIENTS * PER_CLIENT)
        await eventually(lambda tab=tab: loading_cards(tab) == [])
