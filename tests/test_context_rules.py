"""Domain ConText rules: negation, plans, history and the pseudo-modifiers that must not fire."""

import pytest

from notecheck.extract.mentions import view_of


@pytest.fixture(scope="module")
def assertion(checker):
    def run(text, surface):
        view = view_of(checker.nlp(text))
        m = next(m for m in view.mentions if m.text.lower() == surface.lower())
        return {"negated": m.negated, "hypothetical": m.hypothetical, "historical": m.historical,
                "current": m.current}

    return run


@pytest.mark.parametrize("text, surface, attr", [
    ("No catheter was left in place.", "catheter", "negated"),
    ("Patient denies contrast allergy.", "contrast allergy", "negated"),
    ("Will consider transforaminal approach next time.", "transforaminal approach", "hypothetical"),
    ("If no relief, will consider transforaminal injection.", "transforaminal", "hypothetical"),
    ("Recommend repeat L5-S1 ESI in 3 months.", "ESI", "hypothetical"),
    ("Prior TFESI gave 60% relief.", "TFESI", "historical"),
    ("She is s/p L5-S1 ILESI 3 months ago.", "ILESI", "historical"),
    ("History of epidural blood patch.", "epidural blood patch", "historical"),
])
def test_modifier_applies(assertion, text, surface, attr):
    assert assertion(text, surface)[attr] is True


@pytest.mark.parametrize("text, surface", [
    ("Prior to the procedure pain was 7/10.", "7/10"),
    ("Fluoroscopy was used; no complications.", "fluoroscopy"),
    ("Prior TFESI gave relief, but today an interlaminar approach was used.", "interlaminar approach"),
    ("Denies fever.\nContrast: Omnipaque 240 2 mL.", "Omnipaque 240"),
    ("The patient tolerated the procedure without difficulty.", "tolerated the procedure"),
])
def test_modifier_does_not_reach(assertion, text, surface):
    assert assertion(text, surface)["current"] is True


def test_plan_section_makes_mentions_hypothetical(assertion):
    text = "PROCEDURE: L4-L5 ILESI.\nPLAN: transforaminal injection at L5-S1 if pain persists."
    assert assertion(text, "transforaminal")["hypothetical"] is True
    assert assertion(text, "L4-L5")["current"] is True
