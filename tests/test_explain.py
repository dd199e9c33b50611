"""`notecheck rules`: every rule listed with its source and payer values; one rule explained with examples."""

from __future__ import annotations

import json

from notecheck.cli import main
from notecheck.explain import FIXTURES_DIR


def run(capsys, *args) -> tuple[int, str, str]:
    status = main(["rules", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_the_list_names_every_rule_of_every_kind(capsys):
    status, out, _ = run(capsys)
    assert status == 0 and "payer profile: medicare" in out
    for heading in ("documentation rules:", "coverage rules:", "coding rules:", "history rules:"):
        assert heading in out
    for rule in ("consent", "covered_indication", "billed_code_mismatch", "no_bilateral_modifier",
                 "frequency_limit", "repeat_without_response"):
        assert f"  {rule} " in out
    assert "min_weeks = 4  [coverage.min_conservative_weeks, C2]" in out


def test_the_profile_changes_the_values_shown(capsys):
    _, out, _ = run(capsys, "--profile", "commercial-6wk")
    assert "payer profile: commercial-6wk" in out and "min_weeks = 6" in out


def test_one_rule_with_rationale_values_and_both_examples(capsys):
    status, out, _ = run(capsys, "covered_indication")
    assert status == 0
    assert out.startswith("covered_indication: Covered indication for an ESI")
    assert "why:" in out and "axial" in out and "payer-profile values:" in out
    assert "--- PASSES: pass.txt ---" in out and "--- FAILS: fail.txt ---" in out
    assert (FIXTURES_DIR / "covered_indication" / "fail.txt").read_text(encoding="utf-8").strip() in out


def test_a_claim_rule_shows_its_claims(capsys):
    _, out, _ = run(capsys, "no_bilateral_modifier")
    assert "--- FAILS: fail.claim ---" in out and "62323-50" in out


def test_json_output(capsys):
    _, out, _ = run(capsys, "--format", "json")
    data = json.loads(out)
    ids = [r["id"] for r in data["rules"]]
    assert len(ids) == len(set(ids)) and data["profile"] == "medicare"
    one = json.loads(run(capsys, "single_level", "--format", "json")[1])
    assert one["kind"] == "coverage" and one["profile_values"]["max_levels"]["value"] == 1
    assert any(path.endswith("fail.txt") for path in one["examples"])


def test_unknown_rule_or_profile_exits_2_with_a_hint(capsys):
    status, out, err = run(capsys, "covered_indicaton")
    assert status == 2 and out == "" and "did you mean covered_indication" in err
    status, _, err = run(capsys, "--profile", "no-such-payer")
    assert status == 2 and "not found" in err and "Traceback" not in err
