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
    assert [f.id for f in r.findings if f.status == "missing"] == []


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
