"""Sedation level and its reason, a separately identifiable E/M, and biologic injectants of this session
(notecheck/extract/sedation.py; issue 6 §2, §3, §5)."""

import pytest

NOTE = (
    "PROCEDURE: Lumbar interlaminar epidural steroid injection, L5-S1, under fluoroscopic guidance.\n"
    "INDICATION: Left L5 radiculopathy.\n"
    "{body}\n"
    "TECHNIQUE: Prone. 1% lidocaine 3 mL skin. 20g Tuohy, LOR to saline at L5-S1. Omnipaque 240 2 mL with "
    "epidural spread. Dexamethasone 10 mg with 2 mL saline injected. No complications.\n"
)


def _record(check, body):
    note = NOTE.format(body=body)
    result = check(note)
    record = result.record
    for key in ("sedation", "sedation.justification", "separate_em"):
        for ev in record.evidence.get(key, []):
            assert note[ev.start:ev.end] == ev.text
    return note, result, record


@pytest.mark.parametrize("body, level, agents", [
    ("Moderate sedation with midazolam 2 mg IV and fentanyl 50 mcg IV was administered.", "moderate",
     ["midazolam", "fentanyl"]),
    ("Conscious sedation was provided by the RN.", "moderate", []),
    ("Sedation (RN): midazolam 1 mg IV at 1412, fentanyl 25 mcg IV at 1413.", "moderate", ["midazolam", "fentanyl"]),
    ("Versed 2 mg IV given.", "moderate", ["midazolam"]),
    ("Deep sedation was administered by the anesthesiologist.", "deep", []),
    ("Propofol sedation by the anesthesia team.", "deep", ["propofol"]),
    ("Monitored anesthesia care (MAC) was provided by anesthesia.", "mac", []),
    ("The procedure was performed under general anesthesia with an LMA.", "general", []),
    ("Anesthesia: general endotracheal.", "general", []),
    # several levels: the deepest wins
    ("Started with moderate sedation, midazolam 2 mg IV; converted to general anesthesia with LMA.", "general",
     ["midazolam"]),
    ("IV sedation with midazolam 2 mg, then propofol under MAC.", "mac", ["midazolam", "propofol"]),
    # a template field with a bare level word
    ("Sedation: moderate (RN-administered), see flowsheet.", "moderate", []),
    ("Anesthesia: general.", "general", []),
])
def test_sedation_levels(check, body, level, agents):
    note, result, record = _record(check, body)
    assert record.sedation.level == level
    assert record.sedation.agents == agents
    assert record.evidence["sedation"]
    assert "NOTE-SEDATION" in [n.id for n in result.code.notes]


@pytest.mark.parametrize("body", [
    "Sedation: none. Local anesthetic only.",
    "No sedation was given.",
    "The patient declined IV sedation; local only.",
    "[ ] Moderate sedation  [x] Local only",
    "Moderate sedation: not required.",
    "Sedation: moderate - not required",
    "Anesthesia: local",
    "Primary anesthetic: general (separate record).",
    # oral anxiolysis and minimal sedation are not sedation for the coverage rules
    "Premedicated with oral diazepam 5 mg for anxiety.",
    "Lorazepam 1 mg PO given pre-procedure.",
    "Midazolam 2 mg PO given for anxiolysis.",
    "Minimal sedation with midazolam 1 mg IV.",
    # plan, history, another procedure's anesthetic, consent, allergy
    "Plan: next injection under IV sedation.",
    "Prior ESI was performed under MAC at another facility.",
    "Status post right TKA this morning under general anesthesia (separate anesthesia record).",
    "Risks of general anesthesia and sedation were discussed; consent signed.",
    "Allergies: midazolam (paradoxical agitation).",
    # fentanyl as the injectate, or systemic analgesia that failed, is not sedation
    "Fentanyl 50 mcg was injected into the epidural space.",
    "Pain uncontrolled despite IV fentanyl and hydromorphone PCA.",
    "Patient intubated and ventilated in the ICU.",
    "G1P0, GA 39 weeks.",
])
def test_not_sedation(check, body):
    _, result, record = _record(check, body)
    assert record.sedation.level is None
    assert record.sedation.agents == []
    assert not record.sedation.justification
    assert "sedation" not in record.evidence
    assert "NOTE-SEDATION" not in [n.id for n in result.code.notes]


@pytest.mark.parametrize("body, reason", [
    ("Because she could not lie still, IV sedation was given.", "could not lie still"),
    ("Reason for sedation: severe claustrophobia. Midazolam 2 mg IV given.", "claustrophobia"),
    ("Anxiety not relieved by oral lorazepam 1 mg. Midazolam 2 mg IV given.", "Anxiety"),
    ("History of vasovagal reaction with prior injection. Midazolam 1 mg IV.", "vasovagal"),
    ("The procedure was performed under general anesthesia because of severe developmental delay.",
     "developmental delay"),
    ("Parkinson disease with severe tremor. Conscious sedation with midazolam 2 mg IV.", "Parkinson disease"),
    ("A prior attempt awake was aborted. MAC was provided.", "aborted"),
    ("Unable to lie prone for the procedure; moderate sedation given.", "Unable to lie prone"),
])
def test_sedation_justification_documented(check, body, reason):
    _, _, record = _record(check, body)
    assert record.sedation.level is not None
    assert record.sedation.justification
    assert reason in [ev.text for ev in record.evidence["sedation.justification"]]


@pytest.mark.parametrize("body", [
    "Moderate sedation at patient request. Midazolam 2 mg IV.",
    "Patient is anxious. Midazolam 2 mg IV given.",
    "The patient denies anxiety. IV sedation with midazolam 2 mg.",
    "Failed attempts at physical therapy. IV sedation with midazolam.",
    # today's vasovagal episode is a complication, not why sedation was chosen
    "Midazolam 1 mg IV. The patient had a brief vasovagal episode after the procedure, resolved with fluids.",
])
def test_sedation_without_a_reason(check, body):
    _, _, record = _record(check, body)
    assert record.sedation.level == "moderate"
    assert not record.sedation.justification
    assert "sedation.justification" not in record.evidence


def test_no_sedation_means_no_justification_even_with_a_reason(check):
    _, _, record = _record(check, "Severe claustrophobia; local anesthetic only, no sedation.")
    assert record.sedation.level is None and not record.sedation.justification


@pytest.mark.parametrize("body", [
    "In addition, the patient was evaluated for a new complaint of right knee pain; exam showed effusion, "
    "X-ray ordered.",
    "Separate E/M visit: also addressed her uncontrolled hypertension; lisinopril increased.",
    "A significant, separately identifiable evaluation and management service was performed for new shoulder pain.",
    "Plan: Follow up in 2 weeks. Also addressed her new right knee pain: X-ray ordered, start meloxicam.",
])
def test_separate_em_documented(check, body):
    _, _, record = _record(check, body)
    assert record.separate_em
    assert record.evidence["separate_em"]


@pytest.mark.parametrize("body", [
    "No new complaints. H&P reviewed, decision made to proceed with injection.",
    "There is no separately identifiable E/M service today.",
    "The pre-procedure history and physical was performed and the indication reviewed.",
    "Patient presents with a new complaint of left leg pain radiating to the foot consistent with L5 radiculopathy.",
    "New patient. Also evaluated her left L5 radiculopathy and decided to proceed with injection.",
    "Plan: will address her knee pain at the next visit.",
    "Previously evaluated for knee pain by orthopedics.",
])
def test_no_separate_em(check, body):
    _, _, record = _record(check, body)
    assert not record.separate_em
    assert "separate_em" not in record.evidence


@pytest.mark.parametrize("body, names", [
    ("Platelet-rich plasma 4 mL was injected into the epidural space.", ["platelet-rich plasma"]),
    ("Injectate: bone marrow aspirate concentrate 3 mL.", ["bone marrow aspirate concentrate"]),
    ("Vitamin B12 1000 mcg injected epidurally with the steroid.", ["vitamin B12"]),
    ("Wharton's jelly 2 mL and exosomes were injected.", ["Wharton's jelly", "exosomes"]),
    ("Mesenchymal stem cells 2 mL injected at L5-S1.", ["stem cells"]),
    ("Amniotic membrane allograft 1 mL injected.", ["amniotic tissue/fluid"]),
    ("Procedure: L5-S1 interlaminar epidural injection of PRP.", ["platelet-rich plasma"]),
])
def test_biologic_injectants_are_medications_of_this_session(check, body, names):
    _, _, record = _record(check, body)
    assert [m.name for m in record.medications if m.category == "biologic"] == names
    assert all(m.evidence for m in record.medications if m.category == "biologic")


@pytest.mark.parametrize("body", [
    "We discussed PRP as an alternative; it is not covered and she declined.",
    "The patient declined stem cell injection.",
    "Will consider amniotic membrane allograft injection next visit.",
    "Regenerative medicine options were discussed.",
    "PMH: B12 deficiency, hypertension.",
    "Oral B12 daily.",
    "G2P1 in labor, membranes ruptured with clear amniotic fluid.",
])
def test_biologics_only_discussed_are_not_medications(check, body):
    _, _, record = _record(check, body)
    assert not [m for m in record.medications if m.category == "biologic"]
    # the session's other drugs are untouched
    assert {"lidocaine", "dexamethasone sodium phosphate"} <= {m.name for m in record.medications}
