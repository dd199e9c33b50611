"""Coverage and coding-compliance rules (patterns/coverage.yaml) on hand-built records: no pipeline.

Each test changes one fact of an otherwise covered, compliant lumbar ESI and checks the one rule that
reads it, under the Medicare profile and, where the payers differ, the commercial example profile.
"""

from __future__ import annotations

import pytest

from notecheck.coding import load_coding_rules
from notecheck.coverage import CoverageChecker
from notecheck.patterns_path import patterns_dir
from notecheck.profiles import load_profile
from notecheck.record import (
    CodeSuggestion, Contrast, Diagnosis, Evidence, Icd10Candidate, Medication, NoteResult, ProcedureRecord,
    Sedation,
)

FOLDER = patterns_dir()


def span(start: int, text: str) -> Evidence:
    return Evidence(start=start, end=start + len(text), text=text)


def dx(concept: str, *codes: str) -> Diagnosis:
    return Diagnosis(text=concept, concept=concept, icd10=codes[0] if codes else None,
                     icd10_candidates=[Icd10Candidate(code=c, description=c) for c in codes],
                     evidence=[span(0, concept)])


def record(**overrides) -> ProcedureRecord:
    fields = dict(region="lumbar", levels=["L5-S1"], approach="interlaminar", imaging="fluoroscopy",
                  contrast=Contrast(used=True, agent="Omnipaque 240"),
                  medications=[Medication(name="triamcinolone acetonide", category="steroid", dose=80, unit="mg",
                                          volume_ml=2, evidence=[span(40, "Kenalog 80 mg")])],
                  diagnoses=[dx("disc_with_radiculopathy", "M51.17")],
                  evidence={"imaging": [span(60, "fluoroscopy")]})
    fields.update(overrides)
    return ProcedureRecord(**fields)


@pytest.fixture(scope="module")
def checkers():
    coding = load_coding_rules(FOLDER)
    return {name: CoverageChecker(FOLDER, load_profile(name), coding) for name in ("medicare", "commercial-6wk")}


def run(checkers, rec: ProcedureRecord, cpt: str | None = "62323", *, billed: str | None = None,
        profile: str = "medicare", family: str | None = None, multiple_regions: bool = False):
    result = NoteResult(note_id="n", status="ok", record=rec, code=CodeSuggestion(cpt=cpt, out_of_family=family))
    findings, claim = checkers[profile].check(result, multiple_regions, billed)
    return {f.id: f for f in findings}, claim


def status(checkers, rec, rule: str, **kw) -> str:
    return run(checkers, rec, **kw)[0][rule].status


def test_a_covered_compliant_esi_passes_every_rule_that_applies(checkers):
    found, claim = run(checkers, record())
    assert claim is None
    assert {i: f.status for i, f in found.items() if f.status == "missing"} == {}
    assert found["covered_indication"].status == "met" and found["covered_indication"].kind == "coverage"
    assert found["no_bilateral_modifier"].status == "not_applicable"   # no claim, no claim rules


@pytest.mark.parametrize("diagnoses, expected", [
    ([dx("axial_back_pain", "M54.50")], "missing"),
    ([dx("crps", "G90.522")], "missing"),
    ([dx("disc_displacement", "M51.26")], "missing"),
    ([dx("cancer_pain", "G89.3")], "missing"),
    ([dx("spinal_stenosis", "M48.061")], "missing"),         # held back in the Medicare profile
    ([dx("stenosis_with_claudication", "M48.062")], "met"),
    ([dx("axial_back_pain", "M54.50"), dx("radiculopathy", "M54.16")], "met"),
    ([dx("radiculopathy", "M54.12")], "missing"),             # a cervical code does not cover a lumbar ESI
    ([], "missing"),
])
def test_covered_indication_reads_the_profile_list_for_the_region_group(checkers, diagnoses, expected):
    assert status(checkers, record(diagnoses=diagnoses), "covered_indication") == expected


def test_the_covered_diagnosis_is_the_evidence(checkers):
    found, _ = run(checkers, record(diagnoses=[dx("axial_back_pain", "M54.50")]))
    assert [e.text for e in found["covered_indication"].evidence] == ["axial_back_pain"]
    assert found["covered_indication"].query


@pytest.mark.parametrize("cpt, rec_kw, family", [
    ("62326", {"catheter": {"placed": True, "indwelling": True}}, None),   # catheter infusion: not an ESI
    ("62322", {"pain_context": "acute_postoperative"}, None),
    (None, {}, "transforaminal"),
])
def test_coverage_rules_do_not_apply_outside_single_injection_esis(checkers, cpt, rec_kw, family):
    rec = record(diagnoses=[dx("postoperative_pain", "G89.18")], imaging="none", **rec_kw)
    found, _ = run(checkers, rec, cpt, family=family)
    for rule in ("covered_indication", "esi_image_guidance", "single_level"):
        assert found[rule].status == "not_applicable", rule


@pytest.mark.parametrize("imaging, reason, profile, expected", [
    ("fluoroscopy", None, "medicare", "met"),
    ("ct", None, "medicare", "met"),
    ("none", None, "medicare", "missing"),
    (None, None, "medicare", "missing"),
    ("ultrasound", None, "medicare", "missing"),
    ("ultrasound", "iodinated contrast allergy", "medicare", "met"),
    ("ultrasound", "pregnancy", "medicare", "met"),
    ("ultrasound", "iodinated contrast allergy", "commercial-6wk", "missing"),   # eviCore: never ultrasound
])
def test_esi_image_guidance_and_the_ultrasound_exception(checkers, imaging, reason, profile, expected):
    rec = record(imaging=imaging, contrast=Contrast(used=False if reason else None, omission_reason=reason))
    cpt = "62323" if imaging in ("fluoroscopy", "ct") else "62322"
    assert status(checkers, rec, "esi_image_guidance", cpt=cpt, profile=profile) == expected


def test_single_level_and_single_region(checkers):
    assert status(checkers, record(levels=["L4-L5", "L5-S1"]), "single_level") == "missing"
    assert status(checkers, record(levels=["sacral hiatus"]), "single_level") == "met"
    assert status(checkers, record(), "single_region", multiple_regions=True) == "missing"
    assert status(checkers, record(), "single_region") == "met"


@pytest.mark.parametrize("med, expected", [
    (Medication(name="triamcinolone acetonide", category="steroid", dose=120, unit="mg"), "missing"),
    (Medication(name="triamcinolone acetonide", category="steroid", dose=80, unit="mg"), "met"),   # at the ceiling
    (Medication(name="dexamethasone sodium phosphate", category="steroid", dose=20, unit="mg"), "missing"),
    (Medication(name="betamethasone", category="steroid", concentration="6 mg/mL", volume_ml=3), "missing"),  # 18 mg
    (Medication(name="betamethasone", category="steroid", concentration="6 mg/mL", volume_ml=2), "met"),
    (Medication(name="methylprednisolone acetate", category="steroid", dose=120, unit="mg"), "not_applicable"),
])
def test_steroid_dose_ceiling_reads_dose_or_concentration_times_volume(checkers, med, expected):
    assert status(checkers, record(medications=[med]), "steroid_dose_ceiling") == expected


def test_biologic_injectant_fails_even_on_a_catheter_note(checkers):
    prp = Medication(name="platelet-rich plasma", category="biologic", volume_ml=4, evidence=[span(5, "PRP")])
    found, _ = run(checkers, record(medications=[prp]))
    assert found["biologic_injectant"].status == "missing"
    assert [e.text for e in found["biologic_injectant"].evidence] == ["PRP"]
    rec = record(medications=[prp], catheter={"placed": True, "indwelling": True})
    assert status(checkers, rec, "biologic_injectant", cpt="62327") == "missing"


@pytest.mark.parametrize("sedation, expected", [
    (Sedation(), "not_applicable"),
    (Sedation(level="mac"), "missing"),
    (Sedation(level="moderate", agents=["midazolam"], justification=True), "met"),
    (Sedation(level="general"), "missing"),
])
def test_sedation_needs_a_reason(checkers, sedation, expected):
    assert status(checkers, record(sedation=sedation), "sedation_justification") == expected


@pytest.mark.parametrize("billed, rule, expected", [
    ("62323", "no_bilateral_modifier", "met"),
    ("62323-50", "no_bilateral_modifier", "missing"),
    ("62323 50", "no_bilateral_modifier", "missing"),
    ("62323, 77003", "no_separate_imaging_code", "missing"),
    ("62323, 77012", "no_separate_imaging_code", "missing"),
    ("62323, 72275", "no_separate_imaging_code", "missing"),
    ("62323", "no_separate_imaging_code", "met"),
    ("62323-KX", "kx_only_for_snrb", "missing"),
    ("62323", "kx_only_for_snrb", "met"),
    ("64483-KX", "kx_only_for_snrb", "not_applicable"),     # KX on the SNRB code is its place
    ("62323-25", "modifier_25_needs_separate_em", "missing"),
    ("99213-25, 62323", "modifier_25_needs_separate_em", "missing"),  # no separate E/M documented
    ("62323", "modifier_25_needs_separate_em", "not_applicable"),
    ("62323", "billed_code_mismatch", "met"),
    ("62321", "billed_code_mismatch", "missing"),
])
def test_claim_rules(checkers, billed, rule, expected):
    found, claim = run(checkers, record(), billed=billed)
    assert found[rule].status == expected and found[rule].kind == "coding"
    assert claim is not None and claim.billed == billed


def test_modifier_25_on_the_em_with_a_documented_separate_service_passes(checkers):
    rec = record(separate_em=True, evidence={"separate_em": [span(90, "also evaluated for new knee pain")]})
    found, _ = run(checkers, rec, billed="99214-25, 62323")
    assert found["modifier_25_needs_separate_em"].status == "met"
    assert [e.text for e in found["modifier_25_needs_separate_em"].evidence] == ["also evaluated for new knee pain"]


def test_the_claim_records_the_comparison(checkers):
    _, claim = run(checkers, record(imaging="none"), "62322", billed="62323")
    assert (claim.status, claim.direction, claim.supported) == ("mismatch", "billed_higher", "62322")
    assert [(a.axis, a.direction) for a in claim.axes] == [("imaging", "higher")]
