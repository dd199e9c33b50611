"""Wording read since round 9's failures were read (corpora/dev/dev_zg..zj): one general rule per test."""

from __future__ import annotations

from test_traps import finding

TEMPLATE = """Procedure Suite | Template: SPINE INJECTION (interlaminar/caudal) v3
Procedure: [x] Lumbar interlaminar ESI  [ ] Cervical interlaminar ESI  [ ] Caudal ESI  [ ] Transforaminal
Level: L4-L5          Approach: [x] Midline  [ ] Paramedian
Pre-op Dx:  Lumbar spinal stenosis with neurogenic claudication
Conservative tx:  [x] PT  8 wks   [x] NSAIDs
Consent:   [x] Risks/benefits/alternatives discussed, written consent signed
Guidance:  [x] Fluoroscopy  [ ] Ultrasound  [ ] None
Contrast:  {contrast}
Pain score pre (0-10 NRS): 7
Technique: Prone. 18G Tuohy L4-L5 midline, LOR to saline. Triamcinolone 40 mg / 1 mL + PF saline 3 mL.
Complications: [x] None
Pain score post: 3/10. D/c home.
"""


def test_a_template_title_listing_choices_and_unticked_items_are_not_the_procedure(check):
    r = check(TEMPLATE.format(contrast="[x] Isovue-M 200  2 mL   [ ] None (reason: ________)"))
    assert (r.code.cpt, r.record.approach, r.record.levels) == ("62323", "interlaminar", ["L4-L5"])
    assert (r.record.pain_scores.pre, r.record.pain_scores.post) == (7, 3) and r.record.pain_scores.scale
    assert r.record.contrast.used is True


def test_a_ticked_none_is_no_contrast(check):
    r = check(TEMPLATE.format(contrast="[x] None"))
    assert r.record.contrast.used is False and finding(r, "contrast").status == "missing"


def test_a_ticked_other_family_is_that_family(check):
    r = check(TEMPLATE.replace("[x] Lumbar interlaminar ESI", "[ ] Lumbar interlaminar ESI").replace(
        "[ ] Transforaminal", "[x] Transforaminal ESI").format(contrast="[x] Omnipaque 240 1 mL"))
    assert r.code.out_of_family == "transforaminal"


def test_an_approach_weighed_and_not_chosen(check):
    r = check("Plan R L5-S1 TFESI today (interlaminar not chosen given purely foraminal pathology).\n"
              "Procedure: Right L5-S1 transforaminal ESI under fluoro. Dexamethasone 10 mg.")
    assert r.code.out_of_family == "transforaminal"


def test_speech_recognition_mishearings(check):
    r = check("Lumbar epi dural steroid injection at L5-S1, left para median, under flora scopy. Informed consent "
              "obtained. One mL of Omni pack two forty showed epidural spread. Kenna log eighty milligrams injected "
              "with three mL of one percent lido Kane. Pre procedure pain eight out of ten, after two out of ten.")
    assert r.code.cpt == "62323" and r.record.imaging == "fluoroscopy" and r.record.contrast.used is True
    assert {m.name for m in r.record.medications} >= {"triamcinolone acetonide", "lidocaine"}


def test_a_removal_still_to_come_leaves_the_catheter_indwelling(check):
    r = check("L2-L3 epidural catheter under fluoroscopy, LOR, catheter threaded 5 cm and tunneled, left in place "
              "for continuous infusion of bupivacaine 0.1% at 6 mL/hr.\nPlan: hold enoxaparin until catheter removed.")
    assert r.code.cpt == "62327" and r.record.catheter.indwelling is True


def test_a_resident_year_is_not_cancer_and_considered_is_not_diagnosed(check):
    r = check("Dx: lumbar radiculopathy. Postherpetic neuralgia considered by PCP - never had a rash.\n"
              "L5-S1 interlaminar ESI under fluoroscopy, Kenalog 80 mg.\nResident: CA-3 Anesthesiology")
    assert {d.concept for d in r.record.diagnoses} == {"radiculopathy"}


def test_no_preoperative_epidural_then_a_postoperative_one(check):
    r = check("Indication: Acute post-thoracotomy pain. POD 0 after an open thoracotomy. A preoperative epidural "
              "was not placed because a VATS approach was planned.\nT6-T7 epidural catheter, landmark, LOR, left "
              "in place, bupivacaine 0.1% at 6 mL/hr.")
    assert {c.code for d in r.record.diagnoses for c in d.icd10_candidates} == {"G89.12"}


def test_a_biologic_is_measured_by_volume(check):
    r = check("L5-S1 interlaminar epidural under fluoroscopy. Consent obtained. Platelet-rich plasma 4 mL injected.")
    assert finding(r, "medication_dose").status == "met" and finding(r, "biologic_injectant").status == "missing"
