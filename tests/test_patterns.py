"""The rule files themselves: stable unique ids, sources on payer rules, a complete decision table."""

import itertools
import json
from pathlib import Path

import pytest
import yaml

from notecheck.coding import load_coding_rules
from notecheck.requirements import load_requirements

PATTERNS = Path(__file__).resolve().parent.parent / "patterns"


def _json_rules():
    for path in sorted((PATTERNS / "targets").glob("*.json")):
        for rule in json.loads(path.read_text())["target_rules"]:
            yield path.name, rule
    for name, key in (("context.json", "context_rules"), ("sections.json", "section_rules")):
        for rule in json.loads((PATTERNS / name).read_text())[key]:
            yield name, rule


def test_every_rule_has_a_unique_id():
    ids = [rule["metadata"]["id"] for _, rule in _json_rules()]
    duplicates = {i for i in ids if ids.count(i) > 1}
    assert not duplicates


def test_measurement_pattern_ids_are_unique():
    data = yaml.safe_load((PATTERNS / "measurements.yaml").read_text())
    ids = [p["id"] for section in data.values() if isinstance(section, dict) and "patterns" in section
           for p in section["patterns"]]
    assert len(ids) == len(set(ids))


def test_requirements_have_the_issue_ids_and_sources():
    reqs = {r.id: r for r in load_requirements(PATTERNS / "requirements.yaml")}
    required = {"consent", "indication", "conservative_therapy", "imaging_correlation", "imaging_guidance",
                "contrast", "medication_dose", "medication_volume", "pain_score_pre", "pain_score_post",
                "post_procedure_assessment", "complications", "level", "laterality"}
    assert required <= set(reqs)
    for req in reqs.values():
        assert req.source.strip() and req.query.strip()
        if req.severity == "error":
            assert any(k in req.source for k in ("LCD", "A5", "L3")), req.id  # a CMS document is cited


def test_decision_table_covers_every_combination_once():
    rules = load_coding_rules(PATTERNS)
    cells = [(r.region_group, r.delivery, r.imaging) for r in rules.decision_table]
    expected = set(itertools.product(["cervical_thoracic", "lumbar_sacral"], ["single", "indwelling"],
                                     ["without_imaging", "with_imaging"]))
    assert len(cells) == 8 and set(cells) == expected
    assert sorted(r.cpt for r in rules.decision_table) == [str(c) for c in range(62320, 62328)]


@pytest.mark.parametrize("cell, cpt", [
    (("cervical_thoracic", "single", "without_imaging"), "62320"),
    (("cervical_thoracic", "single", "with_imaging"), "62321"),
    (("lumbar_sacral", "single", "without_imaging"), "62322"),
    (("lumbar_sacral", "single", "with_imaging"), "62323"),
    (("cervical_thoracic", "indwelling", "without_imaging"), "62324"),
    (("cervical_thoracic", "indwelling", "with_imaging"), "62325"),
    (("lumbar_sacral", "indwelling", "without_imaging"), "62326"),
    (("lumbar_sacral", "indwelling", "with_imaging"), "62327"),
])
def test_decision_table_matches_the_cpt_descriptors(cell, cpt):
    """Seeds called 62323 'with catheter', 62324 lumbar and 62321 lumbar: all wrong."""
    assert load_coding_rules(PATTERNS).lookup(*cell).cpt == cpt


def test_only_fluoroscopy_and_ct_are_imaging_guidance():
    groups = load_coding_rules(PATTERNS).imaging_groups
    assert {k for k, v in groups.items() if v == "with_imaging"} == {"fluoroscopy", "ct"}


def test_every_code_note_has_a_source():
    rules = load_coding_rules(PATTERNS)
    for note in list(rules.always_notes) + list(rules.conditional_notes.values()):
        assert note.source.strip()
    for family in rules.out_of_family.values():
        assert family["source"].strip() and family["codes"].strip()


def test_no_target_literal_is_defined_twice():
    """Two rules with the same literal match the same span; which one survives medspaCy's overlap pruning
    then depends on rule order, so one edit elsewhere can silently turn "caudal" from an approach into a
    region. Each literal must have exactly one rule."""
    seen: dict[str, str] = {}
    for path in sorted((PATTERNS / "targets").glob("*.json")):
        for rule in json.loads(path.read_text())["target_rules"]:
            key = rule["literal"].lower()
            assert key not in seen, f"{rule['literal']!r} in {path.name} and {seen[key]}"
            seen[key] = path.name


def test_spelling_variants_copy_rules_with_a_suffixed_id():
    from notecheck.pipeline.rules import misspelled_copies

    rules = [{"literal": "no complications", "category": "COMPLICATIONS", "metadata": {"id": "X-1"}},
             {"literal": "complicaitons", "category": "COMPLICATIONS", "metadata": {"id": "X-2"}}]
    copies = misspelled_copies(rules, {"complications": ["complicaitons", "complciations"]})
    assert [(c["literal"], c["metadata"]["id"]) for c in copies] == [
        ("no complicaitons", "X-1~complicaitons"), ("no complciations", "X-1~complciations")]
    assert rules[0]["literal"] == "no complications"  # the source rule is not changed


def test_spelling_variants_are_not_words_the_rules_already_define():
    from notecheck.patterns_path import load_yaml, patterns_dir

    variants = load_yaml(patterns_dir() / "spelling_variants.yaml")["variants"]
    typos = [t for ts in variants.values() for t in ts]
    assert len(typos) == len(set(typos))
    assert not set(typos) & set(variants)
