"""How a record becomes a code: region group x delivery x imaging, looked up in
patterns/coding.yaml's decision table, or the name of the other family the note belongs to.
Every axis carries the words of the note that decided it."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from .patterns_path import load_yaml
from .record import CodeNote, CodeSuggestion, Evidence, ProcedureRecord, RationaleStep

if TYPE_CHECKING:  # the code picker needs no spaCy: a batch audit's main process never loads it
    from .extract import ExtractionResult


class DecisionRow(BaseModel):
    id: str
    cpt: str
    region_group: str
    delivery: str
    imaging: str


class CodingRules(BaseModel):
    region_groups: dict[str, str]
    imaging_groups: dict[str, str]
    decision_table: list[DecisionRow]
    decision_source: str
    out_of_family: dict[str, dict[str, str]]
    always_notes: list[CodeNote]
    conditional_notes: dict[str, CodeNote]

    def lookup(self, region_group: str, delivery: str, imaging: str) -> DecisionRow:
        for row in self.decision_table:
            if (row.region_group, row.delivery, row.imaging) == (region_group, delivery, imaging):
                return row
        raise LookupError(f"coding.yaml has no row for {region_group}/{delivery}/{imaging}")


@cache
def load_coding_rules(folder: Path) -> CodingRules:
    return CodingRules.model_validate(load_yaml(folder / "coding.yaml"))


def suggest_code(result: ExtractionResult, rules: CodingRules) -> CodeSuggestion:
    record = result.record
    assert record is not None
    ev = record.evidence
    if not result.procedure_performed:
        return _other_family("no_procedure", rules, [])
    if record.out_of_family and record.approach not in ("interlaminar", "caudal", None):
        return _other_family(record.out_of_family[0], rules, ev.get("approach", []) + ev.get("anesthetic_for", []))
    if record.anesthetic_for:
        return _other_family("anesthesia", rules, ev.get("anesthetic_for", []))

    code = CodeSuggestion()
    notes = code.notes
    if record.region is None:
        code.rationale.append(RationaleStep(axis="region", value="not documented",
                                            reason="No spinal level or region of this injection was found; no code can be chosen."))
        return code
    region_group = rules.region_groups[record.region]
    region_reason = f"{record.region} ({region_group.replace('_', '/')})"
    if record.approach == "caudal":
        region_reason += "; caudal counts as sacral"
    region_evidence = list(dict.fromkeys(ev.get("region", []) + ev.get("levels", [])))
    code.rationale.append(RationaleStep(axis="region", value=region_group, reason=region_reason,
                                        evidence=region_evidence))

    delivery, delivery_reason = _delivery(record, rules, notes)
    code.rationale.append(RationaleStep(axis="delivery", value=delivery, reason=delivery_reason,
                                        evidence=ev.get("catheter.indwelling", []) or ev.get("catheter.placed", [])))

    imaging = record.imaging
    if imaging is None:
        imaging_group, imaging_reason = "without_imaging", "image guidance not documented"
        notes.append(rules.conditional_notes["imaging_not_documented"])
    else:
        imaging_group = rules.imaging_groups[imaging]
        imaging_reason = {"fluoroscopy": "fluoroscopic guidance", "ct": "CT guidance",
                          "ultrasound": "ultrasound guidance does not count as imaging guidance for this family",
                          "none": "no image guidance (landmark / loss of resistance)"}[imaging]
        if imaging == "ultrasound":
            notes.append(rules.conditional_notes["ultrasound"])
    code.rationale.append(RationaleStep(axis="imaging", value=imaging_group, reason=imaging_reason,
                                        evidence=ev.get("imaging", [])))

    row = rules.lookup(region_group, delivery, imaging_group)
    code.cpt = row.cpt
    code.rationale.append(RationaleStep(axis="code", value=row.cpt, reason=f"decision table row {row.id} ({rules.decision_source})"))
    _situational_notes(record, result, rules, code)
    notes.extend(rules.always_notes)
    return code


def _delivery(record: ProcedureRecord, rules: CodingRules, notes: list[CodeNote]) -> tuple[str, str]:
    cath = record.catheter
    if cath.indwelling:
        return "indwelling", "catheter left indwelling for infusion or bolus"
    if cath.placed and cath.removed:
        return "single", "catheter placed and removed in the same session (single injection)"
    if cath.placed:
        notes.append(rules.conditional_notes["delivery_not_documented"])
        return "single", "catheter placed; no statement that it was left indwelling"
    return "single", "single injection by needle (no indwelling catheter documented)"


def _situational_notes(record: ProcedureRecord, result: ExtractionResult, rules: CodingRules,
                       code: CodeSuggestion) -> None:
    notes = rules.conditional_notes
    if len([lvl for lvl in record.levels if "-" in lvl]) > 1:
        code.notes.append(notes["multiple_levels"])
    if result.multiple_regions:
        code.notes.append(notes["multiple_regions"])
    if "T12-L1" in record.levels:
        code.notes.append(notes["t12_l1"])
    if record.catheter.indwelling and record.pain_context == "acute_postoperative":
        code.notes.append(notes["postoperative_catheter"])
        code.modifiers.append("59")
    if result.pressure_device:
        code.notes.append(notes["pressure_device"])
    if result.unsafe_contrast:
        code.notes.append(notes["unsafe_contrast"])
    if result.sedation:
        code.notes.append(notes["sedation"])


def _other_family(family: str, rules: CodingRules, evidence: list[Evidence]) -> CodeSuggestion:
    info = rules.out_of_family[family]
    return CodeSuggestion(
        cpt=None,
        out_of_family=family,
        rationale=[RationaleStep(axis="family", value=family,
                                 reason=f"{info['name']}: not 62320-62327; see {info['codes']}", evidence=evidence)],
        notes=[CodeNote(id=f"FAMILY-{family.upper()}", message=f"{info['name']} -> {info['codes']}", source=info["source"])],
    )
