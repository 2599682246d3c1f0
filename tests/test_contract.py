"""The contract crosses typed both ways: no dict read by key between the engine, storage and the bot.

A job goes in as a `JobSpec`; a track comes back as `TrackMeta`, `ModelInfo`, `Plan` and `Edit`
(`storage/contract/results.py`, `storage/contract/spec.py`). Two checks hold that: the values that cross carry those
types, not dicts, and no module of the bot or the engine reads one of them with a string key
(`track.meta["bpm"]`, `request.plan.get("audio_codes")`, `plan["caption"]`).
"""

from __future__ import annotations

import ast
import typing

from engine.protocol import GeneratedTrack, TrackRequest
from storage.contract.results import ModelInfo, TrackMeta
from storage.contract.spec import Edit, JobSpec, Plan
from storage.contract.types import NewTrack, TrackView
from tests.helpers import REPO

# Attributes that hold a result or the spec wherever they are read (`x.meta`, `request.plan`, ...).
CROSSING_ATTRIBUTES = {"meta", "metadata", "plan", "model", "edit", "spec"}
# Local names that hold one (`plan = track.plan`). In the engine `meta` is left out: there it is also
# the LM's parsed YAML, a dict of its own before it becomes a `Plan`.
CROSSING_NAMES = {"plan", "plans", "edit", "spec", "reading"}
PACKAGES = {"bot": CROSSING_NAMES | {"meta"}, "engine": CROSSING_NAMES}


def _crossing(node: ast.expr, names: set[str]) -> bool:
    """Whether an expression names a result or the spec."""
    while isinstance(node, ast.Subscript):  # plans[0]["caption"]
        node = node.value
    if isinstance(node, ast.Attribute):
        return node.attr in CROSSING_ATTRIBUTES
    return isinstance(node, ast.Name) and node.id in names


def _is_text(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)


def keyed_reads(source: str, filename: str = "<source>", names: set[str] = CROSSING_NAMES) -> list[str]:
    """Every `x.plan["key"]`, `x.meta.get("key")` and the like in `source`, as `line: text`."""
    found = []
    for node in ast.walk(ast.parse(source, filename=filename)):
        if (isinstance(node, ast.Subscript) and _is_text(node.slice) and _crossing(node.value, names)) or (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("get", "pop", "setdefault")
            and node.args
            and _is_text(node.args[0])
            and _crossing(node.func.value, names)
        ):
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def test_the_bot_and_the_engine_read_no_result_by_key():
    violations = []
    for package, names in PACKAGES.items():
        for path in sorted((REPO / package).rglob("*.py")):
            reads = keyed_reads(path.read_text(), str(path), names)
            violations += [f"{path.relative_to(REPO)}:{read}" for read in reads]
    assert violations == []


def test_the_check_sees_a_keyed_read():
    sneaky = """
def caption(track, request, plan):
    a = track.meta["bpm"]
    b = request.plan.get("audio_codes")
    c = plan["caption"]
    d = track.edit["start_s"]
    e = result.metadata.get("key")
    return track.meta.bpm, request.plan.audio_codes, parsed["bpm"], meta["bpm"]
"""
    assert [line.split(":")[0] for line in keyed_reads(sneaky)] == ["3", "4", "5", "6", "7"]
    assert [line.split(":")[0] for line in keyed_reads(sneaky, names=PACKAGES["bot"])] == ["3", "4", "5", "6", "7", "8"]


def _hints(kind: type) -> dict[str, object]:
    return typing.get_type_hints(kind)


def test_the_values_that_cross_carry_the_typed_results():
    for kind in (GeneratedTrack,):
        hints = _hints(kind)
        assert (hints["metadata"], hints["model"], hints["plan"]) == (TrackMeta, ModelInfo, Plan | None)
    for kind in (NewTrack, TrackView):
        hints = _hints(kind)
        assert (hints["meta"], hints["model"], hints["plan"]) == (TrackMeta, ModelInfo, Plan | None)
    assert _hints(TrackView)["edit"] == Edit | None
    assert _hints(TrackRequest)["spec"] is JobSpec
    assert issubclass(Plan, TrackMeta)  # one set of names for the metadata, the spec's own:
    assert {"key", "time_signature", "duration_s"} <= set(TrackMeta.model_fields) & set(JobSpec.model_fields)


def test_the_request_copies_no_field_of_the_spec():
    # TrackRequest carries the spec; a field of the spec declared on it again would be a second copy.
    copied = set(_hints(TrackRequest)) & set(JobSpec.model_fields)
    assert copied == set()


def test_constants_have_one_home():
    import storage.contract.values
    import storage.media.audio
    from engine.acestep import config, edit, pipeline

    assert storage.media.audio.SAMPLE_RATE is storage.contract.values.SAMPLE_RATE
    assert edit.FRAMES_PER_SECOND is pipeline.FRAMES_PER_SECOND is config.FRAMES_PER_SECOND
    for path in (REPO / "storage" / "media" / "audio.py", REPO / "engine" / "acestep" / "pipeline.py"):
        assigned = [
            target.id
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.Assign)
            for target in node.targets
            if isinstance(target, ast.Name)
        ]
        assert "SAMPLE_RATE" not in assigned and "FRAMES_PER_SECOND" not in assigned, path


def test_the_lm_value_sets_are_the_specs():
    from engine.acestep.lm import values
    from storage.contract import values as spec_values

    assert set(values.LANGUAGES) == spec_values.LANGUAGES | {"unknown"}
    assert set(values.KEYSCALES) > spec_values.KEYS and set(values.TIME_SIGNATURES) == spec_values.TIME_SIGNATURES
    assert values.BPM_RANGE == (spec_values.BPM_MIN, spec_values.BPM_MAX)
    assert values.DURATION_MIN == spec_values.MIN_DURATION_S
