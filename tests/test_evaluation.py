"""The eval metrics on hand-made cases (no pipeline): each number below is worked out by hand."""

import json

import pytest

from notecheck.cli import main
from notecheck.evaluation import PRF, evaluate_pairs, load_labels, thresholds_failed, LabelError
from notecheck.record import (Catheter, CodeSuggestion, Contrast, Finding, Medication, NoteResult, PainScores,
                              ProcedureRecord)


def gold(**over):
    label = {"note_id": "n", "status": "ok", "cpt": "62323", "out_of_family": None, "region": "lumbar",
             "levels": ["L4-L5"], "approach": "interlaminar", "laterality": "left", "imaging": "fluoroscopy",
             "contrast_used": True, "catheter_indwelling": False, "consent": True, "pain_pre": 7, "pain_post": 2,
             "conservative_weeks": 6, "medications": [{"name": "methylprednisolone acetate", "dose": 80,
                                                       "unit": "mg", "volume_ml": 2}],
             "missing": ["laterality"]}
    label.update(over)
    return label


def result(cpt="62323", out_of_family=None, missing=("laterality",), **over):
    fields = dict(region="lumbar", levels=["L4-L5"], approach="interlaminar", laterality="left",
                  imaging="fluoroscopy", contrast=Contrast(used=True), catheter=Catheter(placed=False, indwelling=False),
                  consent=True, pain_scores=PainScores(pre=7, post=2),
                  medications=[Medication(name="methylprednisolone acetate", category="steroid", dose=80, unit="mg",
                                          volume_ml=2)])
    fields.update(over)
    record = ProcedureRecord(**fields)
    record.conservative_therapy.weeks = over.get("weeks", 6)
    findings = [Finding(id=i, title=i, status="missing", severity="error", message="", source="s") for i in missing]
    return NoteResult(note_id="n", status="ok", record=record, code=CodeSuggestion(cpt=cpt, out_of_family=out_of_family),
                      findings=findings)


def test_a_perfect_note():
    ev = evaluate_pairs([(gold(), result())])
    assert ev.code_accuracy == 1.0 and ev.wrong == []
    assert all(ev.field_accuracy(f) == 1.0 for f in ev.field_total)
    assert ev.requirements_micro.f1 == 1.0
    assert ev.medication_doses.f1 == 1.0


def test_code_confusion_and_family_crossings():
    pairs = [(gold(), result()),                                                  # right
             (gold(cpt="62321", region="cervical"), result(cpt="62323")),          # wrong code, same family
             (gold(cpt=None, out_of_family="transforaminal", missing=None),
              result(cpt="62323")),                                                # out-of-family given a code
             (gold(), result(cpt=None, out_of_family="facet"))]                    # in-family given another family
    ev = evaluate_pairs(pairs)
    assert ev.code_accuracy == 0.25
    assert ev.family_crossings == 2
    assert ev.confusion[("62321", "62323")] == 1
    assert ev.confusion[("out_of_family", "62323")] == 1
    assert ev.confusion[("62323", "out_of_family")] == 1


def test_field_accuracy_and_weeks_tolerance():
    ev = evaluate_pairs([(gold(conservative_weeks=6), result(weeks=6.9)),
                         (gold(conservative_weeks=6), result(weeks=7.5)),
                         (gold(laterality=None), result())])
    assert ev.field_accuracy("conservative_weeks") == pytest.approx(2 / 3)
    assert ev.field_accuracy("laterality") == pytest.approx(2 / 3)
    assert ev.field_accuracy("levels") == 1.0


def test_requirement_precision_recall():
    # gold missing {laterality, consent}; got {laterality, level}: tp 1, fp 1, fn 1
    ev = evaluate_pairs([(gold(missing=["laterality", "consent"]), result(missing=("laterality", "level")))])
    micro = ev.requirements_micro
    assert (micro.tp, micro.fp, micro.fn) == (1, 1, 1)
    assert micro.precision == 0.5 and micro.recall == 0.5 and micro.f1 == 0.5
    assert ev.requirements["consent"].recall == 0.0 and ev.requirements["level"].precision == 0.0


def test_out_of_family_notes_are_not_scored_on_requirements():
    ev = evaluate_pairs([(gold(cpt=None, out_of_family="facet", missing=None),
                          result(cpt=None, out_of_family="facet", missing=("consent",)))])
    assert ev.requirements_micro.tp + ev.requirements_micro.fp + ev.requirements_micro.fn == 0
    assert ev.code_accuracy == 1.0


def test_medication_scores():
    got = result(medications=[Medication(name="methylprednisolone acetate", category="steroid", dose=40, unit="mg"),
                              Medication(name="lidocaine", category="local_anesthetic", volume_ml=3)])
    ev = evaluate_pairs([(gold(), got)])
    assert (ev.medication_names.tp, ev.medication_names.fp, ev.medication_names.fn) == (1, 1, 0)
    assert ev.medication_doses.tp == 0 and ev.medication_doses.fn == 1 and ev.medication_doses.fp == 1


def test_prf_with_nothing_to_find_is_perfect():
    assert PRF().f1 == 1.0


def test_thresholds():
    ev = evaluate_pairs([(gold(), result()), (gold(), result(cpt="62322"))])
    failures = thresholds_failed(ev, min_code=0.98, min_field=0.95, min_requirement_f1=0.95)
    assert failures == ["code accuracy 0.500 < 0.98"]


def test_labels_file_errors_name_the_line(tmp_path):
    bad = tmp_path / "labels.jsonl"
    bad.write_text('{"note_id": "a"}\n{not json\n')
    with pytest.raises(LabelError, match=r"labels.jsonl:2"):
        load_labels(bad)


class FakeChecker:
    def __init__(self, answers):
        self.answers = answers

    def check(self, text, note_id="note"):
        return self.answers[note_id]


def test_eval_command_exit_status_and_json(tmp_path, capsys):
    (tmp_path / "n.txt").write_text("some note")
    (tmp_path / "labels.jsonl").write_text(json.dumps(gold()) + "\n")
    ok = main(["eval", str(tmp_path), "--format", "json", "--min-code-accuracy", "0.98"],
              checker_factory=lambda: FakeChecker({"n": result()}))
    report = json.loads(capsys.readouterr().out)
    assert ok == 0 and report["code_accuracy"] == 1.0
    failing = main(["eval", str(tmp_path), "--min-code-accuracy", "0.98"],
                   checker_factory=lambda: FakeChecker({"n": result(cpt="62322")}))
    captured = capsys.readouterr()
    assert failing == 1 and "below threshold" in captured.err
    assert "n: code: expected '62323', got '62322'" in captured.out


def test_eval_without_labels_is_a_usage_error(tmp_path, capsys):
    assert main(["eval", str(tmp_path)]) == 2
    assert "labels.jsonl not found" in capsys.readouterr().err
