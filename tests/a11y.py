"""Accessibility probes for the browser tests (issue 8, WCAG 2.2 AA): axe-core, the colour scheme,
the focused element's accessible name and whether its focus can be seen.

Usage::

    emulate_color_scheme(driver, "light")
    report = blocking(run_axe(driver))
    assert not report, describe(report)

axe-core comes from the ``selenium-axe-python`` wheel pinned in requirements-dev.txt (its
``axe.min.js``; the package's own Python wrapper is not used). Nothing here clicks or changes the
page: scripts only read it, or ask Chromium (CDP) what it exposes to assistive technology.
"""

from __future__ import annotations

import importlib.resources
from functools import cache
from typing import Any, Literal

from selenium import webdriver

BLOCKING_IMPACTS = frozenset({"serious", "critical"})
WCAG_TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice")


@cache
def axe_source() -> str:
    """axe-core's browser bundle, as shipped inside the pinned wheel."""
    bundle = importlib.resources.files("selenium_axe_python") / "axe-core" / "axe.min.js"
    return bundle.read_text(encoding="utf-8")


def run_axe(driver: webdriver.Chrome, context: object = None) -> list[dict[str, Any]]:
    """axe-core's violations for the page as shown now (``context``: a CSS selector or include /
    exclude object; the whole document by default)."""
    if not driver.execute_script("return !!window.axe"):
        driver.execute_script(axe_source())
    driver.set_script_timeout(60)
    outcome = driver.execute_async_script(
        """
        const [context, tags, done] = arguments;
        axe.run(context || document, {runOnly: {type: 'tag', values: tags}, resultTypes: ['violations']})
          .then((r) => done({violations: r.violations, version: r.testEngine.version}))
          .catch((e) => done({error: String(e)}));
        """,
        context,
        list(WCAG_TAGS),
    )
    if "error" in outcome:
        raise AssertionError(f"axe.run failed: {outcome['error']}")
    return list(outcome["violations"])


def blocking(violations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The violations that block someone: impact serious or critical."""
    return [v for v in violations if v.get("impact") in BLOCKING_IMPACTS]


def describe(violations: list[dict[str, Any]], where: str = "") -> str:
    """One paragraph per violation: id, impact, help, and each failing node's selector and why."""
    lines = [f"{len(violations)} serious/critical axe violation(s){' on ' + where if where else ''}:"]
    for violation in violations:
        lines.append(
            f"- {violation['id']} ({violation['impact']}): {violation['help']} <{violation['helpUrl']}>"
        )
        for node in violation["nodes"]:
            target = " ".join(" >> ".join(t) if isinstance(t, list) else str(t) for t in node["target"])
            summary = " ".join((node.get("failureSummary") or "").split())
            html = " ".join(str(node.get("html", "")).split())[:240]
            lines.append(f"    {target}\n        {html}\n        {summary[:300]}")
    return "\n".join(lines)


def emulate_color_scheme(driver: webdriver.Chrome, scheme: Literal["light", "dark"]) -> None:
    """Tell the page the system prefers ``scheme`` (what ``prefers-color-scheme`` matches)."""
    driver.execute_cdp_cmd(
        "Emulation.setEmulatedMedia",
        {"media": "", "features": [{"name": "prefers-color-scheme", "value": scheme}]},
    )


def focused_ax_node(driver: webdriver.Chrome) -> dict[str, str]:
    """Role and accessible name of ``document.activeElement`` as Chromium exposes them to
    assistive technology (its accessibility tree, not the DOM attributes)."""
    handle = driver.execute_cdp_cmd("Runtime.evaluate", {"expression": "document.activeElement"})
    object_id = handle["result"]["objectId"]
    try:
        tree = driver.execute_cdp_cmd(
            "Accessibility.getPartialAXTree", {"objectId": object_id, "fetchRelatives": False}
        )
    finally:
        driver.execute_cdp_cmd("Runtime.releaseObject", {"objectId": object_id})
    node = next((n for n in tree["nodes"] if not n.get("ignored")), tree["nodes"][0])
    return {
        "role": str(node.get("role", {}).get("value", "")),
        "name": str(node.get("name", {}).get("value", "")).strip(),
    }


FOCUS_INDICATOR = """
const el = document.activeElement;
if (!el || el === document.body) return null;
// A container focused by script (a dialog on open) is no Tab stop and needs no ring.
if (el.getAttribute('tabindex') === '-1') return 'programmatic focus target';
const shows = (s) => (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0)
  || (s.boxShadow && s.boxShadow !== 'none');
if (shows(getComputedStyle(el))) return 'outline or box-shadow on the element';
// A Quasar text field draws focus on its control around the <input>: a thicker, coloured border.
const control = el.closest('.q-field--focused')?.querySelector('.q-field__control');
if (control) {
  if (shows(getComputedStyle(control))) return 'outline or box-shadow on the field';
  const after = getComputedStyle(control, '::after');
  if (parseFloat(after.borderTopWidth) >= 2 && after.borderTopStyle !== 'none') return 'field border';
}
return '';
"""


def focus_indicator(driver: webdriver.Chrome) -> str | None:
    """How the focused element shows its focus ('' if it does not; None if focus is on <body>)."""
    return driver.execute_script(FOCUS_INDICATOR)


def describe_focus(driver: webdriver.Chrome) -> str:
    """The focused element in a line, for assertion messages."""
    return str(
        driver.execute_script(
            """
            const e = document.activeElement;
            if (!e) return 'nothing';
            const label = e.getAttribute('aria-label');
            // Quasar's own utility classes say little about which control this is.
            const classes = Array.from(e.classList)
              .filter((c) => !/^(q-|non-selectable|no-outline|text-|bg-|row|col|flex|fixed|items-)/.test(c));
            const text = (e.innerText || e.value || '').replace(/\\s+/g, ' ').trim().slice(0, 60);
            return `<${e.tagName.toLowerCase()} class="${classes.join(' ')}"${label ? ` aria-label="${label}"` : ''}> ${text}`;
            """
        )
    )
