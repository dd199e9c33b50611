"""Every rule `notecheck rules` lists has a passing and a failing example (corpora/rules/ID/), and the
real engine agrees with both: the examples the explain command shows are the tests."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from notecheck.audit import SourceOptions, run_audit
from notecheck.engine import NoteChecker
from notecheck.explain import FIXTURES_DIR, all_rules
from notecheck.patterns_path import patterns_dir
from notecheck.profiles import load_profile

RULES = all_rules(patterns_dir(), load_profile())
SINGLE_NOTE = [r.id for r in RULES if r.kind != "history"]
HISTORY = [r.id for r in RULES if r.kind == "history"]


@pytest.fixture(scope="module")
def checker() -> NoteChecker:
    return NoteChecker()


def _claim(folder: Path, which: str) -> str | None:
    path = folder / f"{which}.claim"
    return path.read_text(encoding="utf-8").strip() if path.is_file() else None


def test_every_rule_has_both_examples():
    missing = []
    for rule in RULES:
        ext = ".jsonl" if rule.kind == "history" else ".txt"
        missing += [f"{rule.id}/{w}{ext}" for w in ("pass", "fail") if not (FIXTURES_DIR / rule.id / f"{w}{ext}").is_file()]
    assert missing == []


@pytest.mark.parametrize("rule_id", SINGLE_NOTE)
@pytest.mark.parametrize("which, expected", [("pass", "met"), ("fail", "missing")])
def test_single_note_examples(checker, rule_id, which, expected):
    folder = FIXTURES_DIR / rule_id
    text = (folder / f"{which}.txt").read_text(encoding="utf-8")
    result = checker.check(text, f"{rule_id}-{which}", _claim(folder, which))
    assert result.status == "ok", result.error
    statuses = [f.status for f in result.findings if f.id == rule_id]
    assert statuses and (expected in statuses if expected == "missing" else set(statuses) == {"met"}), statuses
    for finding in result.findings:
        assert all(text[e.start:e.end] == e.text for e in finding.evidence)


@pytest.mark.parametrize("rule_id", HISTORY)
def test_history_examples(rule_id, tmp_path):
    for which in ("pass", "fail"):
        out = tmp_path / which
        run_audit(FIXTURES_DIR / rule_id / f"{which}.jsonl", out, options=SourceOptions(), jobs=1,
                  quiet=True, err=io.StringIO())
        lines = [json.loads(line) for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]
        statuses = [f["status"] for line in lines for f in line["audit"]["history_findings"] if f["id"] == rule_id]
        if which == "pass":
            assert "missing" not in statuses, (which, statuses)
        else:
            assert "missing" in statuses, (which, statuses)
