"""`notecheck eval`: compare notecheck's results with gold labels (corpora/README.md) and measure.

Pure functions over (gold label, NoteResult) pairs, so the metrics are tested on small hand-made cases
(tests/test_evaluation.py) without running the pipeline:

- code: the answer is the CPT code, the out-of-family name, or "none"; accuracy, a confusion matrix
  over the 8 codes + "out_of_family" + "none", and the count of notes that crossed between in-family
  and out-of-family;
- fields: accuracy per record field on the notes whose gold status is "ok";
- medications: precision/recall/F1 of names, of (name, dose, unit) and of (name, volume);
- requirements: precision/recall/F1 of "missing" per requirement id and micro-averaged, on the notes
  whose gold `missing` is a list (in-family notes);
- ICD-10-CM: precision/recall of the candidate codes (the union over the note's diagnoses) against the
  gold `icd10`, micro over the notes that carry it;
- coverage: precision/recall/F1 of the failed coverage / coding rules per rule id, on the notes whose
  gold `coverage_failed` is a list (the gold `billed` claim is given to the checker with the note).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .record import NoteResult

CODES = [str(c) for c in range(62320, 62328)]
CODE_CLASSES = CODES + ["out_of_family", "none"]
REQUIREMENT_IDS = [
    "consent", "indication", "conservative_therapy", "imaging_correlation", "imaging_guidance", "contrast",
    "medication_dose", "medication_volume", "pain_score_pre", "pain_score_post", "post_procedure_assessment",
    "complications", "level", "laterality",
]
COVERAGE_IDS = [
    "covered_indication", "esi_image_guidance", "single_level", "single_region", "steroid_dose_ceiling",
    "biologic_injectant", "sedation_justification", "billed_code_mismatch", "no_bilateral_modifier",
    "no_separate_imaging_code", "kx_only_for_snrb", "modifier_25_needs_separate_em",
]
REGION_GROUP = {"cervical": "cervical_thoracic", "thoracic": "cervical_thoracic", "lumbar": "lumbar_sacral",
                "sacral": "lumbar_sacral"}
FIELDS = ["region_group", "levels", "approach", "laterality", "imaging", "contrast_used", "catheter_indwelling",
          "consent", "pain_pre", "pain_post", "conservative_weeks"]
WEEKS_TOLERANCE = 1.0


class LabelError(ValueError):
    """A labels file that cannot be read; the message names the file and line."""


def load_labels(path: Path) -> list[dict]:
    labels = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                label = json.loads(line)
            except json.JSONDecodeError as exc:
                raise LabelError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
            if not isinstance(label, dict) or "note_id" not in label:
                raise LabelError(f"{path}:{number}: a label needs a note_id")
            labels.append(label)
    return labels


def code_answer(cpt: str | None, out_of_family: str | None) -> str:
    return cpt or out_of_family or "none"


def code_class(answer: str) -> str:
    return answer if answer in CODES or answer == "none" else "out_of_family"


def predicted_fields(result: NoteResult) -> dict:
    rec = result.record
    if rec is None:
        return {}
    return {
        "region_group": REGION_GROUP.get(rec.region or ""),
        "levels": sorted(rec.levels),
        "approach": rec.approach,
        "laterality": rec.laterality,
        "imaging": rec.imaging,
        "contrast_used": rec.contrast.used,
        "catheter_indwelling": bool(rec.catheter.indwelling),
        "consent": rec.consent,
        "pain_pre": rec.pain_scores.pre,
        "pain_post": rec.pain_scores.post,
        "conservative_weeks": rec.conservative_therapy.weeks,
    }


def gold_fields(label: dict) -> dict:
    return {
        "region_group": REGION_GROUP.get(label.get("region") or ""),
        "levels": sorted(label.get("levels") or []),
        "approach": label.get("approach"),
        "laterality": label.get("laterality"),
        "imaging": label.get("imaging"),
        "contrast_used": label.get("contrast_used"),
        "catheter_indwelling": bool(label.get("catheter_indwelling")),
        "consent": bool(label.get("consent")),
        "pain_pre": _number(label.get("pain_pre")),
        "pain_post": _number(label.get("pain_post")),
        "conservative_weeks": _number(label.get("conservative_weeks")),
    }


def _number(value):
    return float(value) if isinstance(value, (int, float)) else None


def field_matches(name: str, gold, got) -> bool:
    if name == "conservative_weeks" and gold is not None and got is not None:
        return abs(gold - got) <= WEEKS_TOLERANCE
    if name in ("pain_pre", "pain_post") and gold is not None and got is not None:
        return abs(gold - got) < 1e-6
    return gold == got


def _failed(result: NoteResult, ids: list[str]) -> set[str]:
    return {f.id for f in result.findings if f.status == "missing" and f.id in ids}


def predicted_missing(result: NoteResult) -> set[str]:
    return _failed(result, REQUIREMENT_IDS)


def predicted_icd10(result: NoteResult) -> set[str]:
    if result.record is None:
        return set()
    return {c.code for dx in result.record.diagnoses for c in dx.icd10_candidates}


def predicted_coverage_failed(result: NoteResult) -> set[str]:
    return _failed(result, COVERAGE_IDS)


@dataclass
class PRF:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def add(self, gold: set, got: set) -> None:
        self.tp += len(gold & got)
        self.fp += len(got - gold)
        self.fn += len(gold - got)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict:
        return {"tp": self.tp, "fp": self.fp, "fn": self.fn, "precision": round(self.precision, 4),
                "recall": round(self.recall, 4), "f1": round(self.f1, 4)}


@dataclass
class Evaluation:
    notes: int = 0
    code_correct: int = 0
    confusion: Counter = field(default_factory=Counter)  # (gold class, predicted class) -> count
    family_crossings: int = 0
    field_correct: Counter = field(default_factory=Counter)
    field_total: Counter = field(default_factory=Counter)
    medication_names: PRF = field(default_factory=PRF)
    medication_doses: PRF = field(default_factory=PRF)
    medication_volumes: PRF = field(default_factory=PRF)
    requirements: dict[str, PRF] = field(default_factory=lambda: {r: PRF() for r in REQUIREMENT_IDS})
    icd10: PRF = field(default_factory=PRF)
    icd10_notes: int = 0
    coverage: dict[str, PRF] = field(default_factory=lambda: {r: PRF() for r in COVERAGE_IDS})
    coverage_notes: int = 0
    wrong: list[dict] = field(default_factory=list)

    @property
    def code_accuracy(self) -> float:
        return self.code_correct / self.notes if self.notes else 0.0

    def field_accuracy(self, name: str) -> float:
        total = self.field_total[name]
        return self.field_correct[name] / total if total else 1.0

    @property
    def requirements_micro(self) -> PRF:
        total = PRF()
        for prf in self.requirements.values():
            total.tp, total.fp, total.fn = total.tp + prf.tp, total.fp + prf.fp, total.fn + prf.fn
        return total

    def add(self, label: dict, result: NoteResult) -> None:
        self.notes += 1
        problems: dict[str, dict] = {}
        gold_status = label.get("status", "ok")
        gold_code = code_answer(label.get("cpt"), label.get("out_of_family")) if gold_status == "ok" else "none"
        got_code = code_answer(result.code.cpt, result.code.out_of_family) if result.code else "none"
        self.confusion[(code_class(gold_code), code_class(got_code))] += 1
        if gold_code == got_code:
            self.code_correct += 1
        else:
            problems["code"] = {"expected": gold_code, "got": got_code}
        crossing = {code_class(gold_code), code_class(got_code)}
        if "out_of_family" in crossing and crossing & set(CODES):
            self.family_crossings += 1  # an in-family note given another family's answer, or the reverse

        if gold_status == "ok" and result.status == "ok":
            self._add_fields(label, result, problems)
            self._add_medications(label, result)
            if isinstance(label.get("missing"), list):
                _add_per_id(self.requirements, set(label["missing"]), predicted_missing(result), problems, "missing")
        elif gold_status != result.status:
            problems["status"] = {"expected": gold_status, "got": result.status, "error": result.error}
        self._add_coverage(label, result, problems)
        if problems:
            self.wrong.append({"note_id": label["note_id"], **problems})

    def _add_coverage(self, label: dict, result: NoteResult, problems: dict) -> None:
        if isinstance(label.get("icd10"), list):
            self.icd10_notes += 1
            gold, got = set(label["icd10"]), predicted_icd10(result)
            self.icd10.add(gold, got)
            if gold != got:
                problems["icd10"] = {"expected": sorted(gold), "got": sorted(got)}
        if isinstance(label.get("coverage_failed"), list):
            self.coverage_notes += 1
            _add_per_id(self.coverage, set(label["coverage_failed"]), predicted_coverage_failed(result),
                        problems, "coverage_failed")

    def _add_fields(self, label: dict, result: NoteResult, problems: dict) -> None:
        gold, got = gold_fields(label), predicted_fields(result)
        for name in FIELDS:
            if name == "approach" and label.get("out_of_family"):
                continue  # the family is scored by the code; approach wording varies for other families
            self.field_total[name] += 1
            if field_matches(name, gold[name], got[name]):
                self.field_correct[name] += 1
            else:
                problems[name] = {"expected": gold[name], "got": got[name]}

    def _add_medications(self, label: dict, result: NoteResult) -> None:
        gold = [m for m in label.get("medications") or []]
        got = [m for m in result.record.medications if m.category not in ("saline", "contrast")]
        self.medication_names.add({m["name"] for m in gold}, {m.name for m in got})
        self.medication_doses.add({(m["name"], _number(m.get("dose")), m.get("unit")) for m in gold if m.get("dose") is not None},
                                  {(m.name, m.dose, m.unit) for m in got if m.dose is not None})
        self.medication_volumes.add({(m["name"], _number(m.get("volume_ml"))) for m in gold if m.get("volume_ml") is not None},
                                    {(m.name, m.volume_ml) for m in got if m.volume_ml is not None})

    def as_dict(self) -> dict:
        return {
            "notes": self.notes,
            "code_accuracy": round(self.code_accuracy, 4),
            "family_crossings": self.family_crossings,
            "confusion": {f"{g} -> {p}": n for (g, p), n in sorted(self.confusion.items())},
            "fields": {name: round(self.field_accuracy(name), 4) for name in FIELDS},
            "medications": {"name": self.medication_names.as_dict(), "dose": self.medication_doses.as_dict(),
                            "volume": self.medication_volumes.as_dict()},
            "requirements": {rid: prf.as_dict() for rid, prf in self.requirements.items()},
            "requirements_micro": self.requirements_micro.as_dict(),
            "icd10": {"notes": self.icd10_notes, **self.icd10.as_dict()},
            "coverage": {"notes": self.coverage_notes, **{rid: prf.as_dict() for rid, prf in self.coverage.items()}},
            "wrong": self.wrong,
        }


def _add_per_id(prfs: dict[str, PRF], gold: set[str], got: set[str], problems: dict, key: str) -> None:
    """Score the ids of one note (gold restricted to the ids scored) and record a difference under `key`."""
    gold = gold & set(prfs)
    for rid, prf in prfs.items():
        prf.add(gold & {rid}, got & {rid})
    if gold != got:
        problems[key] = {"expected": sorted(gold), "got": sorted(got)}


def evaluate_pairs(pairs: Iterable[tuple[dict, NoteResult]]) -> Evaluation:
    evaluation = Evaluation()
    for label, result in pairs:
        evaluation.add(label, result)
    return evaluation


def thresholds_failed(evaluation: Evaluation, min_code: float, min_field: float, min_requirement_f1: float,
                      min_icd10_precision: float = 0.0, min_icd10_recall: float = 0.0,
                      min_coverage_f1: float = 0.0) -> list[str]:
    failures = []
    if evaluation.icd10_notes:
        if evaluation.icd10.precision < min_icd10_precision:
            failures.append(f"ICD-10-CM precision {evaluation.icd10.precision:.3f} < {min_icd10_precision}")
        if evaluation.icd10.recall < min_icd10_recall:
            failures.append(f"ICD-10-CM recall {evaluation.icd10.recall:.3f} < {min_icd10_recall}")
    if evaluation.coverage_notes:
        for rid, prf in evaluation.coverage.items():
            if prf.f1 < min_coverage_f1:
                failures.append(f"coverage rule {rid} F1 {prf.f1:.3f} < {min_coverage_f1}")
    if evaluation.code_accuracy < min_code:
        failures.append(f"code accuracy {evaluation.code_accuracy:.3f} < {min_code}")
    for name in FIELDS:
        if evaluation.field_accuracy(name) < min_field:
            failures.append(f"field {name} accuracy {evaluation.field_accuracy(name):.3f} < {min_field}")
    micro = evaluation.requirements_micro.f1
    if micro < min_requirement_f1:
        failures.append(f"missing-requirement micro F1 {micro:.3f} < {min_requirement_f1}")
    return failures


def render_report(evaluation: Evaluation) -> str:
    lines = [f"notes: {evaluation.notes}",
             f"code accuracy: {evaluation.code_accuracy:.3f} ({evaluation.code_correct}/{evaluation.notes}); "
             f"in-family <-> out-of-family crossings: {evaluation.family_crossings}", "", "confusion (rows expected, columns got):"]
    used = [c for c in CODE_CLASSES if any(c in key for key in evaluation.confusion)]
    header = "".ljust(14) + "".join(c[:8].rjust(9) for c in used)
    lines.append(header)
    for gold in used:
        lines.append(gold[:13].ljust(14) + "".join(str(evaluation.confusion.get((gold, got), 0) or ".").rjust(9) for got in used))
    lines += ["", "field accuracy:"]
    for name in FIELDS:
        lines.append(f"  {name:22s} {evaluation.field_accuracy(name):.3f} ({evaluation.field_correct[name]}/{evaluation.field_total[name]})")
    lines += ["", "medications (P / R / F1):"]
    for what, prf in (("name", evaluation.medication_names), ("name+dose", evaluation.medication_doses),
                      ("name+volume", evaluation.medication_volumes)):
        lines.append(f"  {what:22s} {prf.precision:.3f} / {prf.recall:.3f} / {prf.f1:.3f}")
    lines += ["", "missing requirements (P / R / F1, support):"]
    for rid, prf in evaluation.requirements.items():
        lines.append(f"  {rid:26s} {prf.precision:.3f} / {prf.recall:.3f} / {prf.f1:.3f}  ({prf.tp + prf.fn})")
    micro = evaluation.requirements_micro
    lines.append(f"  {'micro':26s} {micro.precision:.3f} / {micro.recall:.3f} / {micro.f1:.3f}")
    if evaluation.icd10_notes:
        icd = evaluation.icd10
        lines += ["", f"ICD-10-CM candidates ({evaluation.icd10_notes} notes; P / R / F1): "
                  f"{icd.precision:.3f} / {icd.recall:.3f} / {icd.f1:.3f}  (tp {icd.tp}, fp {icd.fp}, fn {icd.fn})"]
    if evaluation.coverage_notes:
        lines += ["", f"failed coverage / coding rules ({evaluation.coverage_notes} notes; P / R / F1, support):"]
        for rid, prf in evaluation.coverage.items():
            lines.append(f"  {rid:30s} {prf.precision:.3f} / {prf.recall:.3f} / {prf.f1:.3f}  ({prf.tp + prf.fn}; fp {prf.fp})")
    if evaluation.wrong:
        lines += ["", f"notes with a difference ({len(evaluation.wrong)}):"]
        for item in evaluation.wrong:
            diffs = "; ".join(f"{k}: expected {v['expected']!r}, got {v['got']!r}" for k, v in item.items() if k != "note_id")
            lines.append(f"  {item['note_id']}: {diffs}")
    return "\n".join(lines)
