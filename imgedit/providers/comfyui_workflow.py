"""ComfyUI workflows: API-format graphs whose marked nodes take imgedit's values.

A workflow is the JSON ComfyUI's "Export (API)" writes: ``{node_id: {class_type, inputs,
_meta: {title}}}``. imgedit finds its places by marks in a node's title (``_meta.title``):

    imgedit:image     LoadImage's ``image``: the uploaded source (its presence makes an edit workflow)
    imgedit:mask      LoadImageMask's ``image`` (channel "alpha"): the selected area, uploaded as a
                      PNG transparent where the edit applies, so the node's mask is 1 there; its
                      presence lets the workflow do region edits (edits everywhere without one)
    imgedit:prompt    the positive CLIPTextEncode's ``text``            (required)
    imgedit:output    the node whose output images are the result       (required)
    imgedit:negative  the negative CLIPTextEncode's ``text`` (the Advanced negative prompt)
    imgedit:seed      ``seed``          imgedit:steps   ``steps`` (by quality, or as given)
    imgedit:cfg       ``cfg`` (the Advanced guidance)
    imgedit:denoise   ``denoise`` (edits)   imgedit:size    ``width`` and ``height`` (generation)
    imgedit:batch     how many images one run makes: ``batch_size`` (EmptyLatentImage) or
                      ``amount`` (RepeatLatentBatch, RepeatImageBatch), whichever the node has;
                      without it, variations run the workflow once each (seed, seed + 1, ...)

One title may carry several marks (``KSampler imgedit:seed imgedit:steps``), and a mark may name
the input it fills when it is not the usual one (``imgedit:seed=noise_seed``). A workflow lacking
a required mark, with a mark on a node that has no such input, or not in the API format is
refused with a message naming the file and the mark (``WorkflowError``).

Owns ``Workflow``, ``WorkflowError``, ``load_workflows``. Reads files; sends nothing. Must not
import nicegui.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgedit.models import JobKind

SHIPPED = Path(__file__).with_name("comfyui_workflows")
"""The default workflows that come with imgedit: ``edit.json`` and ``generate.json``."""
DEFAULT_NAMES = {JobKind.EDIT: "edit", JobKind.GENERATE: "generate"}

_MARK = re.compile(r"imgedit:([A-Za-z_]+)(?:=([A-Za-z0-9_]+))?")
MARK_INPUTS: dict[str, tuple[str, ...]] = {
    "image": ("image",),
    "mask": ("image",),
    "prompt": ("text",),
    "negative": ("text",),
    "seed": ("seed",),
    "cfg": ("cfg",),
    "steps": ("steps",),
    "denoise": ("denoise",),
    "size": ("width", "height"),
    "batch": ("batch_size",),
    "output": (),
}
"""Each mark and the inputs it fills by default (``output`` fills nothing: it is read)."""
OTHER_INPUTS: dict[str, tuple[str, ...]] = {"batch": ("amount",)}
"""Inputs a mark fills on a node without its default one: the batch nodes call it ``amount``."""
ADVANCED_MARKS = {
    "negative_prompt": "negative",
    "seed": "seed",
    "steps": "steps",
    "guidance": "cfg",
    "strength": "denoise",
}
"""Each Advanced setting (``base.ADVANCED``) and the mark whose input it fills."""
REQUIRED: dict[JobKind, tuple[str, ...]] = {
    JobKind.EDIT: ("image", "prompt", "output"),
    JobKind.GENERATE: ("prompt", "output"),
}


class WorkflowError(ValueError):
    """A workflow file imgedit cannot use; the message names the file and what is wrong."""


@dataclass(frozen=True, slots=True)
class Mark:
    node: str
    inputs: tuple[str, ...]


@dataclass(frozen=True, kw_only=True, slots=True)
class Workflow:
    """One checked workflow. ``fill`` gives a copy ready for ``POST /prompt``.

    Usage: ``workflow.fill(prompt='a fox', seed=7, steps=20, image='imgedit-1.png')``
    """

    name: str
    kind: JobKind
    source: str
    """Where it came from (a path), for messages."""
    graph: Mapping[str, Any]
    marks: Mapping[str, Mark]

    @property
    def output_node(self) -> str:
        return self.marks["output"].node

    @property
    def takes_mask(self) -> bool:
        """It has an ``imgedit:mask``: a region edit can run on it."""
        return "mask" in self.marks

    @property
    def batches(self) -> bool:
        """It has an ``imgedit:batch``: one run makes every variation."""
        return "batch" in self.marks

    @property
    def sampler_node(self) -> str | None:
        """The node whose ``progress`` is the job's real progress: the one taking the steps (or seed)."""
        mark = self.marks.get("steps") or self.marks.get("seed")
        return mark.node if mark is not None else None

    @property
    def advanced(self) -> frozenset[str]:
        """The Advanced settings this workflow's marks take (``ADVANCED_MARKS``)."""
        return frozenset(name for name, mark in ADVANCED_MARKS.items() if mark in self.marks)

    def class_type(self, node: str) -> str:
        found = self.graph.get(node)
        return str(found.get("class_type")) if isinstance(found, dict) else "?"

    def fill(
        self,
        *,
        prompt: str,
        seed: int | None = None,
        steps: int | None = None,
        image: str | None = None,
        mask: str | None = None,
        denoise: float | None = None,
        size: tuple[int, int] | None = None,
        negative: str | None = None,
        cfg: float | None = None,
        batch: int | None = None,
    ) -> dict[str, Any]:
        """A deep copy with the marked inputs set; a value given for a mark the workflow lacks is
        dropped (the workflow's own value stays), except the image, which an edit needs, and the
        mask, which a region edit needs."""
        graph: dict[str, Any] = copy.deepcopy(dict(self.graph))
        values: dict[str, tuple[Any, ...] | None] = {
            "prompt": (prompt,),
            "seed": None if seed is None else (seed,),
            "steps": None if steps is None else (steps,),
            "image": None if image is None else (image,),
            "mask": None if mask is None else (mask,),
            "denoise": None if denoise is None else (denoise,),
            "size": size,
            "negative": None if negative is None else (negative,),
            "cfg": None if cfg is None else (cfg,),
            "batch": None if batch is None else (batch,),
        }
        if image is not None and "image" not in self.marks:
            raise WorkflowError(f"ComfyUI workflow {self.source} takes no image (no imgedit:image mark).")
        if mask is not None and not self.takes_mask:
            raise WorkflowError(
                f"ComfyUI workflow {self.source} takes no selected area (no imgedit:mask mark)."
            )
        for mark_name, given in values.items():
            mark = self.marks.get(mark_name)
            if mark is None or given is None:
                continue
            inputs = graph[mark.node]["inputs"]
            for input_name, value in zip(mark.inputs, given, strict=True):
                inputs[input_name] = value
        return graph


def parse_workflow(name: str, text: str, source: str) -> Workflow:
    """Check one workflow's JSON text; raise ``WorkflowError`` naming ``source`` if unusable."""
    try:
        graph = json.loads(text)
    except ValueError as exc:
        raise WorkflowError(f"ComfyUI workflow {source} is not valid JSON: {exc}") from None
    if isinstance(graph, dict) and "nodes" in graph and "links" in graph:
        raise WorkflowError(
            f"ComfyUI workflow {source} is a saved workflow, not the API format: "
            "open it in ComfyUI and use Workflow → Export (API)."
        )
    if not isinstance(graph, dict) or not graph:
        raise WorkflowError(
            f"ComfyUI workflow {source} is not an API-format workflow (a JSON object of nodes)."
        )
    marks: dict[str, Mark] = {}
    for node_id, node in graph.items():
        if not isinstance(node, dict) or not isinstance(node.get("class_type"), str):
            raise WorkflowError(f"ComfyUI workflow {source}: node {node_id} has no class_type.")
        inputs = node.get("inputs")
        if not isinstance(inputs, dict):
            raise WorkflowError(f"ComfyUI workflow {source}: node {node_id} has no inputs.")
        meta = node.get("_meta")
        title = meta.get("title") if isinstance(meta, dict) else None
        for found in _MARK.finditer(title if isinstance(title, str) else ""):
            mark_name, named_input = found[1], found[2]
            where = f"node {node_id} ({node['class_type']})"
            if mark_name not in MARK_INPUTS:
                known = ", ".join(f"imgedit:{m}" for m in MARK_INPUTS)
                raise WorkflowError(
                    f"ComfyUI workflow {source}: {where} has an unknown mark imgedit:{mark_name} (known: {known})."
                )
            if mark_name in marks:
                raise WorkflowError(
                    f"ComfyUI workflow {source}: imgedit:{mark_name} marks both node "
                    f"{marks[mark_name].node} and node {node_id}; mark one."
                )
            wanted = (named_input,) if named_input else _default_inputs(mark_name, inputs)
            if mark_name == "size" and named_input:
                raise WorkflowError(
                    f"ComfyUI workflow {source}: imgedit:size names no input (it sets width and height)."
                )
            for input_name in wanted:
                if input_name not in inputs:
                    raise WorkflowError(
                        f"ComfyUI workflow {source}: imgedit:{mark_name} is on {where}, "
                        f"which has no input “{input_name}”."
                    )
                if isinstance(inputs[input_name], list):
                    raise WorkflowError(
                        f"ComfyUI workflow {source}: imgedit:{mark_name} is on {where}, whose "
                        f"“{input_name}” comes from another node; mark that node instead."
                    )
            marks[mark_name] = Mark(str(node_id), wanted)
    kind = JobKind.EDIT if "image" in marks else JobKind.GENERATE
    if "mask" in marks:
        _check_mask_node(graph, marks["mask"], "image" in marks, source)
    for required in REQUIRED[kind]:
        if required not in marks:
            raise WorkflowError(
                f"ComfyUI workflow {source} lacks the mark imgedit:{required}: put it in the title "
                f"(_meta.title) of the node {_what(required)}."
            )
    return Workflow(name=name, kind=kind, source=source, graph=graph, marks=marks)


def _default_inputs(mark: str, inputs: Mapping[str, Any]) -> tuple[str, ...]:
    """The inputs ``mark`` fills on a node with ``inputs`` when the mark names none."""
    usual = MARK_INPUTS[mark]
    for other in OTHER_INPUTS.get(mark, ()):
        if other in inputs and not all(name in inputs for name in usual):
            return (other,)
    return usual


def _check_mask_node(graph: Mapping[str, Any], mark: Mark, edits: bool, source: str) -> None:
    """An ``imgedit:mask`` belongs in an edit workflow, and a LoadImageMask carrying it must read
    the alpha channel: the uploaded mask's colour is black everywhere."""
    if not edits:
        raise WorkflowError(
            f"ComfyUI workflow {source} has imgedit:mask but no imgedit:image: a selected area "
            "needs the image it belongs to."
        )
    node = graph[mark.node]
    channel = node["inputs"].get("channel")
    if node["class_type"] == "LoadImageMask" and isinstance(channel, str) and channel != "alpha":
        raise WorkflowError(
            f"ComfyUI workflow {source}: imgedit:mask is on node {mark.node} (LoadImageMask), which "
            f"reads the {channel} channel; set its channel to alpha (transparent = the area to change)."
        )


def _what(mark: str) -> str:
    return {
        "prompt": "that encodes the prompt (the positive CLIPTextEncode)",
        "output": "whose images are the result (SaveImage)",
        "image": "that loads the source image (LoadImage)",
    }.get(mark, "it belongs on")


def load_workflow(path: Path) -> Workflow:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkflowError(f"ComfyUI workflow {path} cannot be read: {exc}") from None
    return parse_workflow(path.stem, text, str(path))


def load_workflows(folder: Path | None = None) -> dict[str, Workflow]:
    """The shipped workflows, then every ``*.json`` in ``folder`` (a file named like a shipped one
    replaces it). Runs at start-up, before the server accepts anyone: it reads files directly."""
    workflows = {path.stem: load_workflow(path) for path in sorted(SHIPPED.glob("*.json"))}
    if folder is not None:
        if not folder.is_dir():
            raise WorkflowError(f"IMGEDIT_COMFYUI_WORKFLOWS: {folder} is not a folder.")
        for path in sorted(folder.glob("*.json")):
            workflows[path.stem] = load_workflow(path)
    return workflows
