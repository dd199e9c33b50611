"""Requirements: loading/validation of patterns/requirements.yaml and met/missing/n.a. per requirement.

Records are built by hand (no NLP), so these tests pin the rules, not the extraction.
"""

from __future__ import annotations

import shutil

from pathlib import Path

import pytest
import yaml

from notecheck.record import (
    Catheter,
    ConservativeTherapy,
    Contrast,
    Diagnosis,
    Evidence,
    Medication,
    PainScores,
    ProcedureRecord,
)
from notecheck.requirements import Requirement, RequirementsError, evaluate, load_requirements

REPO = Path(__file__).resolve().parent.parent
YAML_FILE = REPO / "patterns" / "requirements.yaml"

REQUIRED_IDS = {
    "consent", "indication", "conservative_therapy", "imaging_correlation", "imaging_guidance",
    "contrast", "medication_dose", "medication_volume", "pain_score_pre", "pain_score_post",
    "post_procedure_assessment", "complications", "level", "laterality",
}


@pytest.fixture(scope="module")
def reqs() -> list[Requirement]:
    return load_requirements(YAML_FILE)


def span(start: int, text: str = "x") -> Evidence:
    return Evidence(start=start, end=start + len(text), text=text)


def complete_record(**overrides) -> ProcedureRecord:
    """A record that meets every requirement; tests knock out one element at a time."""
    fields = dict(
        region="lumbar", levels=["L5-S1"], approach="interlaminar", laterality="left",
        imaging="fluoroscopy", contrast=Contrast(used=True, agent="Omnipaque 240"),
        medications=[
            Medication(name="triamcinolone", category="steroid", dose=80, unit="mg", volume_ml=2,
                       evidence=[span(100, "Kenalog 80 mg")]),
            Medication(name="saline", category="saline", volume_ml=2),
        ],
        consent=True, pain_scores=PainScores(pre=7, post=2, scale="NRS"),
        conservative_therapy=ConservativeTherapy(documented=True, weeks=8, modalities=["PT"]),
        indication=True, imaging_correlation=True, complications_documented=True,
        post_procedure_assessment=True,
        evidence={"consent": [span(10, "consent")], "pain_scores.pre": [span(20, "7/10")]},
    )
    fields.update(overrides)
    return ProcedureRecord(**fields)


def status(reqs, record: ProcedureRecord, rid: str) -> str:
    return finding(reqs, record, rid).status


def finding(reqs, record, rid):
    (f,) = [f for f in evaluate(record, reqs) if f.id == rid]
    return f


# --- the file itself -------------------------------------------------------------------------------

def test_every_requirement_is_complete_and_ids_unique(reqs):
    ids = [r.id for r in reqs]
    assert len(ids) == len(set(ids))
    assert REQUIRED_IDS <= set(ids)
    for r in reqs:
        assert r.id and r.title and r.source and r.query and r.doc
        assert r.severity in ("error", "warning")
        assert r.message_met and r.message_missing


def test_severities_follow_payer_vs_practice(reqs):
    severity = {r.id: r.severity for r in reqs}
    for rid in ("indication", "conservative_therapy", "imaging_guidance", "contrast", "medication_dose",
                "pain_score_pre", "pain_score_post", "level"):
        assert severity[rid] == "error", rid
    for rid in ("consent", "imaging_correlation", "medication_volume", "post_procedure_assessment",
                "complications", "laterality"):
        assert severity[rid] == "warning", rid


def test_payer_requirements_cite_an_lcd(reqs):
    for r in reqs:
        if r.severity == "error":
            assert any(lcd in r.source for lcd in ("L39240", "L33906", "L39015", "L36920")), r.id


def test_default_location_comes_from_patterns_dir(reqs, tmp_path, monkeypatch):
    # patterns_path honours NOTECHECK_PATTERNS; pointing it at a copy proves the default goes through it.
    (tmp_path / "requirements.yaml").write_text(YAML_FILE.read_text(encoding="utf-8"), encoding="utf-8")
    shutil.copytree(YAML_FILE.parent / "profiles", tmp_path / "profiles")  # conservative_therapy's weeks
    monkeypatch.setenv("NOTECHECK_PATTERNS", str(tmp_path))
    assert [r.id for r in load_requirements()] == [r.id for r in reqs]
    assert [r.id for r in load_requirements(YAML_FILE.parent)] == [r.id for r in reqs]  # a directory


def test_complete_record_meets_everything(reqs):
    findings = evaluate(complete_record(), reqs)
    assert {f.id: f.status for f in findings if f.status != "met"} == {}
    assert all(f.query is None for f in findings)


def test_empty_record_missing_has_query(reqs):
    for f in evaluate(ProcedureRecord(), reqs):
        assert f.status in ("missing", "not_applicable")
        assert (f.query is not None) == (f.status == "missing")


# --- loader errors and data-driven behaviour --------------------------------------------------------

def write_yaml(tmp_path: Path, data) -> Path:
    path = tmp_path / "requirements.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def shipped() -> dict:
    return yaml.safe_load(YAML_FILE.read_text(encoding="utf-8"))


@pytest.mark.parametrize("mutate, expected", [
    (lambda r: r.update(severity="fatal"), "severity"),
    (lambda r: r.pop("query"), "query"),
    (lambda r: r.update(met_when={"field": "conservative_therapy.weks", "gte": 4}), "weks"),
    (lambda r: r.update(met_when={"field": "consent", "equals": True, "present": True}), "exactly one"),
    (lambda r: r.update(met_when={"field": "consent", "matches": "x"}), "matches"),
    (lambda r: r.update(met_when={"all": [{"equals": True}]}), "needs a 'field'"),
    (lambda r: r.update(met_when={"field": "conservative_therapy.weeks", "gte": "$max_weeks"}),
     "max_weeks"),
    (lambda r: r.update(item_evidence={"field": "levels"}), "levels"),
])
def test_loader_rejects_malformed_requirement_naming_file_and_id(tmp_path, mutate, expected):
    data = shipped()
    target = next(r for r in data["requirements"] if r["id"] == "conservative_therapy")
    mutate(target)
    path = write_yaml(tmp_path, data)
    with pytest.raises(RequirementsError) as err:
        load_requirements(path)
    message = str(err.value)
    assert str(path) in message
    assert "'conservative_therapy'" in message
    assert expected in message


def test_loader_rejects_duplicate_ids_bad_yaml_and_missing_file(tmp_path):
    data = shipped()
    data["requirements"].append(dict(data["requirements"][0]))
    with pytest.raises(RequirementsError, match="duplicate rule id 'consent'"):
        load_requirements(write_yaml(tmp_path, data))

    bad = tmp_path / "bad.yaml"
    bad.write_text("requirements: [\n  - id: x\n", encoding="utf-8")
    with pytest.raises(RequirementsError, match="not valid YAML"):
        load_requirements(bad)

    with pytest.raises(RequirementsError, match="expected a mapping with a 'requirements' list"):
        load_requirements(write_yaml(tmp_path, ["not", "a", "mapping"]))

    with pytest.raises(RequirementsError, match="cannot read"):
        load_requirements(tmp_path / "nope.yaml")


def test_threshold_is_data(tmp_path, reqs):
    six_weeks = complete_record(conservative_therapy=ConservativeTherapy(documented=True, weeks=6))
    assert status(reqs, six_weeks, "conservative_therapy") == "met"

    data = shipped()
    target = next(r for r in data["requirements"] if r["id"] == "conservative_therapy")
    target["params"]["min_weeks"] = 8  # e.g. a stricter payer profile
    stricter = load_requirements(write_yaml(tmp_path, data))
    f = finding(stricter, six_weeks, "conservative_therapy")
    assert f.status == "missing"
    assert "8 weeks" in f.message  # the message follows the parameter, not a hard-coded 4


# --- individual requirements ------------------------------------------------------------------------

def test_consent(reqs):
    f = finding(reqs, complete_record(), "consent")
    assert f.status == "met" and f.severity == "warning"
    assert [e.text for e in f.evidence] == ["consent"]
    f = finding(reqs, complete_record(consent=False), "consent")
    assert f.status == "missing" and f.query


def test_indication_by_flag_or_diagnosis(reqs):
    assert status(reqs, complete_record(indication=False), "indication") == "missing"
    dx = Diagnosis(text="lumbar radiculopathy", icd10="M54.16", evidence=[span(5, "radiculopathy")])
    f = finding(reqs, complete_record(indication=False, diagnoses=[dx]), "indication")
    assert f.status == "met"
    assert [e.text for e in f.evidence] == ["radiculopathy"]


@pytest.mark.parametrize("therapy, expected", [
    (ConservativeTherapy(documented=True, modalities=["physical therapy"]), "missing"),  # no duration
    (ConservativeTherapy(documented=True, weeks=3, modalities=["NSAIDs"]), "missing"),
    (ConservativeTherapy(documented=True, weeks=4), "met"),
    (ConservativeTherapy(documented=True, weeks=6, modalities=["PT"]), "met"),
    (ConservativeTherapy(documented=False, weeks=6), "missing"),
    (ConservativeTherapy(), "missing"),
])
def test_conservative_therapy_duration(reqs, therapy, expected):
    assert status(reqs, complete_record(conservative_therapy=therapy), "conservative_therapy") == expected


def test_conservative_therapy_exemptions(reqs):
    none = ConservativeTherapy()
    zoster = complete_record(conservative_therapy=none, pain_context="herpes_zoster")
    f = finding(reqs, zoster, "conservative_therapy")
    assert f.status == "not_applicable" and f.query is None
    assert status(reqs, zoster, "imaging_correlation") == "met"  # zoster only exempts the duration

    for context in ("acute_postoperative", "trauma"):
        postop = complete_record(conservative_therapy=none, imaging_correlation=False, pain_context=context,
                                 catheter=Catheter(placed=True, indwelling=True))
        assert status(reqs, postop, "conservative_therapy") == "not_applicable"
        assert status(reqs, postop, "imaging_correlation") == "not_applicable"

    # A post-op context without an indwelling catheter is an ordinary ESI: no exemption.
    single = complete_record(conservative_therapy=none, imaging_correlation=False,
                             pain_context="acute_postoperative", catheter=Catheter(placed=True, removed=True))
    assert status(reqs, single, "conservative_therapy") == "missing"
    assert status(reqs, single, "imaging_correlation") == "missing"


def test_imaging_correlation(reqs):
    assert status(reqs, complete_record(), "imaging_correlation") == "met"
    f = finding(reqs, complete_record(imaging_correlation=False), "imaging_correlation")
    assert f.status == "missing" and f.severity == "warning"


@pytest.mark.parametrize("imaging, expected", [
    ("fluoroscopy", "met"), ("ct", "met"), ("ultrasound", "met"), ("none", "met"), (None, "missing"),
])
def test_imaging_guidance(reqs, imaging, expected):
    assert status(reqs, complete_record(imaging=imaging), "imaging_guidance") == expected


@pytest.mark.parametrize("imaging, contrast, expected", [
    ("fluoroscopy", Contrast(used=True), "met"),
    ("ct", Contrast(used=True), "met"),
    ("fluoroscopy", Contrast(used=False, omission_reason="iodinated contrast allergy"), "met"),
    ("fluoroscopy", Contrast(), "missing"),
    ("ct", Contrast(used=False), "missing"),
    ("ultrasound", Contrast(), "not_applicable"),
    ("none", Contrast(), "not_applicable"),
    (None, Contrast(), "not_applicable"),
])
def test_contrast(reqs, imaging, contrast, expected):
    assert status(reqs, complete_record(imaging=imaging, contrast=contrast), "contrast") == expected


def test_contrast_evidence(reqs):
    record = complete_record(contrast=Contrast(used=False, omission_reason="allergy"),
                             evidence={"contrast.omission_reason": [span(40, "allergic to contrast")]})
    assert [e.text for e in finding(reqs, record, "contrast").evidence] == ["allergic to contrast"]


def med(name, category, **kw) -> Medication:
    return Medication(name=name, category=category, **kw)


@pytest.mark.parametrize("meds, expected", [
    ([med("methylprednisolone", "steroid", volume_ml=2)], "missing"),  # steroid in mL only
    ([med("dexamethasone", "steroid", dose=10, unit="mg")], "met"),
    ([med("fentanyl", "opioid", dose=100, unit="mcg")], "met"),
    ([med("lidocaine", "local_anesthetic", concentration="1%", volume_ml=3)], "met"),
    ([med("lidocaine", "local_anesthetic", concentration="1%")], "missing"),  # concentration, no volume
    ([med("triamcinolone", "steroid", dose=2, unit="mL")], "missing"),  # a "dose" in mL is a volume
    ([med("Kenalog", "steroid", dose=80, unit="MG"),
      med("saline", "saline", volume_ml=3), med("Omnipaque", "contrast", volume_ml=2)], "met"),
    ([med("Kenalog", "steroid", dose=80, unit="mg"),
      med("bupivacaine", "local_anesthetic", volume_ml=2)], "missing"),  # one drug without a dose
    ([med("saline", "saline", volume_ml=3), med("Omnipaque", "contrast", volume_ml=2)], "missing"),
    ([], "missing"),  # nothing injected documented
])
def test_medication_dose(reqs, meds, expected):
    assert status(reqs, complete_record(medications=meds), "medication_dose") == expected


def test_medication_dose_evidence_comes_from_the_drugs(reqs):
    meds = [med("Depo-Medrol", "steroid", volume_ml=2, evidence=[span(50, "Depo-Medrol 2 mL")]),
            med("saline", "saline", volume_ml=3, evidence=[span(70, "saline")])]
    f = finding(reqs, complete_record(medications=meds), "medication_dose")
    assert f.status == "missing"
    assert [e.text for e in f.evidence] == ["Depo-Medrol 2 mL"]  # saline is not what the rule is about


@pytest.mark.parametrize("meds, evidence, expected", [
    ([med("Kenalog", "steroid", dose=80, unit="mg", volume_ml=2)], {}, "met"),
    ([med("saline", "saline", volume_ml=4)], {}, "met"),
    ([med("Kenalog", "steroid", dose=80, unit="mg")], {}, "missing"),
    ([med("Omnipaque", "contrast", volume_ml=2), med("Kenalog", "steroid", dose=80, unit="mg")], {},
     "missing"),  # the contrast volume is not the injectate
    ([med("Kenalog", "steroid", dose=80, unit="mg")], {"injectate_volume": [span(0, "total 5 mL")]}, "met"),
    ([], {}, "missing"),
])
def test_medication_volume(reqs, meds, evidence, expected):
    record = complete_record(medications=meds, evidence=evidence)
    assert status(reqs, record, "medication_volume") == expected


def test_pain_scores(reqs):
    assert status(reqs, complete_record(pain_scores=PainScores(pre=0, post=0)), "pain_score_pre") == "met"
    only_pre = complete_record(pain_scores=PainScores(pre=8))
    assert status(reqs, only_pre, "pain_score_pre") == "met"
    assert status(reqs, only_pre, "pain_score_post") == "missing"
    only_post = complete_record(pain_scores=PainScores(post=2))
    assert status(reqs, only_post, "pain_score_pre") == "missing"
    assert status(reqs, only_post, "pain_score_post") == "met"
    f = finding(reqs, complete_record(), "pain_score_pre")
    assert [e.text for e in f.evidence] == ["7/10"]


@pytest.mark.parametrize("rid, override", [
    ("post_procedure_assessment", {"post_procedure_assessment": False}),
    ("complications", {"complications_documented": False}),
    ("level", {"levels": []}),
    ("laterality", {"laterality": None}),
    ("approach", {"approach": None}),
])
def test_simple_presence_requirements(reqs, rid, override):
    assert status(reqs, complete_record(), rid) == "met"
    assert status(reqs, complete_record(**override), rid) == "missing"


def test_midline_counts_as_laterality_and_caudal_level(reqs):
    assert status(reqs, complete_record(laterality="midline"), "laterality") == "met"
    assert status(reqs, complete_record(levels=["sacral hiatus"]), "level") == "met"


def test_optional_extras(reqs):
    assert status(reqs, complete_record(pain_scores=PainScores()), "pain_scale") == "not_applicable"
    assert status(reqs, complete_record(pain_scores=PainScores(pre=7)), "pain_scale") == "missing"
    assert status(reqs, complete_record(contrast=Contrast(used=False, omission_reason="allergy")),
                  "contrast_agent") == "not_applicable"
    assert status(reqs, complete_record(contrast=Contrast(used=True)), "contrast_agent") == "missing"
