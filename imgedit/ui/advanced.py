"""The dialogs' Advanced settings, folded by default: negative prompt, seed (random or fixed),
steps, guidance and strength, each shown only for a provider that takes it
(``Capabilities.advanced``). The values go to ``Studio`` as ``editing.Advanced``, which checks
them; user text reaches elements as values, never through a parsed props string."""

from __future__ import annotations

from nicegui import ui

from imgedit.editing import ADVANCED_RANGES, Advanced, number_text
from imgedit.jobs import JobSpec
from imgedit.models import JobKind
from imgedit.providers.base import Provider


class AdvancedSettings:
    """One expansion in a dialog; ``show_for`` follows the chosen provider, ``value`` reads it."""

    def __init__(self) -> None:
        self._takes: frozenset[str] = frozenset()
        with (
            ui.expansion("Advanced settings", icon="tune", value=False)
            .classes("w-full imgedit-advanced")
            .props("dense")
            .mark("advanced") as self.panel
        ):
            self.negative = (
                ui.input(label="Negative prompt (what the picture should not show)")
                .props("outlined dense clearable color=ie-accent")
                .classes("w-full")
                .mark("negative-prompt")
            )
            with ui.row().classes("w-full no-wrap items-center gap-3") as self.seed_row:
                self.random_seed = (
                    ui.switch("Random seed", value=True, on_change=self._seed_mode)
                    .props("color=ie-accent")
                    .mark("random-seed")
                )
                self.seed = self._number("Seed", "seed", ADVANCED_RANGES["seed"], 1, 0)
            with ui.row().classes("w-full no-wrap gap-3 imgedit-field-row") as self.numbers:
                self.steps = self._number("Steps", "steps", ADVANCED_RANGES["steps"], 1, 0)
                self.guidance = self._number(
                    "Guidance (CFG)", "guidance", ADVANCED_RANGES["guidance"], 0.5, 1
                )
                self.strength = self._number("Strength", "strength", ADVANCED_RANGES["strength"], 0.05, 2)
            self.note = ui.label("Empty fields keep the provider's defaults.").classes("imgedit-hint")
        self._seed_mode()

    @staticmethod
    def _number(
        label: str, marker: str, bounds: tuple[float, float], step: float, decimals: int
    ) -> ui.number:
        low, high = bounds
        field = (
            ui.number(label=label, min=low, max=high, step=step, precision=decimals)
            .props("outlined dense clearable color=ie-accent")
            .classes("grow")
            .mark(marker)
        )
        field.props["hint"] = f"{number_text(low)} to {number_text(high)}"
        return field

    def _seed_mode(self) -> None:
        fixed = not self.random_seed.value
        self.seed.set_enabled(fixed)
        if not fixed:
            self.seed.set_value(None)

    def reset(self) -> None:
        """A fresh open: every field empty, a random seed, folded."""
        self.panel.set_value(False)
        self.negative.set_value("")
        for field in (self.steps, self.guidance, self.strength):
            field.set_value(None)
        self.random_seed.set_value(True)
        self._seed_mode()

    def fill(self, spec: JobSpec) -> None:
        """An earlier job's settings (Retry); its seed is not reused: a retry draws anew."""
        self.negative.set_value(spec.negative_prompt)
        self.steps.set_value(spec.steps)
        self.guidance.set_value(spec.guidance)
        self.strength.set_value(spec.strength)
        if spec.negative_prompt or spec.steps or spec.guidance or spec.strength:
            self.panel.set_value(True)

    def show_for(self, provider: Provider, kind: JobKind) -> None:
        """Only the settings ``provider`` takes for ``kind``; none at all hides the panel."""
        takes = set(provider.capabilities.advanced)
        if kind is not JobKind.EDIT:
            takes.discard("strength")
        self._takes = frozenset(takes)
        self.panel.set_visibility(bool(takes))
        self.negative.set_visibility("negative_prompt" in takes)
        self.seed_row.set_visibility("seed" in takes)
        self.steps.set_visibility("steps" in takes)
        self.guidance.set_visibility("guidance" in takes)
        self.strength.set_visibility("strength" in takes)
        self.numbers.set_visibility(bool(takes & {"steps", "guidance", "strength"}))

    def value(self) -> Advanced:
        """What is set, for the settings the provider takes (the others are left out)."""
        takes = self._takes

        def number(field: ui.number, name: str) -> float | None:
            raw = field.value
            return float(raw) if name in takes and raw not in (None, "") else None

        seed = number(self.seed, "seed") if not self.random_seed.value else None
        steps = number(self.steps, "steps")
        return Advanced(
            negative_prompt=str(self.negative.value or "") if "negative_prompt" in takes else "",
            seed=int(seed) if seed is not None else None,
            steps=int(steps) if steps is not None else None,
            guidance=number(self.guidance, "guidance"),
            strength=number(self.strength, "strength"),
        )
