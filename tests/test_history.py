"""Job history: the query API on a real SQLite file, the /history page through NiceGUI's
simulated user, an image's lineage in its dialog, and a screenshot of /history in Chromium."""

from __future__ import annotations

import io
import itertools
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
from nicegui import ui
from nicegui.testing import User
from PIL import Image

from imgedit.database import Database
from imgedit.jobs import JobStage, history
from imgedit.models import ImageOrigin, Quality
from imgedit.storage import ImageStore
from tests.conftest import app_services
from tests.fakes import eventually

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"

_INSERT = (
    "INSERT INTO jobs (id, kind, prompt, quality, provider, model, source_image_id, width, height, stage, "
    "attempt, message, error, created_at, started_at, finished_at, duration, result_image_id, queue_order) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_order = itertools.count(1)


def job_row(
    *,
    prompt: str = "sepia",
    created_at: float = 1_000.0,
    kind: str = "edit",
    quality: str = "medium",
    provider: str = "local",
    stage: str = "completed",
    source: str | None = None,
    result: str | None = None,
    error: str | None = None,
    duration: float | None = 1.5,
    size: tuple[int, int] | None = None,
    job_id: str | None = None,
) -> tuple[str, tuple[Any, ...]]:
    """One jobs row as the journal writes it, for ``db.execute(*job_row(...))``."""
    finished = stage in {"completed", "failed", "cancelled", "interrupted"}
    return _INSERT, (
        job_id or uuid.uuid4().hex,
        kind,
        prompt,
        quality,
        provider,
        None,
        source,
        size[0] if size else None,
        size[1] if size else None,
        stage,
        1,
        "",
        error,
        created_at,
        created_at + 0.1,
        created_at + 0.1 + (duration or 0) if finished else None,
        duration if finished else None,
        result,
        float(next(_order)),
    )


@pytest.fixture
def db(tmp_path: Path) -> Any:
    opened = Database(tmp_path / "x.sqlite3")
    opened.open()  # runs the migrations: the jobs table is the journal's own
    yield opened
    opened.close()


# -- the query API -------------------------------------------------------------------------------


def test_filters_by_status_and_provider(db: Database) -> None:
    db.execute_many(
        [
            job_row(prompt="a", stage="completed", provider="local", created_at=1),
            job_row(prompt="b", stage="failed", provider="local", created_at=2, error="no"),
            job_row(prompt="c", stage="failed", provider="openai", created_at=3, error="no"),
            job_row(prompt="d", stage="cancelled", provider="sdwebui", created_at=4),
            job_row(prompt="e", stage="processing", provider="openai", created_at=5),
        ]
    )
    prompts = lambda page: [r.prompt for r in page.rows]  # noqa: E731
    everything = history.page(db)
    assert prompts(everything) == ["e", "d", "c", "b", "a"], "newest first"
    assert everything.total == 5 and everything.next_cursor is None
    assert prompts(history.page(db, status={JobStage.FAILED})) == ["c", "b"]
    assert prompts(history.page(db, status={"failed", "cancelled"})) == ["d", "c", "b"]
    assert prompts(history.page(db, provider="openai")) == ["e", "c"]
    both = history.page(db, status={JobStage.FAILED}, provider="openai")
    assert prompts(both) == ["c"] and both.total == 1
    assert history.providers(db) == ["local", "openai", "sdwebui"]
    row = history.page(db, status={"processing"}).rows[0]
    assert row.stage is JobStage.PROCESSING and row.duration is None


def test_search_takes_wildcards_and_backslashes_literally(db: Database) -> None:
    texts = ["50% brighter", "500 brighter", "snake_case blur", "snakeXcase blur", r"a\b path", "ab path"]
    db.execute_many([job_row(prompt=t, created_at=i) for i, t in enumerate(texts)])

    def found(search: str) -> set[str]:
        return {r.prompt for r in history.page(db, search=search).rows}

    assert found("0%") == {"50% brighter"}
    assert found("%") == {"50% brighter"}
    assert found("e_c") == {"snake_case blur"}
    assert found("_") == {"snake_case blur"}
    assert found("\\") == {r"a\b path"}
    assert found(r"a\b") == {r"a\b path"}
    assert found("BRIGHTER") == {"50% brighter", "500 brighter"}, "case-insensitive"
    assert found("  blur ") == {"snake_case blur", "snakeXcase blur"}
    assert found("") == set(texts)
    assert history.page(db, search="nothing like it").total == 0


def test_keyset_paging_has_no_duplicates_or_gaps(db: Database) -> None:
    # Many jobs share a timestamp (a burst of submissions): the id breaks the tie.
    rows = [job_row(prompt=f"p{i}", created_at=float(i // 7)) for i in range(233)]
    db.execute_many(rows)
    expected = [r.id for r in history.page(db, limit=500).rows]
    assert len(expected) == 233

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = history.page(db, before=cursor, limit=50)
        assert page.total == 233
        seen += [r.id for r in page.rows]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 5
    assert seen == expected, "every job once, in order"
    # A job added meanwhile (newer) does not shift the pages a user is walking through.
    first = history.page(db, limit=50)
    db.execute(*job_row(prompt="newest", created_at=10_000))
    second = history.page(db, before=first.next_cursor, limit=50)
    assert [r.id for r in second.rows] == expected[50:100]


def test_paging_with_filters(db: Database) -> None:
    db.execute_many(
        [
            job_row(prompt=f"{'sepia' if i % 3 else 'blur'} {i}", created_at=i, stage="completed")
            for i in range(120)
        ]
    )
    seen: list[str] = []
    cursor = None
    while True:
        page = history.page(db, search="sepia", before=cursor, limit=25)
        assert page.total == 80
        seen += [r.prompt for r in page.rows]
        if (cursor := page.next_cursor) is None:
            break
    assert len(seen) == len(set(seen)) == 80
    assert all(p.startswith("sepia") for p in seen)


def test_delete_removes_a_finished_row_only(db: Database) -> None:
    done, running = uuid.uuid4().hex, uuid.uuid4().hex
    db.execute(*job_row(job_id=done, stage="failed", error="x"))
    db.execute(*job_row(job_id=running, stage="processing"))
    assert history.delete(db, done) is True
    assert history.get(db, done) is None
    assert history.delete(db, done) is False, "already gone"
    assert history.delete(db, running) is False, "the journal would write it again at its next stage"
    assert history.get(db, running) is not None
    assert history.page(db).total == 1


def test_ten_thousand_jobs_first_page_is_one_page_and_uses_the_index(db: Database) -> None:
    db.execute_many(
        job_row(prompt=f"job {i}", created_at=float(i), stage="completed" if i % 5 else "failed")
        for i in range(10_000)
    )
    first = history.page(db)
    assert len(first.rows) == 50
    assert first.total == 10_000
    assert first.rows[0].prompt == "job 9999"
    assert first.next_cursor is not None
    deep = history.page(db, before=history.Cursor(5_000.0, ""))
    assert [r.prompt for r in deep.rows][:2] == ["job 4999", "job 4998"]
    # Page N walks the created_at index from its cursor; it does not scan the newer rows.
    plan = " ".join(
        str(tuple(row))
        for row in db.query(
            "EXPLAIN QUERY PLAN SELECT id FROM jobs WHERE (created_at <= ? AND (created_at < ? OR id < ?)) "
            "ORDER BY created_at DESC, id DESC LIMIT 51",
            (5.0, 5.0, "a"),
        )
    )
    assert "USING INDEX jobs_created (created_at<?)" in plan


def test_like_pattern() -> None:
    assert history.like_pattern("50%_a\\b") == "%50\\%\\_a\\\\b%"


# -- the /history page ---------------------------------------------------------------------------


def marked(user: User, marker: str) -> list[ui.element]:
    assert user.client is not None
    return [e for e in user.client.elements.values() if marker in e._markers]


def history_rows(user: User) -> list[ui.element]:
    return marked(user, "history-row")


def row_prompts(user: User) -> list[str]:
    return [e.text for row in history_rows(user) for e in row.descendants() if "history-prompt" in e._markers]


def png(colour: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(buffer, "PNG")
    return buffer.getvalue()


async def test_history_lists_jobs_with_their_details(user: User) -> None:
    services = app_services()
    db = services.store.db
    source, result = services.store.list()[:2]
    db.execute_many(
        [
            job_row(prompt="make it sepia", source=source.id, result=result.id, created_at=10, duration=2.25),
            job_row(
                prompt="a red circle",
                kind="generate",
                stage="failed",
                error="The engine refused.",
                created_at=11,
            ),
            job_row(prompt="<b>bold</b>", source="0" * 32, stage="cancelled", created_at=12, duration=None),
        ]
    )
    await user.open("/history")
    assert row_prompts(user) == ["<b>bold</b>", "a red circle", "make it sepia"]
    await user.should_see("3 jobs")
    await user.should_see("The engine refused.")
    await user.should_see("Local engine (offline) · Medium · 2.2 s")
    await user.should_see("Completed")
    await user.should_see("Failed")
    await user.should_see("Cancelled")
    await user.should_see("deleted")  # the cancelled edit's source is gone
    images = [e for row in history_rows(user) for e in row.descendants() if e.tag == "img"]
    assert {i.props["src"] for i in images} == {f"/media/thumbs/{source.id}", f"/media/thumbs/{result.id}"}
    assert all(i.props["alt"] for i in images)
    # Icon buttons carry their name for screen readers.
    for button in marked(user, "history-retry") + marked(user, "history-delete"):
        assert button.props["aria-label"]
    # And back to the gallery.
    user.find(marker="nav-gallery").click()
    await user.should_see("New image")


async def test_history_lists_real_jobs(user: User) -> None:
    services = app_services()
    first = services.studio.submit_generate("a red circle on a blue background", "low", "local")
    source = services.store.list()[0]
    second = services.studio.submit_edit(source.id, "paint it like a summer dream", "low", "local")
    assert (await services.registry.wait(first)).stage is JobStage.COMPLETED
    assert (await services.registry.wait(second)).stage is JobStage.FAILED
    await services.journal.flush()  # the journal writes off the event loop
    await user.open("/history")
    assert row_prompts(user) == ["paint it like a summer dream", "a red circle on a blue background"]
    await user.should_see("Completed")
    await user.should_see("Failed")
    row = history.get(services.store.db, first)
    assert row is not None and row.result_image_id is not None and row.duration is not None
    shown = {e.props.get("src") for r in history_rows(user) for e in r.descendants() if e.tag == "img"}
    assert shown == {f"/media/thumbs/{row.result_image_id}", f"/media/thumbs/{source.id}"}, "after; before"


async def test_filter_and_search_narrow_the_rows(user: User) -> None:
    services = app_services()
    services.store.db.execute_many(
        [
            job_row(prompt="sepia one", created_at=1),
            job_row(prompt="sepia two", stage="failed", error="bad", created_at=2),
            job_row(prompt="blur 50%", stage="failed", error="bad", created_at=3, provider="openai"),
            job_row(prompt="blur 500", created_at=4, provider="openai"),
        ]
    )
    await user.open("/history")
    assert len(history_rows(user)) == 4

    user.find(marker="history-status").click()
    user.find("Failed").click()
    await eventually(lambda: row_prompts(user) == ["blur 50%", "sepia two"], message="failed rows only")
    await user.should_see("2 jobs")

    user.find(marker="history-search").type("sepia")
    await eventually(lambda: row_prompts(user) == ["sepia two"], message="failed sepia rows")

    user.find(marker="history-status").click()
    user.find("All statuses").click()
    await eventually(lambda: row_prompts(user) == ["sepia two", "sepia one"], message="every sepia row")

    user.find(marker="history-search").clear()
    user.find(marker="history-search").type("50%")
    await eventually(lambda: row_prompts(user) == ["blur 50%"], message="the literal 50%")

    user.find(marker="history-search").clear()
    user.find(marker="history-provider").click()
    user.find("openai").click()  # not configured here, so listed by its name
    await eventually(lambda: row_prompts(user) == ["blur 500", "blur 50%"], message="openai rows")

    user.find(marker="history-search").type("nothing like this")
    await eventually(lambda: row_prompts(user) == [], message="no rows")
    await user.should_see("No job matches these filters.")


async def test_retry_with_an_edited_prompt_runs_the_new_prompt(user: User) -> None:
    services = app_services()
    source = services.store.list()[0]
    old = uuid.uuid4().hex
    services.store.db.execute(
        *job_row(job_id=old, prompt="rotate 90", source=source.id, stage="failed", error="x", quality="low")
    )
    await user.open("/history")
    user.find(marker=f"retry-{old}").click()
    (field,) = user.find(marker="prompt").elements
    assert field.value == "rotate 90", "the old prompt, ready to edit"
    user.find(marker="prompt").clear().type("invert and blur 2")
    user.find(marker="start").click()

    (snapshot,) = [s for s in services.registry.snapshots() if s.spec.prompt == "invert and blur 2"]
    assert snapshot.spec.source_image_id == source.id
    assert snapshot.spec.quality == "low"
    assert snapshot.spec.provider == "local"
    assert not [s for s in services.registry.snapshots() if s.spec.prompt == "rotate 90"]
    final = await services.registry.wait(snapshot.id)
    assert final.stage is JobStage.COMPLETED
    assert final.result_image_id is not None
    assert services.store.get(final.result_image_id).prompt == "invert and blur 2"


async def test_retry_of_a_generation_keeps_its_size(user: User) -> None:
    services = app_services()
    old = uuid.uuid4().hex
    services.store.db.execute(
        *job_row(job_id=old, prompt="a red circle", kind="generate", size=(1280, 768), stage="cancelled")
    )
    await user.open("/history")
    user.find(marker=f"retry-{old}").click()
    user.find(marker="prompt").clear().type("a green square")
    user.find(marker="start").click()
    (snapshot,) = [s for s in services.registry.snapshots() if s.spec.prompt == "a green square"]
    assert snapshot.spec.size == (1280, 768)
    assert (await services.registry.wait(snapshot.id)).stage is JobStage.COMPLETED


async def test_retry_refuses_an_empty_prompt_and_keeps_the_dialog(user: User) -> None:
    services = app_services()
    old = uuid.uuid4().hex
    services.store.db.execute(*job_row(job_id=old, prompt="a red circle", kind="generate"))
    await user.open("/history")
    user.find(marker=f"retry-{old}").click()
    user.find(marker="prompt").clear()
    before = len(services.registry.snapshots())
    user.find(marker="start").click()
    assert len(services.registry.snapshots()) == before
    (field,) = user.find(marker="prompt").elements
    assert field.props.get("error") is True
    assert [d for d in user.find(ui.dialog).elements if d.value], "the dialog stays open"


async def test_delete_asks_then_removes_the_row(user: User) -> None:
    services = app_services()
    keep, gone = uuid.uuid4().hex, uuid.uuid4().hex
    services.store.db.execute_many(
        [
            job_row(job_id=keep, prompt="keep me", created_at=1),
            job_row(job_id=gone, prompt="drop me", created_at=2),
        ]
    )
    await user.open("/history")
    user.find(marker=f"delete-{gone}").click()
    await user.should_see("Delete this job from the history?")
    assert row_prompts(user) == ["drop me", "keep me"], "nothing goes before the answer"
    assert history.get(services.store.db, gone) is not None

    user.find(marker="history-confirm-delete").click()
    await eventually(lambda: row_prompts(user) == ["keep me"], message="the row to go")
    assert history.get(services.store.db, gone) is None
    assert history.get(services.store.db, keep) is not None
    await user.should_see("1 job")


async def test_ten_thousand_jobs_render_one_page(user: User) -> None:
    services = app_services()
    services.store.db.execute_many(job_row(prompt=f"job {i}", created_at=float(i)) for i in range(10_000))
    await user.open("/history")
    assert len(history_rows(user)) == 50, "only the first page is in the DOM"
    assert row_prompts(user)[0] == "job 9999"
    await user.should_see("50 of 10,000 jobs")
    user.find(marker="history-more").click()
    await eventually(lambda: len(history_rows(user)) == 100, message="the second page")
    prompts = row_prompts(user)
    assert len(set(prompts)) == 100 and prompts[50] == "job 9949"
    await user.should_see("100 of 10,000 jobs")


# -- lineage in the image dialog -----------------------------------------------------------------


async def chain_of_edits(store: ImageStore) -> list[Any]:
    original = await store.add(png(), origin=ImageOrigin.UPLOAD, name="original.png")
    chain = [original]
    for prompt in ("sepia", "blur 2", "rotate 90"):
        chain.append(await store.add(png(), origin=ImageOrigin.EDIT, prompt=prompt, parent_id=chain[-1].id))
    return chain


def open_image_dialogs(user: User) -> list[ui.dialog]:
    return [d for d in user.find(ui.dialog).elements if d.value]


async def test_lineage_shows_the_chain_and_opens_an_ancestor(user: User) -> None:
    services = app_services()
    original, first, second, third = await chain_of_edits(services.store)
    await user.open("/")
    user.find(marker=f"image-{third.id}").click()
    steps = marked(user, "lineage-step")
    assert [
        next(m for m in s._markers if m.startswith("lineage-") and m != "lineage-step") for s in steps
    ] == [
        f"lineage-{second.id}",
        f"lineage-{first.id}",
        f"lineage-{original.id}",
    ], "parent first, up to the original"
    thumbs = [e for s in steps for e in s.descendants() if e.tag == "img"]
    assert [t.props["src"] for t in thumbs] == [f"/media/thumbs/{i.id}" for i in (second, first, original)]
    await user.should_see("Made from")

    user.find(marker=f"lineage-{first.id}").click()
    (title,) = user.find(marker="image-title").elements
    assert title.text == "original.png — sepia", "an edit is titled by its source and its prompt"
    assert len(open_image_dialogs(user)) == 1
    assert [s for s in marked(user, "lineage-step")] and len(marked(user, "lineage-step")) == 1

    user.find(marker=f"lineage-{original.id}").click()
    assert title.text == "original.png"
    assert not marked(user, "lineage-step"), "the original has no lineage"


async def test_lineage_names_a_deleted_ancestor_without_a_link(user: User) -> None:
    services = app_services()
    _original, first, second, third = await chain_of_edits(services.store)
    await services.store.delete(first.id)
    await user.open("/")
    user.find(marker=f"image-{third.id}").click()
    assert [m for s in marked(user, "lineage-step") for m in s._markers if m.startswith("lineage-")] == [
        "lineage-step",
        f"lineage-{second.id}",
    ]
    (gone,) = marked(user, "lineage-deleted")
    assert not gone._event_listeners, "not clickable"
    await user.should_see("a deleted image")


async def test_history_result_thumbnail_opens_the_image_with_its_lineage(user: User) -> None:
    services = app_services()
    original, first, _second, _third = await chain_of_edits(services.store)
    services.store.db.execute(*job_row(prompt="sepia", source=original.id, result=first.id))
    await user.open("/history")
    user.find(marker=f"open-after-{first.id}").click()
    (title,) = user.find(marker="image-title").elements
    assert title.text == "original.png — sepia", "an edit is titled by its source and its prompt"
    assert marked(user, f"lineage-{original.id}")


# -- in a real browser ---------------------------------------------------------------------------


@pytest.mark.browser
def test_history_screenshot(tmp_path: Path) -> None:
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("headless Chromium not found")
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webelement import WebElement

    from tests.app_process import running_app
    from tests.test_browser import chrome, wait

    store = ImageStore(tmp_path / "data")
    store.open()
    colours = [(220, 80, 60), (60, 140, 220), (90, 200, 120), (230, 190, 60)]
    original = store.add_sync(png(colours[0]), origin=ImageOrigin.UPLOAD, name="harbour.png")
    edited = store.add_sync(png(colours[1]), origin=ImageOrigin.EDIT, prompt="sepia and a vignette")
    drawn = store.add_sync(
        png(colours[2]), origin=ImageOrigin.GENERATE, prompt="a red circle on a blue background"
    )
    rows = [
        job_row(
            prompt="sepia and a vignette", source=original.id, result=edited.id, created_at=1_700_000_000
        ),
        job_row(
            prompt="a red circle on a blue background",
            kind="generate",
            result=drawn.id,
            size=(1024, 1024),
            quality="high",
            created_at=1_700_000_100,
            duration=14.2,
        ),
        job_row(
            prompt='<img src=x onerror="alert(1)"> make it <b>pop</b>',
            source=original.id,
            stage="failed",
            provider="openai",
            error="OpenAI refused the request: check your API key.",
            created_at=1_700_000_200,
            duration=3.1,
        ),
        job_row(
            prompt="rotate 90 and pixelate 12", source="0" * 32, stage="cancelled", created_at=1_700_000_300
        ),
    ]
    store.db.execute_many(rows)
    store.db.execute(
        "UPDATE jobs SET failure_kind = 'sign_in', failure_provider = 'openai', failure_status = 401, "
        "failure_code = 'invalid_api_key' WHERE stage = 'failed'"
    )
    # A chain of edits for the lineage: harbour.png ← sepia and a vignette ← blur 4.
    blurred = store.add_sync(png(colours[3]), origin=ImageOrigin.EDIT, prompt="blur 4")
    store.db.execute("UPDATE images SET parent_id = ? WHERE id = ?", (original.id, edited.id))
    store.db.execute("UPDATE images SET parent_id = ? WHERE id = ?", (edited.id, blurred.id))
    store.close()

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with running_app(tmp_path) as url:
        driver = chrome()
        try:
            driver.get(url + "/history")
            wait(driver).until(
                lambda d: len(d.find_elements(By.CSS_SELECTOR, ".imgedit-history-row")) == 4 or None
            )
            wait(driver).until(
                lambda d: d.execute_script(
                    "return [...document.querySelectorAll('.imgedit-history-row img')]"
                    ".every(i => i.complete && i.naturalWidth > 0)"
                )
            )
            text = driver.find_element(By.CSS_SELECTOR, ".imgedit-history-list").text
            assert '<img src=x onerror="alert(1)"> make it <b>pop</b>' in text, "shown as text"
            assert not driver.find_elements(By.CSS_SELECTOR, ".imgedit-history-prompt b")
            assert "Key or password refused · HTTP 401 · invalid_api_key" in text, "the failure's structure"
            driver.save_screenshot(str(ARTIFACTS / "history.png"))

            # Retry opens the Edit form with the old prompt ready to edit (as text, not markup).
            driver.find_element(
                By.CSS_SELECTOR, ".imgedit-history-row[data-stage=failed] .imgedit-history-actions button"
            ).click()
            field = wait(driver).until(
                lambda d: next(
                    (e for e in d.find_elements(By.CSS_SELECTOR, ".q-dialog input") if e.is_displayed()), None
                )
            )
            assert field.get_attribute("value") == '<img src=x onerror="alert(1)"> make it <b>pop</b>'
            driver.save_screenshot(str(ARTIFACTS / "history-retry.png"))
            driver.find_element(By.XPATH, "//button[.//span[normalize-space()='Cancel']]").click()
            wait(driver).until(lambda d: not d.find_elements(By.CSS_SELECTOR, ".q-dialog"))

            # The search box asks the server once the typing pauses (Quasar's debounce).
            search = driver.find_element(By.CSS_SELECTOR, "input[aria-label='Search prompts and errors']")
            search.send_keys("vignette")
            wait(driver).until(
                lambda d: len(d.find_elements(By.CSS_SELECTOR, ".imgedit-history-row")) == 1 or None
            )
            assert (
                "sepia and a vignette" in driver.find_element(By.CSS_SELECTOR, ".imgedit-history-list").text
            )

            # In the gallery, an image's dialog shows the chain of edits it came from.
            driver.get(url + "/")
            wait(driver).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".imgedit-image-card"))
            card = next(
                c for c in driver.find_elements(By.CSS_SELECTOR, ".imgedit-image-card") if "blur 4" in c.text
            )
            card.click()
            expected = ["harbour.png — sepia and a vignette", "harbour.png"]

            def chain_shown(d: webdriver.Chrome) -> list[WebElement] | None:
                # The dialog fades in; wait until every step is drawn, not just the first.
                shown = [
                    s for s in d.find_elements(By.CSS_SELECTOR, ".imgedit-chain-step") if s.is_displayed()
                ]
                return shown if [s.text.split("\n")[0] for s in shown] == expected else None

            steps = wait(driver).until(chain_shown)
            driver.save_screenshot(str(ARTIFACTS / "lineage.png"))
            steps[1].click()
            wait(driver).until(
                lambda d: any(
                    t.text == "harbour.png" for t in d.find_elements(By.CSS_SELECTOR, ".q-dialog .text-h6")
                )
            )
        finally:
            driver.quit()


async def test_retry_from_history_fills_the_whole_form_and_keeps_variations(user: User) -> None:
    """The history's Retry opens the gallery's own form: every setting the job had, editable."""
    services = app_services()
    source = services.store.list()[0]
    job = services.studio.submit_edit(source.id, "sepia", Quality.LOW, "local", variations=3)
    assert (await services.registry.wait(job)).stage is JobStage.COMPLETED
    await services.journal.flush()
    await user.open("/history")
    await user.should_see("3 variations")  # in the row's settings line
    user.find(marker=f"retry-{job}").click()

    (prompt,) = user.find(marker="prompt").elements
    assert prompt.value == "sepia"
    (variations,) = user.find(marker="variations").elements
    assert variations.value == 3
    (quality,) = user.find(marker="quality").elements
    assert quality.value == "low"
    user.find(marker="prompt").clear().type("sepia and a vignette")
    user.find("Start Edit").click()

    (again,) = [s for s in services.registry.snapshots() if s.spec.prompt == "sepia and a vignette"]
    assert again.spec.variations == 3 and again.spec.source_image_id == source.id
    final = await services.registry.wait(again.id)
    assert final.stage is JobStage.COMPLETED and len(final.result_image_ids) == 3


async def test_retry_from_history_of_an_edit_whose_original_is_gone_says_so(user: User) -> None:
    services = app_services()
    old = uuid.uuid4().hex
    services.store.db.execute(
        *job_row(job_id=old, prompt="sepia", source="img-gone", stage="failed", error="x")
    )
    await user.open("/history")
    user.find(marker=f"retry-{old}").click()
    await user.should_see("The original image was deleted, so this edit cannot run again.")
    assert not [d for d in user.find(ui.dialog).elements if d.value], "no form to fill"
