"""A failed job keeps its error's structure (kind, provider, HTTP status, server code) beside its
message: on the failed card, in the journal across a restart, shown and filterable in /history.

Real parts: the OpenAI provider against the loopback fake (``tests.fake_openai``) answering as
the API does, the journal's SQLite file read again by a second start, NiceGUI's simulated user
on the gallery and /history.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from nicegui.testing import User

from imgedit.config import Settings
from imgedit.errors import ProviderRateLimited, StorageFailed
from imgedit.jobs import JobStage, history
from imgedit.jobs.model import Failure, FailureKind
from imgedit.models import JobKind, Quality
from imgedit.providers.base import ProgressSink, ProviderRequest, ProviderResult
from imgedit.services import Services, build_services
from tests.conftest import app_services
from tests.fake_openai import FakeOpenAI, StreamError, insufficient_quota, make_app
from tests.fakes import eventually
from tests.loopback import serve
from tests.test_gallery_ui import loading_cards, start_edit
from tests.test_history import history_rows, marked, row_prompts


class Failing:
    """A provider that fails each job with the next scripted error (a real provider's classes)."""

    name = "failing"
    label = "Failing test server"

    def __init__(self, errors: list[BaseException]) -> None:
        from imgedit.providers.base import Capabilities

        self.capabilities = Capabilities(edit=True, generate=True)
        self.errors = errors

    def expected_seconds(self, kind: JobKind, quality: Quality) -> float:
        return 1.0

    def describe(self, kind: JobKind) -> str:
        return "fails on purpose"

    async def edit(self, request: ProviderRequest, sink: ProgressSink) -> ProviderResult:
        raise self.errors.pop(0)

    async def generate(self, request: ProviderRequest, sink: ProgressSink) -> ProviderResult:
        raise self.errors.pop(0)


SECRET = "sk-" + "q" * 40


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Callable[[list[BaseException]], Services]]:
    """Start the services on one data dir, as ``python main.py`` does; again after a stop. The
    storage secret is one the redactor knows, as a key would be."""
    started: list[Services] = []

    def make(errors: list[BaseException]) -> Services:
        settings = Settings(
            data_dir=tmp_path / "data",
            samples=False,
            show=False,
            max_concurrent=1,
            max_attempts=1,
            storage_secret=SECRET,
        )
        services = build_services(settings)
        services.providers.add(Failing(errors))  # type: ignore[arg-type]
        started.append(services)
        services.start()
        return services

    yield make
    for services in started:
        await services.close()


async def test_the_structure_survives_a_restart_and_filters_the_history(
    start: Callable[[list[BaseException]], Services],
) -> None:
    first = start(
        [
            ProviderRateLimited("Slow down.", provider="failing", status=429, code="rate_limit_exceeded"),
            StorageFailed("The disk is full."),
            # A server that echoes a secret in a long code: kept as data, cleaned and cut.
            ProviderRateLimited(
                "Slow down again.", provider="failing", status=429, code=f"{'x' * 300} {SECRET}"
            ),
        ]
    )
    jobs = [first.studio.submit_generate(f"job {i}", Quality.LOW, "failing", (32, 32)) for i in range(3)]
    finals = [await first.registry.wait(job) for job in jobs]
    assert [f.stage for f in finals] == [JobStage.FAILED] * 3
    assert finals[0].failure == Failure(
        kind=FailureKind.RATE_LIMITED, provider="failing", status=429, code="rate_limit_exceeded"
    )
    assert finals[1].failure == Failure(kind=FailureKind.STORAGE)
    code = finals[2].failure.code if finals[2].failure else None
    assert code is not None and SECRET not in code and len(code) <= 100
    await first.journal.flush()
    await first.close()

    again = start([])
    db = again.store.db
    rows = {row.id: row for row in history.page(db).rows}
    assert rows[jobs[0]].failure == finals[0].failure, "kept by the journal across a restart"
    assert rows[jobs[1]].failure == Failure(kind=FailureKind.STORAGE)
    assert rows[jobs[2]].failure == finals[2].failure
    assert history.failure_kinds(db) == [FailureKind.RATE_LIMITED, FailureKind.STORAGE]

    limited = history.page(db, failure={FailureKind.RATE_LIMITED})
    assert {row.id for row in limited.rows} == {jobs[0], jobs[2]} and limited.total == 2
    assert {row.id for row in history.page(db, status_code=429).rows} == {jobs[0], jobs[2]}
    assert [row.id for row in history.page(db, search="rate_limit_exceeded").rows] == [jobs[0]]
    assert [row.id for row in history.page(db, search="disk is full").rows] == [jobs[1]]
    assert history.page(db, search=SECRET).total == 0


# -- through the UI, with the OpenAI provider against its loopback fake --------------------------


@pytest.fixture
def openai_fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    state = FakeOpenAI()
    with serve(make_app(state)) as base:
        monkeypatch.setenv("OPENAI_API_KEY", str(state.api_key))
        monkeypatch.setenv("OPENAI_BASE_URL", base + "/v1")
        yield state


def failure_details(user: User, marker: str) -> list[str]:
    return [e.text for e in marked(user, marker) if e.visible]


async def test_a_failed_card_and_the_history_show_and_filter_the_structure(
    openai_fake: FakeOpenAI, user: User
) -> None:
    openai_fake.script(insufficient_quota(), StreamError(data_only=True))
    await user.open("/")
    services = app_services()
    source, other = services.store.list()[:2]

    await start_edit(user, source.id, "turn the sky purple")
    await eventually(lambda: any(c.props.get("data-stage") == "failed" for c in loading_cards(user)))
    await eventually(
        lambda: (
            failure_details(user, "failure-detail")
            == ["Refused by the provider · HTTP 429 · insufficient_quota"]
        )
    )
    (card,) = loading_cards(user)
    assert card.props["data-failure"] == "refused"

    await start_edit(user, other.id, "make it a watercolour")
    await eventually(lambda: len(failure_details(user, "failure-detail")) == 2, message="two failed cards")
    assert "Refused by the provider · moderation_blocked" in failure_details(user, "failure-detail"), (
        "a stream's error event has no HTTP status of its own, but its code"
    )
    await services.journal.flush()

    await user.open("/history")
    assert row_prompts(user) == ["make it a watercolour", "turn the sky purple"]
    assert failure_details(user, "history-failure-detail") == [
        "Refused by the provider · moderation_blocked",
        "Refused by the provider · HTTP 429 · insufficient_quota",
    ]

    # The Failure filter offers the kinds the history holds; the search finds a server's code.
    user.find(marker="history-failure").click()
    user.find("Refused by the provider").click()
    await eventually(lambda: len(history_rows(user)) == 2, message="both refused jobs")
    user.find(marker="history-search").type("insufficient_quota")
    await eventually(lambda: row_prompts(user) == ["turn the sky purple"], message="the quota failure")
    await user.should_see("1 job")


async def test_rows_from_before_the_structure_was_kept_still_show(user: User) -> None:
    """Jobs journaled before migration 6 have no failure columns: shown, never in a kind's filter."""
    from tests.test_history import job_row

    services = app_services()
    db = services.store.db
    db.execute_many(
        [
            job_row(prompt="old failure", stage="failed", error="It broke.", created_at=1),
            job_row(prompt="unreachable", stage="failed", error="No answer.", created_at=2),
        ]
    )
    db.execute("UPDATE jobs SET failure_kind = 'unreachable' WHERE prompt = 'unreachable'")
    await user.open("/history")
    assert row_prompts(user) == ["unreachable", "old failure"]
    assert failure_details(user, "history-failure-detail") == ["Could not reach the provider"]
    user.find(marker="history-failure").click()
    user.find("Could not reach the provider").click()
    await eventually(lambda: row_prompts(user) == ["unreachable"], message="only the unreachable job")
    await user.should_see("1 job")
    user.find(marker="history-failure").click()
    user.find("Any reason").click()
    await eventually(lambda: len(history_rows(user)) == 2, message="both again")
