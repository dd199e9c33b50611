"""From a processed Doc to a ProcedureRecord: one extractor module per concept.

    anatomy.py        region, levels, laterality
    procedure.py      procedure family and approach
    imaging.py        image guidance and contrast
    catheter.py       single injection vs indwelling catheter
    medications.py    drugs, doses, volumes, concentrations
    pain.py           pre/post pain scores
    conservative.py   conservative care and its duration
    documentation.py  consent, complications, disposition, imaging correlation, pain context
    diagnoses.py      current diagnoses and their ICD-10-CM candidates (patterns/icd10cm.yaml)
    sedation.py       sedation level and reason, separate E/M, biologic injectants this session
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from spacy.tokens import Doc

from ..record import Evidence, ProcedureRecord
from . import anatomy, catheter, conservative, documentation, imaging, medications, pain, procedure
from . import sedation
from .context import Extraction
from .diagnoses import extract_diagnoses, states_indication
from .cues import load_cues
from .mentions import view_of


@dataclass
class ExtractionResult:
    """The record plus the facts the code picker needs that are not part of the record contract."""

    record: ProcedureRecord | None  # None: nothing in the note is about a spinal injection
    procedure_performed: bool = True
    multiple_regions: bool = False
    unsafe_contrast: list[Evidence] = field(default_factory=list)
    pressure_device: list[Evidence] = field(default_factory=list)
    sedation: list[Evidence] = field(default_factory=list)


def extract(doc: Doc, patterns_folder: Path) -> ExtractionResult:
    x = Extraction(view_of(doc), load_cues(patterns_folder))
    pain_context = documentation.extract_pain_context(x)
    proc = procedure.extract_procedure(x, documentation.has_analgesia_purpose(x))
    if proc is None:
        return ExtractionResult(record=None, procedure_performed=False)

    region, levels, multiple_regions = anatomy.extract_region_and_levels(x, proc.approach)
    approach = proc.approach
    approach_inferred = proc.in_family and approach is None
    if approach_inferred:
        # In this family an epidural that is not caudal is interlaminar ("18g Tuohy into the lumbar
        # epidural space with LOR"); transforaminal and the others are out of family.
        approach = "interlaminar"
    diagnoses = extract_diagnoses(x, patterns_folder, region, levels, proc.anesthetic_for)
    record = ProcedureRecord(
        procedure=None,
        region=region,
        levels=levels,
        approach=approach,
        approach_inferred=approach_inferred,
        laterality=anatomy.extract_laterality(x),
        imaging=imaging.extract_imaging(x),
        contrast=imaging.extract_contrast(x),
        catheter=catheter.extract_catheter(x),
        medications=medications.extract_medications(x),
        consent=documentation.extract_consent(x),
        pain_scores=pain.extract_pain_scores(x),
        conservative_therapy=conservative.extract_conservative_therapy(x),
        diagnoses=diagnoses,
        indication=documentation.extract_indication(x, diagnoses) or states_indication(x, patterns_folder),
        imaging_correlation=documentation.extract_imaging_correlation(x),
        complications_documented=documentation.extract_complications(x),
        post_procedure_assessment=documentation.extract_post_procedure_assessment(x),
        pain_context=pain_context,
        anesthetic_for=proc.anesthetic_for,
        out_of_family=proc.out_of_family,
    )
    record.procedure = _procedure_title(proc.in_family, approach, record.region)
    if not proc.performed:
        # "Scheduled: L4-L5 ILESI, fluoro ... cancelled": nothing was guided today.
        record.imaging = None
        x.evidence.pop("imaging", None)
    # The coverage rules' billing context: sedation and its reason, a separate E/M, biologics injected.
    record.sedation = sedation.extract_sedation(x, patterns_folder)
    record.separate_em = sedation.extract_separate_em(x, patterns_folder)
    record.medications = sedation.session_medications(x, patterns_folder, record.medications)
    record.evidence = x.evidence
    current = [m for m in x.view.mentions if m.current]
    return ExtractionResult(
        record=record,
        procedure_performed=proc.performed,
        multiple_regions=multiple_regions,
        unsafe_contrast=[m.evidence for m in imaging.unsafe_intrathecal_contrast(x)],
        pressure_device=[m.evidence for m in current if m.label == "PRESSURE_DEVICE"],
        # The code note on sedation follows the record: minimal sedation and oral anxiolysis are not it.
        sedation=list(x.evidence.get("sedation", [])) if record.sedation.level else [],
    )


def _procedure_title(in_family: bool, approach: str | None, region: str | None) -> str | None:
    if not in_family:
        return None
    where = f"{region} " if region else ""
    how = f"{approach} " if approach else ""
    return f"{where}{how}epidural injection".strip()
