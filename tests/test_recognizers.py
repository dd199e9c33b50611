"""The regex recognizers: what they find, their exact offsets and parsed values (cf. presidio's
per-recognizer tests that pin positions)."""

import pytest

from notecheck.extract.mentions import view_of


@pytest.fixture(scope="module")
def spans(checker):
    def run(text, label):
        view = view_of(checker.nlp(text))
        return [(m.text, m.start, m.end, m.meta) for m in view.of(label)]

    return run


@pytest.mark.parametrize("text, level, surface", [
    ("Entered at L4-L5 today.", "L4-L5", "L4-L5"),
    ("Entered at L4-5 today.", "L4-L5", "L4-5"),
    ("Entered at L5/S1 today.", "L5-S1", "L5/S1"),
    ("Entered at C7-T1 today.", "C7-T1", "C7-T1"),
    ("Entered at T10-11 today.", "T10-T11", "T10-11"),
    ("Entered at l4 to l5 today.", "L4-L5", "l4 to l5"),
    ("Needle placed through the sacral hiatus.", "sacral hiatus", "sacral hiatus"),
])
def test_levels(spans, text, level, surface):
    found = spans(text, "LEVEL")
    assert len(found) == 1
    got, start, end, meta = found[0]
    assert got == surface and text[start:end] == surface
    assert meta["level"] == level


@pytest.mark.parametrize("text", ["Levels L3-L5 were imaged.", "Pain in T1-7 dermatomes.", "Code L7-8."])
def test_non_adjacent_or_impossible_levels_are_not_interspaces(spans, text):
    assert spans(text, "LEVEL") == []


@pytest.mark.parametrize("text, surface, number, unit, kind", [
    ("Depo-Medrol 80 mg was given.", "80 mg", 80, "mg", "dose"),
    ("Depo-Medrol 80mg was given.", "80mg", 80, "mg", "dose"),
    ("Injected 4 mL of saline.", "4 mL", 4, "mL", "volume"),
    ("Injected 3 cc of saline.", "3 cc", 3, "mL", "volume"),
    ("Bupivacaine 0.25% was used.", "0.25%", 0.25, "%", "concentration"),
    ("Dexamethasone 10 mg/mL, 1 vial.", "10 mg/mL", 10, "mg/mL", "concentration"),
    ("Fentanyl 100 mcg bolus.", "100 mcg", 100, "mcg", "dose"),
    ("Infusion at 8 mL/hr.", "8 mL/hr", 8, "mL/hr", "rate"),
])
def test_quantities(spans, text, surface, number, unit, kind):
    found = spans(text, "QUANTITY")
    assert [(f[0], f[3]["number"], f[3]["unit"], f[3]["kind"]) for f in found] == [(surface, number, unit, kind)]
    assert text[found[0][1]:found[0][2]] == surface


@pytest.mark.parametrize("text, values", [
    # scale_named: the score's own words name the scale; otherwise the scale is only implied and the
    # extractor looks for a scale name elsewhere in the note (notecheck/extract/pain.py)
    ("Pain 7/10 today.", [{"score": 7.0, "scale": "NRS", "scale_named": False}]),
    ("NRS 8 on arrival.", [{"score": 8.0, "scale": "NRS", "scale_named": True}]),
    ("VAS 6 out of 10 before.", [{"score": 6.0, "scale": "NRS", "scale_named": False}]),
    ("VAS 70/100 mm.", [{"score": 70.0, "scale": "VAS-100", "scale_named": False}]),
    ("Pain 6 on a 0-10 scale.", [{"score": 6.0, "scale": "NRS", "scale_named": True}]),
    ("Pain improved from 8 to 2.", [{"pre": 8.0, "post": 2.0, "scale": "NRS", "scale_named": False}]),
])
def test_pain_scores(spans, text, values):
    assert [f[3] for f in spans(text, "PAIN_SCORE")] == values


@pytest.mark.parametrize("text", ["Omnipaque 240 1 mL.", "Moved from 8 to 2 West.", "Gauge 18/20 needle."])
def test_numbers_that_are_not_pain_scores(spans, text):
    assert spans(text, "PAIN_SCORE") == []


@pytest.mark.parametrize("text, weeks", [
    ("Failed 6 weeks of PT.", 6.0),
    ("PT x10 days.", 1.43),
    ("NSAIDs for 3 months.", 13.04),
    ("Six wks of therapy.", 6.0),
    ("Pain for 1 year.", 52.14),
])
def test_durations(spans, text, weeks):
    found = spans(text, "DURATION")
    assert [f[3]["weeks"] for f in found] == [weeks]


@pytest.mark.parametrize("text, side, strength", [
    ("Left paramedian approach was used.", "left", "approach"),
    ("Needle entered from the right side.", "right", "approach"),
    ("A midline approach was used.", "midline", "approach"),
    ("Right L5 radiculopathy.", "right", "symptom"),
    ("Bilateral lower extremity pain.", "bilateral", "symptom"),
])
def test_laterality(spans, text, side, strength):
    found = spans(text, "LATERALITY")
    assert found and found[0][3] == {"side": side, "strength": strength}


def test_catheter_left_in_place_is_not_laterality(spans):
    assert spans("The catheter was left in place.", "LATERALITY") == []


def test_since_month_counts_to_the_note_date(spans):
    found = spans("Date of service: 05/20/2025. Failed PT since March.", "DURATION")
    assert len(found) == 1
    assert found[0][0].lower().startswith("since march")
    assert found[0][3]["weeks"] == round(50 / 7, 2)  # 31 March -> 20 May


def test_since_month_without_a_date_is_not_measured(spans):
    assert spans("Failed PT since March.", "DURATION") == []
