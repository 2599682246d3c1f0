import json

from engine.acestep.lm.cli import plan_main
from storage.contract.spec import Plan


def test_plan_prints_one_json_object(tiny_lm_dir, monkeypatch, capsys):
    monkeypatch.setenv("MODEL_DIR", str(tiny_lm_dir))
    monkeypatch.delenv("LM_MODEL", raising=False)
    args = ["a sad folk song about trains", "--instrumental", "--seed", "5", "--duration", "10", "--json"]
    assert plan_main([*args, "--device", "cpu"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1
    plan = json.loads(out[0])
    assert set(plan) == set(Plan.model_fields)
    assert plan["duration_s"] == 10 and len(plan["audio_codes"]) == 50
    assert all(isinstance(c, int) for c in plan["audio_codes"])
    assert plan["lyrics"] == "[Instrumental]"


def test_plan_without_models_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MODEL_DIR", str(tmp_path))
    assert plan_main(["x", "--json", "--device", "cpu"]) == 2
    assert "MODEL_DIR" in capsys.readouterr().err


def test_plan_prints_its_fields_as_text(tiny_lm_dir, monkeypatch, capsys):
    monkeypatch.setenv("MODEL_DIR", str(tiny_lm_dir))
    monkeypatch.delenv("LM_MODEL", raising=False)
    args = ["a sad folk song about trains", "--instrumental", "--seed", "5", "--duration", "10", "--device", "cpu"]
    assert plan_main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "seed: 5" and "duration_s: 10.0" in lines and "audio codes: 50" in lines
    assert [line.split(":")[0] for line in lines[1:7]] == [
        "caption",
        "bpm",
        "key",
        "time_signature",
        "duration_s",
        "language",
    ]
