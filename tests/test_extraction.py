"""Extraction on note styles other than tidy prose: terse shorthand, ALL CAPS, inline labels."""

TERSE = """DX: L radiculopathy, L5-S1 HNP per MRI.
PROC: L5-S1 ILESI w/ fluoro, L paramedian.
Consent signed. Timeout done.
18g Tuohy, LOR to air at L5-S1. Omni 240 1.5cc - good epidural spread, no vasc uptake.
Injected DMP 80 + 2cc PF NS.
Pain 8 -> 3.
No complications. D/c home stable.
PT x 8 wks failed, NSAIDs.
"""

CAPS = ("PROCEDURE: CERVICAL INTERLAMINAR EPIDURAL STEROID INJECTION C6-C7 UNDER FLUOROSCOPY. INDICATION: CERVICAL "
        "RADICULOPATHY, LEFT C7, FAILED 2 MONTHS OF PHYSICAL THERAPY. MRI SHOWS C6-7 DISC PROTRUSION. INFORMED CONSENT "
        "OBTAINED. 20 GAUGE TUOHY NEEDLE ADVANCED INTO THE C6-C7 INTERSPACE WITH LOSS OF RESISTANCE. OMNIPAQUE 240 1 ML "
        "CONFIRMED EPIDURAL SPREAD. DEXAMETHASONE 10 MG WITH 2 ML NORMAL SALINE INJECTED. NO COMPLICATIONS. PAIN 7/10 "
        "BEFORE AND 2/10 AFTER. PATIENT DISCHARGED IN STABLE CONDITION.")


def test_terse_shorthand_note(check):
    r = check(TERSE)
    rec = r.record
    assert r.code.cpt == "62323"
    assert rec.levels == ["L5-S1"]
    assert rec.laterality == "left"
    assert (rec.pain_scores.pre, rec.pain_scores.post) == (8, 3)
    assert rec.conservative_therapy.weeks == 8
    steroid = next(m for m in rec.medications if m.category == "steroid")
    assert (steroid.name, steroid.dose, steroid.unit) == ("methylprednisolone acetate", 80, "mg")
    assert rec.post_procedure_assessment and rec.consent
    # "Pain 8 -> 3" implies the 0-10 NRS but names no scale: the one (warning-level) gap
    assert [f.id for f in r.findings if f.status == "missing"] == ["pain_scale"]
    assert rec.pain_scores.scale is None


def test_all_caps_note(check):
    r = check(CAPS)
    assert r.code.cpt == "62321"
    assert r.record.levels == ["C6-C7"]
    assert r.record.conservative_therapy.weeks == 8.69
    assert (r.record.pain_scores.pre, r.record.pain_scores.post) == (7, 2)


def test_inline_label_does_not_swallow_the_procedure(check):
    text = ("Diagnosis: lumbar radiculopathy. The patient failed 6 weeks of PT.\n"
            "Under fluoroscopy a 20G Tuohy needle entered the L4-L5 interspace with loss of resistance. "
            "Omnipaque 240 1 mL. Depo-Medrol 80 mg.")
    r = check(text)
    assert r.record.levels == ["L4-L5"]
    assert r.code.cpt == "62323"


def test_bare_number_after_kenalog_40_brand_is_not_read_as_dose(check):
    r = check("L4-L5 interlaminar ESI under fluoroscopy, Omnipaque 240 1 mL. Kenalog-40 2 mL injected.")
    steroid = next(m for m in r.record.medications if m.category == "steroid")
    assert steroid.dose is None and steroid.volume_ml == 2


def test_labor_epidural_requirements_do_not_apply(check):
    r = check("Labor epidural. Patient in active labor requesting analgesia. L3-4 epidural catheter placed with LOR "
              "to saline, threaded 5 cm, infusion of 0.1% bupivacaine with fentanyl 2 mcg/mL at 10 mL/hr started.")
    assert r.code.out_of_family == "anesthesia"
    assert {f.status for f in r.findings} == {"not_applicable"}


BASE = ("Informed consent was obtained. {body} Pre-procedure pain 7/10, post-procedure pain 2/10. "
        "No complications. Discharged home.")


def test_device_out_of_service_and_instead_of(check):
    r = check(BASE.format(body="The C-arm is out of service today, so a landmark technique was used at C7-T1 "
                               "interlaminar. Dexamethasone 10 mg."))
    assert r.record.imaging == "none" and r.code.cpt == "62320"
    r = check(BASE.format(body="Ultrasound guidance was used instead of fluoroscopy for the caudal epidural via the "
                               "sacral hiatus. Dexamethasone 10 mg."))
    assert r.record.imaging == "ultrasound" and r.code.cpt == "62322"


def test_risk_list_does_not_make_consent_hypothetical(check):
    r = check("We discussed the risks including infection, bleeding and dural puncture, and the patient gave written "
              "informed consent. L4-L5 interlaminar epidural steroid injection under fluoroscopy.")
    assert r.record.consent is True
    assert r.record.complications_documented is False  # risks explained are not complications that happened


def test_scale_range_is_not_a_score(check):
    r = check("L4-L5 interlaminar ESI. Pre-procedure pain (NRS 0-10): 7/10. Post-procedure pain (NRS 0-10): 2/10.")
    assert (r.record.pain_scores.pre, r.record.pain_scores.post) == (7, 2)


def test_urinary_catheter_is_not_an_epidural_catheter(check):
    r = check("Patient has an indwelling Foley catheter. L4-L5 interlaminar epidural steroid injection under "
              "fluoroscopy, Omnipaque 240 1 mL, Depo-Medrol 80 mg.")
    assert r.record.catheter.placed is False and r.code.cpt == "62323"


def test_midline_needle_and_catheter_tip_level(check):
    r = check("Under fluoroscopy an 18G Tuohy was advanced midline into the C7-T1 interspace for an interlaminar epidural. A catheter was threaded "
              "and steered cephalad under live fluoroscopy to the left C5-C6 level, dexamethasone 10 mg injected, and "
              "the catheter was removed intact.")
    assert r.record.laterality == "midline"
    assert r.record.levels == ["C7-T1"]
    assert r.code.cpt == "62321"


def test_manner_of_a_past_procedure_is_past(check):
    r = check("S/p L4-L5 ILESI 3 months ago under fluoroscopy with contrast. Today L4-L5 interlaminar epidural by "
              "landmark technique. No fluoroscopy or contrast used today. Depo-Medrol 80 mg.")
    assert r.record.imaging == "none"
    assert r.record.contrast.used is False
    assert r.code.cpt == "62322"
