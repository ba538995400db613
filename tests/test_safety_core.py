"""Core safety nets of issue 6: the stall watchdog, secret redaction, job log lines, and the
one parser for every setting (flags and environment alike)."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from imgedit.config import Settings, unknown_variables
from imgedit.editing import clean_text
from imgedit.eta import DurationModel
from imgedit.jobs import JobRegistry, JobStage
from imgedit.models import Quality
from imgedit.redact import MASK, Redactor, install_log_redaction
from tests.test_jobs import PRIORS, FakeClock, Scripted, spec

ROOT = Path(__file__).resolve().parents[1]

# -- the watchdog ------------------------------------------------------------------------------


class ManualSleep:
    """An injected sleep that returns only when the test lets it."""

    def __init__(self) -> None:
        self.calls: list[float] = []
        self._wake = asyncio.Event()

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        await self._wake.wait()
        self._wake.clear()

    def wake(self) -> None:
        self._wake.set()


async def test_a_job_whose_provider_goes_silent_is_failed_with_a_reason() -> None:
    clock, sleep = FakeClock(100.0), ManualSleep()
    registry = JobRegistry(
        max_concurrent=2, durations=DurationModel(PRIORS), clock=clock.now, stall_timeout=60.0, sleep=sleep
    )
    silent, chatty = Scripted(), Scripted()
    try:
        silent_id = registry.submit(spec(provider="sdwebui"), silent)
        chatty_id = registry.submit(spec(), chatty)
        await asyncio.wait_for(asyncio.gather(silent.started.wait(), chatty.started.wait()), 5)
        await silent.stage(JobStage.PROCESSING)
        await chatty.stage(JobStage.PROCESSING)

        clock.advance(45)
        await chatty.progress(0.5)  # the chatty one keeps talking; the silent one says nothing
        clock.advance(20)
        sleep.wake()
        final = await asyncio.wait_for(registry.wait(silent_id), 5)

        assert final.stage is JobStage.FAILED
        assert final.error is not None and "no word from sdwebui for 65.0 s" in final.error
        assert silent.cancelled, "the provider call itself was stopped"
        assert registry.snapshot(chatty_id).stage is JobStage.PROCESSING
        assert sleep.calls and sleep.calls[0] == 5.0
    finally:
        await registry.shutdown()


async def test_without_a_stall_timeout_a_silent_job_runs_on() -> None:
    clock = FakeClock(0.0)
    registry = JobRegistry(max_concurrent=1, durations=DurationModel(PRIORS), clock=clock.now)
    work = Scripted()
    try:
        job_id = registry.submit(spec(), work)
        await asyncio.wait_for(work.started.wait(), 5)
        clock.advance(10_000)
        assert registry.check_stalled() == []
        assert registry.snapshot(job_id).stage is JobStage.INITIALIZING
    finally:
        await registry.shutdown()


def test_a_stall_timeout_must_be_a_finite_positive_number() -> None:
    for bad in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError):
            JobRegistry(max_concurrent=1, durations=DurationModel(PRIORS), stall_timeout=bad)


# -- redaction -----------------------------------------------------------------------------------

KEY = "sk-proj-MARKER0123456789abcdef"


def test_the_redactor_blanks_keys_passwords_and_url_credentials() -> None:
    settings = Settings.from_args(
        [],
        {
            "OPENAI_API_KEY": KEY,
            "OPENAI_BASE_URL": "http://proxyuser:pr0xy-pass@proxy.example/v1",
            "IMGEDIT_SDWEBUI_URLS": "http://gpu:url-secret%21@gpu-box:7860",
            "IMGEDIT_SDWEBUI_AUTH": "alice:auth-secret",
            "IMGEDIT_COMFYUI_URLS": "http://comfy:comfy-secret@comfy-box:8188",
        },
    )
    redact = Redactor.from_settings(settings)
    text = (
        f"Incorrect API key provided: {KEY}. auth-secret pr0xy-pass url-secret! comfy-secret "
        "see http://someone:hunter22@elsewhere.example/x"
    )
    cleaned = redact(text)
    for secret in (KEY, "auth-secret", "pr0xy-pass", "url-secret!", "hunter22", "comfy-secret"):
        assert secret not in cleaned
    assert cleaned.count(MASK) == 6
    assert "elsewhere.example/x" in cleaned


async def test_a_key_echoed_in_an_error_never_reaches_the_snapshot_or_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    install_log_redaction(Redactor([KEY]))
    registry = JobRegistry(max_concurrent=1, durations=DurationModel(PRIORS), redact=Redactor([KEY]))
    work = Scripted()
    try:
        with caplog.at_level(logging.INFO):
            job_id = registry.submit(spec(provider="openai"), work)
            await asyncio.wait_for(work.started.wait(), 5)
            await work.stage(JobStage.PROCESSING)
            from imgedit.errors import ProviderAuthFailed

            await work.fail(ProviderAuthFailed(f"Incorrect API key provided: {KEY}. Check your key."))
            final = await registry.wait(job_id)
            logging.getLogger("httpx").warning("GET http://u:%s@host/v1 failed: %s", "pw-secret-1", KEY)
    finally:
        await registry.shutdown()
        install_log_redaction(Redactor())
    assert final.stage is JobStage.FAILED
    assert final.error == f"Incorrect API key provided: {MASK}. Check your key."
    assert KEY not in caplog.text and "pw-secret-1" not in caplog.text
    assert f"openai ({final.error})" in caplog.text, "the finished line carries the redacted reason"


# -- log lines ------------------------------------------------------------------------------------


async def test_each_job_logs_one_line_when_submitted_and_one_when_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = FakeClock(0.0)
    registry = JobRegistry(max_concurrent=1, durations=DurationModel(PRIORS), clock=clock.now)
    work = Scripted()
    with caplog.at_level(logging.INFO, logger="imgedit.jobs"):
        job_id = registry.submit(spec(quality=Quality.HIGH), work)
        await asyncio.wait_for(work.started.wait(), 5)
        clock.advance(2.5)
        await work.finish(None)
        await registry.wait(job_id)
    lines = [r.getMessage() for r in caplog.records if r.name == "imgedit.jobs"]
    assert lines == [
        f"job {job_id} submitted: edit, high quality, via local (attempt 1)",
        f"job {job_id} completed after 2.5 s: edit via local",
    ]
    await registry.shutdown()


def test_the_app_keeps_library_chatter_at_warning() -> None:
    code = (
        "import logging, main; main.configure_logging(); "
        "print(*(logging.getLogger(n).getEffectiveLevel() for n in ('httpx', 'httpcore', 'imgedit')))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [str(logging.WARNING), str(logging.WARNING), str(logging.INFO)]


# -- settings ---------------------------------------------------------------------------------------


def run_main(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v for k, v in os.environ.items() if not k.startswith(("IMGEDIT_", "OPENAI_", "PYTEST", "NICEGUI"))
    }
    return subprocess.run(
        [sys.executable, "main.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        ((), {"IMGEDIT_PORT": "abc"}, "IMGEDIT_PORT: 'abc' is not a whole number"),
        (("--port", "99999"), {}, "argument --port: 99999 is out of range (expected from 1 to 65535)"),
        ((), {"IMGEDIT_MAX_CONCURRENT": "0"}, "IMGEDIT_MAX_CONCURRENT: 0 is out of range"),
        ((), {"IMGEDIT_STALL_TIMEOUT": "inf"}, "IMGEDIT_STALL_TIMEOUT: 'inf' is out of range"),
        ((), {"IMGEDIT_NO_SHOW": "maybe"}, "IMGEDIT_NO_SHOW: 'maybe' is not one of 1/0, true/false"),
        ((), {"IMGEDIT_SAMPLES": "nope"}, "IMGEDIT_SAMPLES: 'nope' is not one of"),
        (
            (),
            {"IMGEDIT_OPENAI_PARTIAL_IMAGES": "lots"},
            "IMGEDIT_OPENAI_PARTIAL_IMAGES: 'lots' is not a whole",
        ),
        ((), {"OPENAI_BASE_URL": "proxy.example"}, "OPENAI_BASE_URL: expected a URL starting with http"),
    ],
)
def test_a_bad_setting_stops_with_a_usage_message_not_a_traceback(
    args: tuple[str, ...], env: dict[str, str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stopped:
        Settings.from_args(list(args), env)
    assert stopped.value.code == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("usage: python main.py")
    assert f"python main.py: error: {message}" in stderr


def test_main_py_itself_answers_a_bad_setting_with_the_usage_message() -> None:
    result = run_main(IMGEDIT_PORT="abc")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("usage: python main.py")
    assert "python main.py: error: IMGEDIT_PORT: 'abc' is not a whole number" in result.stderr


def test_booleans_read_the_same_everywhere() -> None:
    for word, shown in [
        ("1", False),
        ("true", False),
        ("YES", False),
        ("on", False),
        ("0", True),
        ("off", True),
    ]:
        assert Settings.from_args([], {"IMGEDIT_NO_SHOW": word}).show is shown
    for word, samples in [("0", False), ("false", False), ("no", False), ("1", True), ("On", True)]:
        assert Settings.from_args([], {"IMGEDIT_SAMPLES": word}).samples is samples
    assert Settings.from_args(["--no-show"], {"IMGEDIT_NO_SHOW": "0"}).show is False, "flags win"


def test_flags_win_over_the_environment_and_lists_are_split() -> None:
    settings = Settings.from_args(
        ["--port", "9000", "--allowed-hosts", "Photos.example, gallery.lan"],
        {
            "IMGEDIT_PORT": "8000",
            "IMGEDIT_SDWEBUI_URLS": "http://a:7860/, http://b:7860",
            "IMGEDIT_MAX_ATTEMPTS": "5",
        },
    )
    assert settings.port == 9000
    assert settings.allowed_hosts == ("photos.example", "gallery.lan")
    assert settings.providers["sdwebui"]["urls"] == ("http://a:7860", "http://b:7860")
    assert settings.max_attempts == 5


def test_settings_that_had_no_effect_are_gone_and_named_when_set() -> None:
    assert unknown_variables({"IMGEDIT_ETA_LOW": "inf", "IMGEDIT_PORT": "1", "HOME": "/"}) == [
        "IMGEDIT_ETA_LOW"
    ]
    result = run_main("--port", "notaport", IMGEDIT_ETA_LOW="3")
    assert result.returncode == 2  # stops on the port; nothing below needs a server


def test_control_characters_are_dropped_from_user_text_and_the_rest_kept() -> None:
    assert (
        clean_text("a\x00b\tc\n\x07d \u200fשלום 👍🏽 C:\\x1 <b>x</b>")
        == "a b c d \u200fשלום 👍🏽 C:\\x1 <b>x</b>"
    )
    assert clean_text("\ud800lone") == "lone"
