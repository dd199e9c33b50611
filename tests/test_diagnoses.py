"""Current diagnoses and their ICD-10-CM candidates (issue 6 §1; patterns/icd10cm.yaml, extract/diagnoses.py).

Each note is small: a procedure line (the injected level / region), a diagnosis line, and the needle work, so
each test shows one rule of the region decision, the concept table, the combination rule or the exclusions.
"""

import pytest

from notecheck.extract.icd10cm import load_lexicon
from notecheck.patterns_path import patterns_dir, load_yaml

LUMBAR = "Lumbar interlaminar epidural steroid injection at L5-S1 under fluoroscopy"
TECHNIQUE = "An 18g Tuohy needle was advanced at {level} with loss of resistance. Dexamethasone 10 mg injected."


def note(dx: str, procedure: str = LUMBAR, level: str = "L5-S1") -> str:
    technique = TECHNIQUE.format(level=level) if level else "Dexamethasone 10 mg injected."
    return f"PROCEDURE: {procedure}.\n{dx}\nTECHNIQUE: {technique}\nNo complications.\n"


@pytest.fixture(scope="module")
def dx(check):
    """The record's diagnoses as {concept: [codes]}, and the union of the codes; every evidence span is
    checked against the note."""
    def run(text: str):
        record = check(text).record
        for d in record.diagnoses:
            assert d.evidence, d
            for ev in d.evidence:
                assert text[ev.start:ev.end] == ev.text
            assert d.icd10 == (d.icd10_candidates[0].code if d.icd10_candidates else None)
        by_concept = {d.concept: [c.code for c in d.icd10_candidates] for d in record.diagnoses}
        return by_concept, {code for codes in by_concept.values() for code in codes}
    return run


# --- the region decision (§1: phrase words, then sentence levels/roots, then injected levels, then region) ---

def test_region_words_of_the_phrase_come_first(dx):
    # injected at L5-S1 (lumbosacral), but the diagnosis itself says lumbar
    assert dx(note("Diagnosis: left lumbar radiculopathy."))[1] == {"M54.16"}


def test_region_word_after_the_diagnosis(dx):
    assert dx(note("Diagnosis: Radiculopathy, lumbar region, right L5."))[1] == {"M54.16"}


def test_level_in_the_same_sentence(dx):
    assert dx(note("Diagnosis: radiculopathy from L4-L5."))[1] == {"M54.16"}


def test_nerve_root_named_alone(dx):
    assert dx(note("Diagnosis: left S1 radiculopathy.", level="L4-L5"))[1] == {"M54.17"}
    assert dx(note("Diagnosis: right L5 radiculopathy."))[1] == {"M54.16"}


def test_injected_level_when_the_sentence_names_none(dx):
    assert dx(note("Indication: radiculopathy."))[1] == {"M54.17"}
    assert dx(note("Indication: radiculopathy.", level="L3-L4"))[1] == {"M54.16"}


def test_procedure_region_when_no_level(dx):
    text = note("Indication: radicular pain.", procedure="Cervical interlaminar epidural steroid injection", level="")
    assert dx(text)[1] == {"M54.12"}


def test_caudal_without_a_level_is_lumbosacral(dx):
    text = note("Indication: radiculopathy.", procedure="Caudal epidural steroid injection via the sacral hiatus",
                level="")
    assert dx(text)[1] == {"M54.17"}


def test_two_levels_in_two_regions_give_both_codes(dx):
    assert dx(note("Diagnosis: radiculopathy at L4-L5 and L5-S1."))[1] == {"M54.16", "M54.17"}


def test_roots_of_a_distribution_and_a_fusion_range(dx):
    assert dx(note("Ind: severe right leg radicular pain, L5/S1 distribution."))[1] == {"M54.16", "M54.17"}
    assert dx(note("Dx: post-laminectomy syndrome, bilateral radicular pain, s/p L4-S1 fusion."))[1] == {
        "M96.1", "M54.16", "M54.17"}


def test_c8_t1_are_two_roots(dx):
    text = note("Diagnosis: C8-T1 radiculopathy.",
                procedure="Cervical interlaminar epidural steroid injection at C7-T1", level="C7-T1")
    assert dx(text)[1] == {"M54.12", "M54.14"}


def test_roots_of_the_phrase_outrank_other_levels_of_the_sentence(dx):
    # the L5-S1 is the MRI's; the radiculopathy is of the L5 root
    assert dx(note("Indication: left L5 radiculopathy, MRI left foraminal L5-S1 disc protrusion."))[1] == {"M54.16"}
    assert dx(note("Indication: bilateral L5 > S1 radicular leg pain."))[1] == {"M54.16", "M54.17"}
    text = note("Indication: right arm radicular pain in a C8 distribution.",
                procedure="Cervical interlaminar epidural steroid injection at C7-T1", level="C7-T1")
    assert dx(text)[1] == {"M54.12"}


def test_region_word_elsewhere_in_the_sentence_before_the_procedure_region(dx):
    text = note("Indication: bilateral lower extremity radicular pain and neurogenic claudication, multilevel "
                "lumbar stenosis.", procedure="Caudal epidural steroid injection via the sacral hiatus", level="")
    assert dx(text)[1] == {"M54.16", "M48.062"}


def test_claudication_under_a_caudal_catheter_is_lumbar(dx):
    text = note("Indication: buttock and thigh pain on walking, eased by sitting - neurogenic claudication.",
                procedure="Caudal epidural steroid injection via the sacral hiatus", level="")
    assert dx(text)[1] == {"M48.062"}


def test_far_levels_of_a_dictated_run_on_sentence_do_not_count(dx):
    filler = "and the patient has tried many things over a long time without much change " * 3
    text = note(f"Indication: right arm pain radiating to the thumb {filler} at C5-C6 and T2-T3 in the past.",
                procedure="Cervical interlaminar epidural steroid injection", level="")
    assert dx(text)[1] == {"M54.12"}


def test_diagnosis_line_outranks_the_history(dx):
    text = note("Dx: right C7 radiculopathy.\nHistory: persistent radicular pain limiting work.",
                procedure="Cervical interlaminar epidural steroid injection at C7-T1", level="C7-T1")
    assert dx(text)[1] == {"M54.12"}  # not also M54.13 from the injected C7-T1


# --- concepts and the code table ---

def test_sciatica_is_radiculopathy(dx):
    assert dx(note("Indication: left sciatica."))[0] == {"radiculopathy": ["M54.17"]}


def test_cervical_disc_with_radiculopathy_by_level(dx):
    cervical = dict(procedure="Cervical interlaminar epidural steroid injection at C7-T1", level="C7-T1")
    by_concept, codes = dx(note("Diagnosis: C5-C6 disc herniation with right C6 radiculopathy.", **cervical))
    assert codes == {"M50.122"}
    assert by_concept["radiculopathy"] == []  # stated, but its M54.12 yields to the combination code
    assert dx(note("Diagnosis: cervical disc herniation with radiculopathy.", **cervical))[1] == {"M50.10"}
    assert dx(note("Diagnosis: C6-C7 disc protrusion with radiculopathy.", **cervical))[1] == {"M50.123"}


def test_disc_without_a_radicular_concept_is_displacement(dx):
    cervical = dict(procedure="Cervical interlaminar epidural steroid injection at C7-T1", level="C7-T1")
    assert dx(note("Diagnosis: C5-C6 disc protrusion.", **cervical))[0] == {"disc_displacement": ["M50.222"]}
    assert dx(note("Diagnosis: L4-L5 disc herniation."))[1] == {"M51.26"}


def test_combination_rule_drops_radiculopathy_of_the_same_region_only(dx):
    assert dx(note("Diagnosis: lumbar radiculopathy due to L4-L5 disc herniation."))[1] == {"M51.16"}
    assert dx(note("Diagnosis: left lumbosacral radiculopathy secondary to L5-S1 disc protrusion."))[1] == {"M51.17"}
    # L4-L5 disc (lumbar) does not absorb an S1 (lumbosacral) radiculopathy
    assert dx(note("Diagnosis: left S1 radiculopathy; L4-L5 disc protrusion."))[1] == {"M54.17", "M51.16"}


def test_spondylosis_with_radiculopathy(dx):
    cervical = dict(procedure="Cervical interlaminar epidural steroid injection at C7-T1", level="C7-T1")
    assert dx(note("Diagnosis: cervical spondylosis with radiculopathy.", **cervical))[1] == {"M47.22"}
    # spondylosis without a radicular concept has no code in the §1 table
    assert dx(note("Diagnosis: lumbar spondylosis.", level="L4-L5"))[0] == {"spondylosis": []}


def test_stenosis_with_and_without_claudication(dx):
    assert dx(note("Diagnosis: lumbar spinal stenosis with neurogenic claudication.", level="L4-L5"))[0] == {
        "stenosis_with_claudication": ["M48.062"]}
    assert dx(note("Diagnosis: lumbar spinal stenosis.", level="L4-L5"))[1] == {"M48.061"}
    # stenosis and radiculopathy are both listed (no Excludes1 between M48.0 and M54.1)
    assert dx(note("Diagnosis: L4-L5 spinal stenosis with bilateral L5 radiculopathy.", level="L4-L5"))[1] == {
        "M48.061", "M54.16"}


def test_post_laminectomy_syndrome(dx):
    assert dx(note("Diagnosis: failed back surgery syndrome."))[1] == {"M96.1"}


@pytest.mark.parametrize("words, code", [
    ("complex regional pain syndrome type I of the left lower extremity", "G90.522"),
    ("CRPS, right upper extremity", "G90.511"),
    ("CRPS type I, bilateral lower extremities", "G90.523"),
    ("reflex sympathetic dystrophy of the foot", "G90.529"),
    ("complex regional pain syndrome", "G90.50"),
])
def test_crps_by_limb_and_side(dx, words, code):
    assert dx(note(f"Diagnosis: {words}.", level="L3-L4"))[1] == {code}


def test_herpes_zoster_takes_its_radicular_words(dx):
    text = note("Dx: Acute herpes zoster, left T8 dermatome, with severe radicular pain.",
                procedure="Thoracic interlaminar epidural steroid injection at T7-T8", level="T7-T8")
    assert dx(text)[0] == {"herpes_zoster": ["B02.29"]}


def test_postoperative_pain_and_thoracotomy(dx):
    thoracic = dict(procedure="Thoracic epidural catheter placement at T6-T7 for postoperative analgesia",
                    level="T6-T7")
    assert dx(note("Indication: POD 0 after right thoracotomy and lobectomy.", **thoracic))[1] == {"G89.12"}
    assert dx(note("Indication: postoperative right knee pain after total knee arthroplasty.",
                   procedure="Lumbar epidural catheter at L3-L4", level="L3-L4"))[1] == {"G89.18"}


def test_postoperative_day_with_pain(dx):
    text = note("Indication: post op day one status post exploratory laparotomy, uncontrolled pain despite PCA.",
                procedure="Thoracic epidural catheter at T8-T9", level="T8-T9")
    assert dx(text)[1] == {"G89.18"}


def test_catheter_placed_before_the_operation_treats_no_pain_yet(dx):
    text = note("PRE-OP BLOCK AREA - epidural for postoperative analgesia after planned colectomy.",
                procedure="Thoracic epidural catheter at T8-T9", level="T8-T9")
    assert dx(text)[1] == set()
    text = note("Placed in the block room before induction, for postoperative analgesia after laparotomy.",
                procedure="Thoracic epidural catheter at T8-T9", level="T8-T9")
    assert dx(text)[1] == set()


def test_cancer_pain_needs_pain(dx):
    assert dx(note("Indication: severe sacral pain from metastatic rectal cancer.", level="L3-L4"))[1] == {"G89.3"}
    assert dx(note("Indication: metastatic rectal cancer.\nPlan: follow up.", level="L3-L4"))[1] == set()
    # pain on the next line still ties to it
    assert dx(note("Indication: recurrent rectal cancer with presacral mass; colostomy in place.\n"
                   "Severe perineal pain despite opioids.", level="L3-L4"))[1] == {"G89.3"}


def test_cancer_words_yield_to_another_pain_concept(dx):
    text = note("S: multiple myeloma on chemotherapy, acute herpes zoster of the left T6 dermatome, severe pain.",
                procedure="Thoracic interlaminar epidural steroid injection at T6-T7", level="T6-T7")
    assert dx(text)[1] == {"B02.29"}


def test_axial_pain_codes_only_without_a_radicular_concept(dx):
    assert dx(note("Indication: axial low back pain, no radicular symptoms."))[1] == {"M54.50"}
    cervical = dict(procedure="Cervical interlaminar epidural steroid injection at C7-T1", level="C7-T1")
    assert dx(note("Indication: chronic neck pain.", **cervical))[1] == {"M54.2"}
    assert dx(note("Indication: low back pain radiating down the left leg to the lateral foot."))[0] == {
        "radiculopathy": ["M54.16"]}


def test_pain_descriptions_without_a_radicular_pattern_are_not_radiculopathy(dx):
    assert dx(note("Indication: chronic bilateral leg pain, worse with standing."))[1] == set()
    assert dx(note("Indication: right lateral leg pain into the dorsum of the foot.", level="L4-L5"))[1] == {"M54.16"}


# --- codes written in the note ---

def test_written_codes(dx):
    by_concept, codes = dx(note("Diagnosis: Lumbar radiculopathy, right S1 (M54.17); spondylolisthesis (M43.16); "
                                "rectal cancer (C20)."))
    assert codes == {"M54.16", "M54.17", "M43.16", "C20"}
    assert by_concept["other"] == ["M43.16", "C20"]


def test_written_code_descriptions(check):
    text = note("Diagnosis: lumbar facet arthropathy / spondylosis without radiculopathy (M47.816); "
                "lumbar radiculopathy (M54.16).", level="L4-L5")
    record = check(text).record
    described = {c.code: c.description for d in record.diagnoses for c in d.icd10_candidates}
    assert described["M54.16"] == "Radiculopathy, lumbar region"
    assert described["M47.816"] == "as written in the note"  # a valid code the lexicon does not hold


def test_headers_and_vertebrae_are_not_written_codes(dx):
    # M54.5 is a header since FY2022; "(T12)" is a vertebra; H2O is water
    text = note("Diagnosis: low back pain (M54.5), compression deformity (T12). Opening pressure 20 cm H2O.",
                level="L3-L4")
    assert dx(text)[1] == {"M54.50"}


def test_written_code_joins_the_combination_rule(dx):
    text = note("Dx: Right C7 radiculopathy due to C6-7 disc-osteophyte complex (M50.123).",
                procedure="Cervical interlaminar epidural steroid injection at C7-T1", level="C7-T1")
    assert dx(text)[1] == {"M50.123"}


# --- what is not a current diagnosis ---

@pytest.mark.parametrize("line", [
    "Indication: low back pain. No radiculopathy.",
    "Indication: low back pain. Denies leg pain radiating to the foot.",
    "Indication: low back pain. History of cervical radiculopathy, resolved.",
    "Indication: low back pain. Mother had spinal stenosis.",
    "Indication: low back pain. Rule out lumbar radiculopathy.",
    "Indication: low back pain. r/o lumbar radiculopathy.",
    "Indication: low back pain. Possible lumbar radiculopathy.",
    "Indication: low back pain. Suspected L5 radiculopathy.",
    "Indication: low back pain. Lumbar radiculopathy versus hip arthritis.",
    "Indication: low back pain. ?L5 radiculopathy.",
    "Indication: low back pain.\nMRI: L5-S1 disc protrusion abutting the S1 root.",
    "Indication: low back pain. MRI shows L4-L5 central canal stenosis.",
    "Indication: low back pain.\nPlan: consider surgery for spinal stenosis.",
])
def test_not_current(dx, line):
    assert dx(note(line, level="L4-L5"))[1] == {"M54.50"}


def test_assessment_line_under_an_a_p_header(dx):
    text = note("A/P:\n1. Left L5 radiculopathy 2/2 L4-L5 HNP, recurrence.\n   - Plan repeat L4-L5 ILESI.",
                level="L4-L5")
    assert dx(text)[1] == {"M51.16"}


def test_hard_wrapped_neurogenic_claudication(dx):
    text = note("PT: BUTTOCK/THIGH PAIN WITH WALKING, RELIEVED BY SITTING (NEUROGENIC\nCLAUDICATION).", level="L3-L4")
    assert dx(text)[1] == {"M48.062"}
    assert dx(note("Indication: low back pain; vascular claudication of the calves.", level="L3-L4"))[1] == {"M54.50"}


def test_imaging_findings_on_a_line_or_in_dictation(dx):
    line = "Indication: left S1 radiculopathy.\nMRI L-spine: L5-S1 protrusion abutting S1; mild canal stenosis L4-L5."
    assert dx(note(line))[1] == {"M54.17"}
    assert dx(note("Indication: left S1 radiculopathy. M R I shows an L5-S1 disc protrusion."))[1] == {"M54.17"}


def test_past_history_line(dx):
    assert dx(note("Indication: low back pain.\nPast spine history: lumbar spinal stenosis, fusion 2015.",
                   level="L4-L5"))[1] == {"M54.50"}


def test_onset_in_the_past_is_still_current(dx):
    assert dx(note("Indication: left L5 radiculopathy that began 3 months ago.", level="L4-L5"))[1] == {"M54.16"}


def test_consent_risks_are_not_diagnoses(dx):
    assert dx(note("Indication: left L5 radiculopathy. Consent obtained after discussing risks "
                   "(back pain, infection, nerve injury).", level="L4-L5"))[1] == {"M54.16"}


# --- the lexicon itself ---

def test_every_listed_code_has_its_description_and_every_concept_a_source():
    data = load_yaml(patterns_dir() / "icd10cm.yaml")
    ids = [c["id"] for c in data["concepts"]]
    assert len(ids) == len(set(ids))
    for c in data["concepts"]:
        assert c["source"]["code_set"] == "ICD-10-CM tabular FY2025" and c["source"]["rules_md"]
        assert c["source"]["confidence"]
        for codes in list((c.get("codes") or {}).values()) + [c.get("all_regions") or {}]:
            assert all(desc.strip() for desc in codes.values()), c["id"]
    lex = load_lexicon(patterns_dir())
    assert lex.descriptions["M54.16"] == "Radiculopathy, lumbar region"
    assert lex.code_concepts["M50.122"] == ("disc_with_radiculopathy", "cervical")
    assert lex.code_concepts["G90.522"][0] == "crps"


def test_target_concepts_are_lexicon_concepts():
    import json
    lex = load_lexicon(patterns_dir())
    rules = json.loads((patterns_dir() / "targets" / "diagnoses.json").read_text())["target_rules"]
    assert {r["metadata"]["concept"] for r in rules} <= set(lex.concepts)
    assert all(r["metadata"]["id"].startswith("DX-") for r in rules)
