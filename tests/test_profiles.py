"""Payer profiles and rule files as validated data: schema, unique ids, a source for every value."""

from __future__ import annotations

import pytest

from notecheck.coverage import load_coverage_rules
from notecheck.patterns_path import load_yaml, patterns_dir
from notecheck.profiles import ProfileError, list_profiles, load_profile, parameter, parameters
from notecheck.requirements import RequirementsError, load_requirements

FOLDER = patterns_dir()
COVERAGE_PARAMS = ("esi_codes", "not_esi_pain_contexts", "min_conservative_weeks", "image_guidance",
                   "ultrasound_if_contrast_contraindicated", "contrast_contraindications", "max_levels_per_session",
                   "max_region_groups_per_session", "steroid_ceiling_mg", "biologics_covered",
                   "sedation_needing_reason", "covered_diagnoses")


@pytest.mark.parametrize("profile_id", list_profiles())
def test_every_shipped_profile_loads_and_every_value_cites_a_source(profile_id):
    profile = load_profile(profile_id)
    assert profile["id"] == profile_id and profile["name"] and profile["version"]
    params = parameters(profile)
    assert params, profile_id
    for path, param in params.items():
        assert param.source.strip() and param.confidence.split()[0].rstrip(";") in ("C1", "C2", "INF"), path
    for name in COVERAGE_PARAMS:
        parameter(profile, f"coverage.{name}")   # every value a rule reads is there


def test_profile_ids_are_unique_file_stems():
    ids = [load_profile(p)["id"] for p in list_profiles()]
    assert len(ids) == len(set(ids)) and set(ids) == set(list_profiles())
    assert "medicare" in ids


def test_the_commercial_profile_extends_medicare_and_overrides_only_what_differs():
    medicare, commercial = load_profile("medicare"), load_profile("commercial-6wk")
    assert parameter(medicare, "coverage.min_conservative_weeks").value == 4
    assert parameter(commercial, "coverage.min_conservative_weeks").value == 6
    assert parameter(commercial, "coverage.ultrasound_if_contrast_contraindicated").value is False
    assert parameter(commercial, "coverage.covered_diagnoses").value == parameter(medicare, "coverage.covered_diagnoses").value
    assert "S-EVI" in parameter(commercial, "coverage.min_conservative_weeks").source


def test_the_profile_feeds_the_conservative_care_requirement():
    by_id = {r.id: r for r in load_requirements(FOLDER / "requirements.yaml", profile=load_profile("commercial-6wk"))}
    rule = by_id["conservative_therapy"]
    assert rule.params["min_weeks"] == 6 and "6 weeks" in rule.message_met
    assert rule.profile_values["min_weeks"]["path"] == "coverage.min_conservative_weeks"


@pytest.mark.parametrize("body, message", [
    ("id: x\nname: X\nversion: 1\ncoverage:\n  min_conservative_weeks: {value: 4}\n", "source"),
    ("id: x\nname: X\nversion: 1\ncoverage:\n  min_conservative_weeks: {value: 4, source: s, confidence: maybe}\n",
     "confidence"),
    ("id: x\nversion: 1\n", "name"),
    ("- not a mapping\n", "not a mapping"),
])
def test_an_invalid_profile_is_a_clear_error(tmp_path, body, message):
    (tmp_path / "x.yaml").write_text(body, encoding="utf-8")
    with pytest.raises(ProfileError, match=message):
        load_profile(str(tmp_path / "x.yaml"))


def test_a_rule_asking_for_a_value_the_profile_lacks_names_it(tmp_path):
    (tmp_path / "thin.yaml").write_text("id: thin\nname: Thin\nversion: 1\ncoverage: {}\n", encoding="utf-8")
    with pytest.raises(RequirementsError, match="coverage.min_conservative_weeks"):
        load_requirements(FOLDER / "requirements.yaml", profile=load_profile(str(tmp_path / "thin.yaml")))


def test_coverage_rules_are_complete_and_ids_unique_across_rule_files():
    coverage = load_coverage_rules(FOLDER)
    documentation = load_requirements(FOLDER / "requirements.yaml")
    billing = set(load_yaml(FOLDER / "billing.yaml")["findings"])
    history = {"frequency_limit", "repeat_without_response", "multiple_regions_same_day",
               "multiple_levels_same_session"}
    ids = [r.id for r in coverage] + [r.id for r in documentation] + sorted(billing) + sorted(history)
    assert len(ids) == len(set(ids))
    for rule in coverage:
        assert rule.kind in ("coverage", "coding") and rule.source and rule.doc and rule.query
        assert "rules.md" in rule.source and rule.message_met and rule.message_missing


def test_a_coverage_rule_with_a_misspelt_field_fails_at_load(tmp_path):
    text = (FOLDER / "coverage.yaml").read_text(encoding="utf-8").replace("field: diagnoses_covered",
                                                                           "field: diagnosis_covered", 1)
    (tmp_path / "coverage.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(RequirementsError, match="diagnosis_covered"):
        load_coverage_rules(tmp_path / "coverage.yaml", load_profile())
