"""The traps named in the core issue: each must pick the right code or fact, for the right reason."""

import pytest

BASE = (
    "Informed consent was obtained. {body} Pre-procedure pain 7/10, post-procedure pain 2/10. "
    "There were no complications. The patient tolerated the procedure well and was discharged home."
)


def note(body: str) -> str:
    return BASE.format(body=body)


def finding(result, rid):
    return next(f for f in result.findings if f.id == rid)


def test_no_catheter_left_is_single_injection(check):
    r = check(note("L4-L5 interlaminar epidural steroid injection under fluoroscopy. Omnipaque 240 1 mL. "
                   "Depo-Medrol 80 mg injected. No catheter was left in place."))
    assert r.record.catheter.indwelling is False
    assert r.code.cpt == "62323"


def test_catheter_removed_intact_is_single_injection(check):
    r = check(note("Caudal epidural via the sacral hiatus under fluoroscopy with Omnipaque 240 2 mL. "
                   "A catheter was threaded to L5-S1, Kenalog 40 mg in 5 mL saline was injected, "
                   "and the catheter was removed intact."))
    assert r.record.catheter.placed is True
    assert r.record.catheter.removed is True
    assert r.record.catheter.indwelling is False
    assert r.code.cpt == "62323"


def test_catheter_left_connected_to_pump_is_indwelling(check):
    r = check(note("T7-T8 interlaminar epidural under fluoroscopy, contrast confirmed spread. "
                   "A 19G catheter was threaded 5 cm and left in place, connected to an infusion pump "
                   "with 0.1% ropivacaine 8 mL/hr."))
    assert r.record.catheter.indwelling is True
    assert r.code.cpt == "62325"
    ev = r.record.evidence["catheter.indwelling"]
    assert any("left in place" in e.text or "infusion pump" in e.text for e in ev)


def test_ultrasound_guided_is_without_imaging(check):
    r = check(note("Ultrasound-guided caudal epidural steroid injection through the sacral hiatus. "
                   "Dexamethasone 10 mg with 5 mL saline."))
    assert r.record.imaging == "ultrasound"
    assert r.code.cpt == "62322"
    assert any(n.id == "NOTE-ULTRASOUND" for n in r.code.notes)
    assert finding(r, "contrast").status == "not_applicable"


def test_ct_guided_is_with_imaging(check):
    r = check(note("CT-guided interlaminar epidural steroid injection at T10-11. Omnipaque 300 1 mL. "
                   "Triamcinolone 40 mg injected."))
    assert r.record.imaging == "ct"
    assert r.record.region == "thoracic"
    assert r.code.cpt == "62321"


def test_no_fluoroscopy_available_is_explicit_none(check):
    r = check(note("No fluoroscopy available. L5-S1 interlaminar epidural using loss of resistance. "
                   "Depo-Medrol 80 mg in 3 mL."))
    assert r.record.imaging == "none"
    assert r.code.cpt == "62322"
    assert finding(r, "imaging_guidance").status == "met"
    assert finding(r, "contrast").status == "not_applicable"


def test_loss_of_resistance_alone_does_not_say_imaging(check):
    r = check(note("L5-S1 interlaminar epidural using loss of resistance to saline. Depo-Medrol 80 mg in 3 mL."))
    assert r.record.imaging is None
    assert finding(r, "imaging_guidance").status == "missing"


def test_caudal_is_lumbar_sacral_family(check):
    r = check(note("Caudal epidural steroid injection through the sacral hiatus under fluoroscopy. "
                   "Omnipaque 240 3 mL showed epidural spread. Kenalog 80 mg in 10 mL total."))
    assert r.record.region == "sacral"
    assert r.record.approach == "caudal"
    assert "sacral hiatus" in r.record.levels
    assert r.code.cpt == "62323"


def test_c7_t1_is_cervical_thoracic(check):
    r = check(note("Cervical interlaminar epidural steroid injection at C7-T1 under fluoroscopy using the "
                   "contralateral oblique view. Omnipaque 240 1 mL. Dexamethasone 10 mg."))
    assert r.record.levels == ["C7-T1"]
    assert r.record.region == "cervical"
    assert r.code.cpt == "62321"


def test_technique_region_wins_over_header(check):
    text = ("PROCEDURE: Lumbar epidural steroid injection\n"
            "TECHNIQUE: Under fluoroscopy the C6-C7 interspace was identified and a 20G Tuohy needle was advanced "
            "using loss of resistance. Omnipaque 240 1 mL confirmed epidural spread. Dexamethasone 10 mg injected.\n"
            "CONSENT: obtained\nPain 6/10 before, 2/10 after.")
    r = check(text)
    assert r.record.region == "cervical"
    assert r.code.cpt == "62321"


def test_contrast_omitted_for_allergy_meets_requirement(check):
    r = check(note("L4-L5 interlaminar epidural steroid injection under fluoroscopy. Contrast was not used due to "
                   "iodinated contrast allergy. Dexamethasone 10 mg in 2 mL."))
    assert r.record.contrast.used is False
    assert r.record.contrast.omission_reason == "iodinated contrast allergy"
    assert finding(r, "contrast").status == "met"


def test_denies_contrast_allergy_is_not_a_reason(check):
    r = check(note("L4-L5 interlaminar epidural steroid injection under fluoroscopy. Patient denies contrast allergy. "
                   "Dexamethasone 10 mg in 2 mL."))
    assert r.record.contrast.omission_reason is None
    assert finding(r, "contrast").status == "missing"


def test_plan_and_history_are_not_this_procedure(check):
    r = check(note("L4-L5 interlaminar epidural steroid injection under fluoroscopy with Omnipaque 240 1 mL. "
                   "Depo-Medrol 80 mg. Prior L5-S1 TFESI gave 60% relief. "
                   "If no relief, will consider transforaminal approach."))
    assert r.code.cpt == "62323"
    assert r.record.approach == "interlaminar"
    assert r.record.levels == ["L4-L5"]
    assert r.code.out_of_family is None


def test_transforaminal_note_is_out_of_family(check):
    r = check(note("Left L5-S1 transforaminal epidural steroid injection under fluoroscopy. "
                   "Omnipaque 240 1 mL, dexamethasone 10 mg."))
    assert r.code.cpt is None
    assert r.code.out_of_family == "transforaminal"
    assert "64483" in r.code.notes[0].message


def test_cesarean_anesthesia_epidural_is_not_6232x(check):
    text = ("Anesthesia record. Patient for repeat cesarean delivery. L3-L4 epidural catheter placed with "
            "loss of resistance, 2% lidocaine 15 mL given for surgical anesthesia. Catheter left in place.")
    r = check(text)
    assert r.code.cpt is None
    assert r.code.out_of_family == "anesthesia"


def test_run_together_transcription_sections(check):
    text = ("PROCEDURE: , Lumbar epidural steroid injection at L4-5 under fluoroscopic guidance.,ANESTHESIA: , "
            "Local.,CONSENT: , Informed consent was obtained.,DESCRIPTION: , The patient was placed prone. "
            "A 20-gauge Tuohy needle entered the L4-5 interspace with loss of resistance. No catheter was used. "
            "Omnipaque 240 2 mL showed epidural spread. 80 mg Depo-Medrol with 3 mL saline injected.,"
            "COMPLICATIONS: , None.,PAIN: , 8/10 before, 3/10 after.")
    r = check(text)
    assert r.record.levels == ["L4-L5"]
    assert r.code.cpt == "62323"
    assert r.record.consent is True
    assert r.record.pain_scores.pre == 8 and r.record.pain_scores.post == 3
    assert finding(r, "complications").status == "met"


def test_template_blanks_are_not_documentation(check):
    text = ("PROCEDURE: L4-L5 interlaminar epidural steroid injection under fluoroscopy.\n"
            "CONSENT: ___\nCOMPLICATIONS: ___\nPre-procedure pain: /10\nPost-procedure pain: /10\n"
            "Omnipaque 240 1 mL. Depo-Medrol 80 mg in 2 mL.")
    r = check(text)
    assert r.record.consent is False
    assert r.record.pain_scores.pre is None and r.record.pain_scores.post is None
    assert finding(r, "consent").status == "missing"
    assert finding(r, "complications").status == "missing"


@pytest.mark.parametrize("body, weeks, status", [
    ("Failed 6 weeks of physical therapy and NSAIDs.", 6, "met"),
    ("Tried physical therapy x10 days.", 1.43, "missing"),
    ("Failed physical therapy and NSAIDs.", None, "missing"),
    ("Pain despite 3 months of home exercise program.", 13.04, "met"),
])
def test_conservative_therapy_duration(check, body, weeks, status):
    r = check(note("L4-L5 interlaminar ESI under fluoroscopy with Omnipaque 240 1 mL. Depo-Medrol 80 mg. " + body))
    assert r.record.conservative_therapy.weeks == weeks
    assert finding(r, "conservative_therapy").status == status


def test_herpes_zoster_exempts_conservative_therapy(check):
    r = check(note("Acute herpes zoster of the T6 dermatome. T6-T7 interlaminar epidural under fluoroscopy with "
                   "Omnipaque 240 1 mL. Dexamethasone 10 mg."))
    assert r.record.pain_context == "herpes_zoster"
    assert finding(r, "conservative_therapy").status == "not_applicable"


def test_postoperative_catheter_exempts_chronic_pain_requirements(check):
    r = check(note("Thoracic epidural catheter for postoperative pain after thoracotomy. T6-T7 interlaminar "
                   "epidural using loss of resistance, without fluoroscopy. Catheter threaded 5 cm, left in place "
                   "and connected to PCEA with 0.125% bupivacaine."))
    assert r.record.catheter.indwelling is True
    assert r.code.cpt == "62324"
    assert "59" in r.code.modifiers
    assert finding(r, "conservative_therapy").status == "not_applicable"
    assert finding(r, "imaging_correlation").status == "not_applicable"


def test_steroid_in_ml_only_has_no_dose(check):
    r = check(note("L4-L5 interlaminar ESI under fluoroscopy with Omnipaque 240 1 mL. 2 mL of Kenalog injected."))
    kenalog = next(m for m in r.record.medications if m.category == "steroid")
    assert kenalog.dose is None and kenalog.volume_ml == 2
    assert finding(r, "medication_dose").status == "missing"


def test_mixture_assigns_each_quantity(check):
    r = check(note("L4-L5 interlaminar ESI under fluoroscopy with Omnipaque 240 1 mL. "
                   "80 mg Depo-Medrol in 4 mL total with 1 mL 1% lidocaine."))
    meds = {m.name: m for m in r.record.medications}
    steroid = meds["methylprednisolone acetate"]
    lido = meds["lidocaine"]
    assert (steroid.dose, steroid.unit) == (80, "mg")
    assert lido.volume_ml == 1 and lido.concentration == "1%"
    assert any(e.text == "4 mL" for e in r.record.evidence["injectate_volume"])


def test_not_an_epidural_note_is_an_error(check):
    r = check("Patient seen for follow-up of hypertension. Blood pressure well controlled on lisinopril.")
    assert r.status == "error"
    assert "not an epidural injection note" in r.error


def test_epidural_only_in_history_and_plan(check):
    r = check("Clinic visit. Prior L4-L5 epidural steroid injection gave 70% relief for 5 months. "
              "Plan: will schedule repeat lumbar epidural steroid injection.")
    assert r.status == "ok"
    assert r.code.cpt is None
    assert r.code.out_of_family == "no_procedure"


def test_surgical_anesthesia_epidural_is_not_6232x(check):
    text = ("Anesthesia note for right total knee arthroplasty. L3-L4 epidural placed with loss of resistance "
            "for surgical anesthesia; 2% lidocaine 15 mL given in divided doses. Catheter removed at the end of surgery.")
    r = check(text)
    assert r.code.cpt is None
    assert r.code.out_of_family == "anesthesia"
