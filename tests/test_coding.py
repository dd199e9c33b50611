"""Record -> code, without NLP: each axis, out-of-family routing and the notes that go with a code."""

import pytest

from notecheck.coding import load_coding_rules, suggest_code
from notecheck.extract import ExtractionResult
from notecheck.patterns_path import patterns_dir
from notecheck.record import Catheter, ProcedureRecord

RULES = load_coding_rules(patterns_dir())


def code_for(**fields):
    record = ProcedureRecord(approach=fields.pop("approach", "interlaminar"), **fields)
    return suggest_code(ExtractionResult(record=record), RULES)


@pytest.mark.parametrize("region, imaging, indwelling, cpt", [
    ("cervical", "none", False, "62320"), ("thoracic", "fluoroscopy", False, "62321"),
    ("lumbar", "ultrasound", False, "62322"), ("sacral", "ct", False, "62323"),
    ("thoracic", "none", True, "62324"), ("cervical", "ct", True, "62325"),
    ("lumbar", "none", True, "62326"), ("lumbar", "fluoroscopy", True, "62327"),
])
def test_axes(region, imaging, indwelling, cpt):
    code = code_for(region=region, imaging=imaging, catheter=Catheter(placed=indwelling, indwelling=indwelling))
    assert code.cpt == cpt
    assert [s.axis for s in code.rationale] == ["region", "delivery", "imaging", "code"]
    assert {n.id for n in code.notes} >= {"NOTE-IMAGING-BUNDLED", "NOTE-NO-MODIFIER-50", "NOTE-KX", "NOTE-EM-25"}
    assert "50" not in code.modifiers and "KX" not in code.modifiers


def test_undocumented_imaging_supports_only_the_without_imaging_code():
    code = code_for(region="lumbar", imaging=None)
    assert code.cpt == "62322"
    assert any(n.id == "NOTE-IMAGING-UNDOCUMENTED" for n in code.notes)


def test_no_region_no_code():
    code = code_for(region=None, imaging="fluoroscopy")
    assert code.cpt is None and code.out_of_family is None


@pytest.mark.parametrize("family, codes", [
    ("transforaminal", "64479"), ("facet", "64490"), ("si_joint", "27096"), ("blood_patch", "62273"),
    ("neurolytic", "62282"), ("lumbar_puncture", "62270"), ("adhesiolysis", "62263"),
])
def test_other_families_are_named_not_forced(family, codes):
    code = code_for(region="lumbar", imaging="fluoroscopy", approach=family, out_of_family=[family])
    assert code.cpt is None
    assert code.out_of_family == family
    assert codes in code.notes[0].message


def test_anesthetic_epidural_is_an_anesthesia_service():
    code = code_for(region="lumbar", imaging="none", approach=None, out_of_family=["anesthesia"],
                    anesthetic_for="labor or cesarean delivery")
    assert code.cpt is None and code.out_of_family == "anesthesia"


def test_situational_notes():
    code = code_for(region="thoracic", imaging="none", levels=["T12-L1"], pain_context="acute_postoperative",
                    catheter=Catheter(placed=True, indwelling=True))
    ids = {n.id for n in code.notes}
    assert {"NOTE-T12-L1", "NOTE-POSTOP-59"} <= ids
    assert code.modifiers == ["59"]
    two_levels = code_for(region="lumbar", imaging="fluoroscopy", levels=["L4-L5", "L5-S1"])
    assert any(n.id == "NOTE-MULTIPLE-LEVELS" for n in two_levels.notes)
