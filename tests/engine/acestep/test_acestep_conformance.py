"""Our DiT against the official implementation's golden tensors (the conformance kit).

Every case in the kit's ``cases.json`` runs, dispatched on ``call.method``; an unknown method
fails. The kit is found in ``$ACESTEP_CONFORMANCE_DIR`` or, by default, the copy in
``tests/data/conformance/acestep_dit``. Select with ``pytest -k conformance``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from engine.acestep.decoder import DecoderTrace
from engine.acestep.model import AceStepDiT, load_dit
from engine.acestep.sampler import Phase, SamplerTrace, cover_phase_plan, sample, turbo_timesteps
from tests.helpers import DIT_KIT

KIT = DIT_KIT
Tensors = dict[str, torch.Tensor]


def _spec() -> dict[str, Any] | None:
    path = KIT / "cases.json"
    return json.loads(path.read_text()) if path.is_file() else None


SPEC = _spec()
CASES = sorted(SPEC["cases"]) if SPEC else ["<kit missing>"]


@pytest.fixture(scope="module")
def model() -> AceStepDiT:
    assert SPEC is not None, f"conformance kit not found at {KIT} (set ACESTEP_CONFORMANCE_DIR)"
    return load_dit(KIT, "cpu", torch.float32)


def _kwargs(call: dict[str, Any], tensors: Tensors) -> dict[str, Any]:
    """Resolve the kit's kwarg → tensor-name mapping; non-string values are scalars."""
    return {k: tensors[v] if isinstance(v, str) and v in tensors else v for k, v in call["kwargs"].items()}


def run_prepare_condition(model: AceStepDiT, call: dict[str, Any], tensors: Tensors) -> Tensors:
    """``prepare_condition`` plus the debug intermediates the kit lists."""
    kw = _kwargs(call, tensors)
    cond = model.prepare_condition(**kw)
    timbre, timbre_mask = model.encoder.timbre_encoder(
        kw["refer_audio_acoustic_hidden_states_packed"], kw["refer_audio_order_mask"]
    )
    hints = model.detokenize(model.tokenize(kw["hidden_states"], kw["silence_latent"], kw["attention_mask"])[0])
    return {
        "encoder_hidden_states": cond.encoder_states,
        "encoder_attention_mask": cond.encoder_mask,
        "context_latents": cond.context,
        "debug.text_projected": model.encoder.text_projector(kw["text_hidden_states"]),
        "debug.lyric_encoded": model.encoder.lyric_encoder(kw["lyric_hidden_states"], kw["lyric_attention_mask"]),
        "debug.timbre_embs": timbre,
        "debug.timbre_mask": timbre_mask,
        "debug.lm_hints_25Hz": hints[:, : kw["src_latents"].shape[1]],
    }


def run_decoder_forward(model: AceStepDiT, call: dict[str, Any], tensors: Tensors) -> Tensors:
    """One velocity prediction with upstream's semantics: both masks are ignored."""
    kw = _kwargs(call, tensors)
    assert torch.equal(kw["timestep"], kw["timestep_r"]), "only r = t (inference) is supported"
    trace = DecoderTrace()
    cross = model.decoder.cross_kv(kw["encoder_hidden_states"])
    velocity = model.decoder(kw["hidden_states"], kw["timestep"], kw["context_latents"], cross, trace=trace)
    out = {"velocity": velocity, "debug.temb": trace.temb, "debug.timestep_proj": trace.timestep_proj}
    out["debug.proj_in"] = trace.proj_in
    out.update({f"debug.layer{i}_out": h for i, h in enumerate(trace.layer_outputs or [])})
    return out


def run_tokenize(model: AceStepDiT, call: dict[str, Any], tensors: Tensors) -> Tensors:
    """``tokenize`` → ``detokenize``, and FSQ decoding of the indices."""
    tok = {k: tensors[v] for k, v in call["kwargs"]["tokenize"].items()}
    quantized, indices, pooled_mask = model.tokenize(tok["x"], tok["silence_latent"], tok["attention_mask"])
    pool = model.config.pool_window_size
    pad = tok["silence_latent"][:, : (-tok["x"].shape[1]) % pool].expand(tok["x"].shape[0], -1, -1)
    x = torch.cat([tok["x"], pad], dim=1)
    windows = x.view(x.shape[0], -1, pool, x.shape[-1])
    return {
        "quantized": quantized,
        "indices": indices,
        "pooled_mask": pooled_mask,
        "detokenized": model.detokenize(tensors[call["kwargs"]["detokenize"]["quantized"]]),
        "quantized_from_indices": model.tokenizer.quantizer.codes_to_vectors(
            tensors[call["kwargs"]["tokenizer.quantizer.get_output_from_indices"]["indices"]], torch.float32
        ),
        "debug.pooled_pre_fsq": model.tokenizer.pooled(windows),
    }


GENERATE_SCALARS = {"seed", "infer_method", "shift", "fix_nfe", "audio_cover_strength", "use_progress_bar"}


def run_generate_audio(model: AceStepDiT, call: dict[str, Any], tensors: Tensors) -> Tensors:
    """The official ``generate_audio`` call (ODE, per-item seeds, optional non-cover phase)."""
    kw = _kwargs(call, tensors)
    unknown = {k for k, v in kw.items() if not isinstance(v, torch.Tensor)} - GENERATE_SCALARS
    assert not unknown, f"unsupported generate_audio arguments: {unknown}"
    assert kw.get("infer_method", "ode") == "ode", "only the ODE sampler is deterministic and supported"
    src, silence = kw["src_latents"], kw["silence_latent"]
    ones = kw.get("attention_mask", torch.ones(src.shape[:2], dtype=src.dtype))
    common = {k: kw[k] for k in ("lyric_hidden_states", "lyric_attention_mask", "chunk_masks", "silence_latent")}
    common["refer_audio_acoustic_hidden_states_packed"] = kw["refer_audio_acoustic_hidden_states_packed"]
    common["refer_audio_order_mask"] = kw["refer_audio_order_mask"]
    cover = model.prepare_condition(
        text_hidden_states=kw["text_hidden_states"],
        text_attention_mask=kw["text_attention_mask"],
        hidden_states=src,
        attention_mask=ones,
        src_latents=src,
        is_covers=kw["is_covers"],
        **common,
    )
    phases = [Phase(model.decoder.cross_kv(cover.encoder_states), cover.context, None)]
    strength = float(kw.get("audio_cover_strength", 1.0))
    if strength < 1.0:
        quiet = silence[:, : src.shape[1]].expand(src.shape[0], -1, -1)
        plain = model.prepare_condition(
            text_hidden_states=kw["non_cover_text_hidden_states"],
            text_attention_mask=kw["non_cover_text_attention_mask"],
            hidden_states=quiet,
            attention_mask=ones,
            src_latents=quiet,
            is_covers=torch.zeros_like(kw["is_covers"]),
            **common,
        )
        phases.append(Phase(model.decoder.cross_kv(plain.encoder_states), plain.context, None))
    noise = _noise(kw["seed"], src.shape[0], src.shape[1], src.shape[2])
    schedule = turbo_timesteps(float(kw.get("shift", 3.0)))
    trace = SamplerTrace()
    latents = sample(
        model.decoder,
        noise,
        phases,
        cover_phase_plan(len(schedule), [strength] * src.shape[0]),
        schedule,
        trace=trace,
    )
    return {
        "target_latents": latents,
        "debug.initial_noise": noise,
        "debug.step_timesteps": torch.stack(trace.timesteps),
        "debug.step_xt": torch.stack(trace.inputs),
        "debug.step_velocity": torch.stack(trace.velocities),
    }


def _noise(seed: Any, batch: int, length: int, channels: int) -> torch.Tensor:
    """Upstream's ``prepare_noise`` on CPU: a list seeds each item, an int seeds the batch."""
    if isinstance(seed, list):
        return torch.cat(
            [torch.randn(1, length, channels, generator=torch.Generator().manual_seed(int(s))) for s in seed]
        )
    assert isinstance(seed, int), "an unseeded generation cannot be compared"
    return torch.randn(batch, length, channels, generator=torch.Generator().manual_seed(seed))


RUNNERS: dict[str, Callable[[AceStepDiT, dict[str, Any], Tensors], Tensors]] = {
    "AceStepConditionGenerationModel.prepare_condition": run_prepare_condition,
    "AceStepConditionGenerationModel.decoder.forward (AceStepDiTModel)": run_decoder_forward,
    "AceStepConditionGenerationModel.tokenize + detokenize": run_tokenize,
    "AceStepConditionGenerationModel.generate_audio": run_generate_audio,
}


def _compare(name: str, got: torch.Tensor, expected: torch.Tensor, meta: dict[str, Any]) -> None:
    assert got.shape == expected.shape, f"{name}: shape {tuple(got.shape)} != {tuple(expected.shape)}"
    if meta.get("compare") == "allclose":
        tol = SPEC["tolerance"]["floating_point"] if SPEC else {}
        torch.testing.assert_close(
            got.float(), expected, atol=tol["atol"], rtol=tol["rtol"], msg=lambda m: f"{name}: {m}"
        )
    else:
        assert torch.equal(got.to(expected.dtype), expected), f"{name}: not exactly equal"


@pytest.mark.parametrize("case_name", CASES)
def test_acestep_conformance(model: AceStepDiT, case_name: str) -> None:
    """One kit case: every normative output (and every debug output we produce) within tolerance."""
    case = SPEC["cases"][case_name]  # type: ignore[index]
    method = case["call"]["method"]
    assert method in RUNNERS, f"case {case_name}: unknown method {method!r}"
    tensors = load_file(str(KIT / case["file"]))
    torch.manual_seed(0)  # nothing here may depend on the global RNG; a fixed state makes that visible
    with torch.no_grad():
        got = RUNNERS[method](model, case["call"], tensors)
    for key, meta in {**case.get("debug_outputs", {}), **case["normative_outputs"]}.items():
        name = key.removeprefix("out.")
        if key in case["normative_outputs"]:
            assert name in got, f"case {case_name}: normative output {name} not produced"
        if name in got:
            _compare(f"{case_name}.{name}", got[name], tensors[key], meta)
