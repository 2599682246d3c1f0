"""The repository holds everything its install, run, tests and benches read: nothing outside it."""

import re
import subprocess

from tests.helpers import FACTS, REPO, TEST_DATA

# A path that climbs out of the checkout to a sibling folder (the steering repo's notes and kits sit beside it).
OUTSIDE = re.compile(r"""(\.\./shared|\.parents?\b[^\n]*/\s*["']shared["']|REPO\.parent\b)""")


def tracked_files(*patterns: str) -> list[str]:
    done = subprocess.run(["git", "ls-files", *patterns], cwd=REPO, capture_output=True, text=True, check=True)
    return done.stdout.split()


def test_no_code_reads_beside_the_repository():
    files = tracked_files("*.py", "*.sh", "Makefile", ".ci/*", "*.toml")
    assert files, "git ls-files found nothing: not a checkout?"
    offenders = [
        name
        for name in files
        if name != "tests/test_self_contained.py" and OUTSIDE.search((REPO / name).read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_the_pattern_sees_an_escape():
    sibling = "shared"  # spelled apart, so this file is not itself a hit for a plain grep
    assert OUTSIDE.search(f'KIT = REPO.parent / "{sibling}" / "conformance"')
    assert OUTSIDE.search(f"cat ../{sibling}/data/x.jsonl")
    assert not OUTSIDE.search('KIT = REPO / "tests" / "data"')


def test_the_test_data_is_tracked():
    tracked = set(tracked_files("tests/data"))
    kit = TEST_DATA / "conformance" / "acestep_dit"  # the default kit (ACESTEP_CONFORMANCE_DIR may point elsewhere)
    for path in (
        kit / "cases.json",
        kit / "model.safetensors",
        FACTS / "lm_prompts.json",
        FACTS / "configs" / "acestep-5Hz-lm-1.7B" / "config.json",
        TEST_DATA / "acestep_understand_log.jsonl",
    ):
        assert str(path.relative_to(REPO)) in tracked, path
