"""The annotated corpus: labels are well-formed, and the dev split (tuned on) does not regress.

The dev figures guard against regressions only; the honest accuracy is measured on corpora/test
(`notecheck eval corpora/test`), which is never tuned on.
"""

from pathlib import Path

import pytest

from notecheck.evaluation import FIELDS, REQUIREMENT_IDS, evaluate_pairs, load_labels

CORPORA = Path(__file__).resolve().parent.parent / "corpora"
CODES = {str(c) for c in range(62320, 62328)}
FAMILIES = {"transforaminal", "facet", "si_joint", "blood_patch", "neurolytic", "lumbar_puncture", "adhesiolysis",
            "myelography", "anesthesia", "no_procedure"}


@pytest.mark.parametrize("split", ["dev", "test"])
def test_labels_are_well_formed(split):
    labels = load_labels(CORPORA / split / "labels.jsonl")
    assert len(labels) >= 80
    assert len({lab["note_id"] for lab in labels}) == len(labels)
    for lab in labels:
        assert (CORPORA / split / f"{lab['note_id']}.txt").is_file()
        assert (lab["cpt"] in CODES) != (lab["out_of_family"] in FAMILIES), lab["note_id"]
        if lab["cpt"]:
            assert set(lab["missing"]) <= set(REQUIREMENT_IDS), lab["note_id"]
        else:
            assert lab["missing"] is None, lab["note_id"]


def test_every_code_is_covered_ten_times_and_a_third_are_complete():
    labels = load_labels(CORPORA / "dev" / "labels.jsonl") + load_labels(CORPORA / "test" / "labels.jsonl")
    for code in CODES:
        assert sum(lab["cpt"] == code for lab in labels) >= 10, code
    assert sum(lab["out_of_family"] is not None for lab in labels) >= 30
    assert sum(lab["missing"] == [] for lab in labels) * 3 >= len(labels)


def test_dev_split_does_not_regress(checker):
    split = CORPORA / "dev"
    labels = load_labels(split / "labels.jsonl")
    pairs = ((lab, checker.check((split / f"{lab['note_id']}.txt").read_text(), lab["note_id"], lab.get("billed")))
             for lab in labels)
    evaluation = evaluate_pairs(pairs)
    # The dev floor measured when round 9's rules were frozen and its failures read (800 notes: code 0.983,
    # lowest field 0.953, micro F1 0.926; ICD-10-CM P 0.982 / R 0.975 on the 400 notes labelled with them;
    # corpora/README.md): dev grows by 80 harder notes each round, so its floor is re-measured each round.
    assert evaluation.code_accuracy >= 0.98
    for name in FIELDS:
        assert evaluation.field_accuracy(name) >= 0.95, name
    assert evaluation.requirements_micro.f1 >= 0.92
    assert evaluation.icd10_notes >= 400
    assert evaluation.icd10.precision >= 0.98 and evaluation.icd10.recall >= 0.97
