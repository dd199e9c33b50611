"""The structured record notecheck builds from a note, and the result it returns.

Every extracted value and every finding carries `evidence`: the character spans of the note that
support it, so a reviewer can check a conclusion in seconds. Field names and value sets here are the
published output contract (README "Output contract"); `notecheck schema` prints the JSON Schema.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Region = Literal["cervical", "thoracic", "lumbar", "sacral"]
Imaging = Literal["fluoroscopy", "ct", "ultrasound", "none"]
Laterality = Literal["left", "right", "bilateral", "midline"]
FindingStatus = Literal["met", "missing", "not_applicable"]
Severity = Literal["error", "warning"]
# The ICD-10-CM region axis (finer than Region: the code set has junction regions).
IcdRegion = Literal["cervical", "cervicothoracic", "thoracic", "thoracolumbar", "lumbar", "lumbosacral", "sacral"]
SedationLevel = Literal["moderate", "deep", "mac", "general"]
FindingKind = Literal["documentation", "coverage", "coding", "history"]


class Evidence(BaseModel):
    """A character span of the note: `text == note[start:end]`."""

    model_config = ConfigDict(frozen=True)

    start: int
    end: int
    text: str


class Contrast(BaseModel):
    used: bool | None = None
    agent: str | None = None
    omission_reason: str | None = None


class Catheter(BaseModel):
    placed: bool | None = None
    indwelling: bool | None = None
    # True when the note says the catheter was withdrawn in the same session (single-injection code).
    removed: bool | None = None


class Medication(BaseModel):
    name: str
    category: str
    dose: float | None = None
    unit: str | None = None
    volume_ml: float | None = None
    concentration: str | None = None
    rate_ml_hr: float | None = None  # for an infusion through an indwelling catheter
    evidence: list[Evidence] = Field(default_factory=list)


class PainScores(BaseModel):
    pre: float | None = None
    post: float | None = None
    scale: str | None = None


class ConservativeTherapy(BaseModel):
    documented: bool = False
    weeks: float | None = None
    modalities: list[str] = Field(default_factory=list)


class Icd10Candidate(BaseModel):
    """An ICD-10-CM code the documented diagnosis supports (patterns/icd10cm.yaml)."""

    code: str
    description: str


class Diagnosis(BaseModel):
    """A current diagnosis of this procedure (negated, historical, family and uncertain ones excluded)."""

    text: str
    concept: str | None = None           # lexicon concept id, e.g. "disc_with_radiculopathy"
    regions: list[IcdRegion] = Field(default_factory=list)
    icd10: str | None = None             # the first candidate (kept for readers of the v1 contract)
    icd10_candidates: list[Icd10Candidate] = Field(default_factory=list)
    evidence: list[Evidence] = Field(default_factory=list)


class Sedation(BaseModel):
    """Sedation beyond local anaesthesia / oral anxiolysis; `level` None = none documented."""

    level: SedationLevel | None = None
    agents: list[str] = Field(default_factory=list)
    justification: bool = False          # a reason for the sedation is documented


class ProcedureRecord(BaseModel):
    """What this procedure, as documented, consisted of. Negated, planned and historical mentions are
    excluded; `evidence` maps a dotted field name (e.g. "contrast.used") to its supporting spans."""

    procedure: str | None = None
    region: Region | None = None
    levels: list[str] = Field(default_factory=list)
    approach: str | None = None
    # True when no approach word was found and an in-family epidural was taken as interlaminar for the code
    approach_inferred: bool = False
    laterality: Laterality | None = None
    imaging: Imaging | None = None
    contrast: Contrast = Field(default_factory=Contrast)
    catheter: Catheter = Field(default_factory=Catheter)
    medications: list[Medication] = Field(default_factory=list)
    consent: bool = False
    pain_scores: PainScores = Field(default_factory=PainScores)
    conservative_therapy: ConservativeTherapy = Field(default_factory=ConservativeTherapy)
    diagnoses: list[Diagnosis] = Field(default_factory=list)
    indication: bool = False
    imaging_correlation: bool = False
    complications_documented: bool = False
    post_procedure_assessment: bool = False
    sedation: Sedation = Field(default_factory=Sedation)
    # A significant, separately identifiable E/M service documented beside the procedure (modifier 25).
    separate_em: bool = False
    # "acute_postoperative" / "trauma" when the note places a catheter for acute pain rather than
    # treating chronic spinal pain; "herpes_zoster" for acute zoster (conservative-care exemption).
    pain_context: str | None = None
    # Set when the epidural is the anesthetic for surgery or labor (an anesthesia service).
    anesthetic_for: str | None = None
    out_of_family: list[str] = Field(default_factory=list)
    evidence: dict[str, list[Evidence]] = Field(default_factory=dict)


class CodeNote(BaseModel):
    id: str
    message: str
    source: str


class RationaleStep(BaseModel):
    axis: str
    value: str
    reason: str
    evidence: list[Evidence] = Field(default_factory=list)


class CodeSuggestion(BaseModel):
    cpt: str | None = None
    out_of_family: str | None = None
    modifiers: list[str] = Field(default_factory=list)
    rationale: list[RationaleStep] = Field(default_factory=list)
    notes: list[CodeNote] = Field(default_factory=list)


class ClaimLine(BaseModel):
    code: str
    modifiers: list[str] = Field(default_factory=list)


class ClaimAxis(BaseModel):
    axis: str                # region_group | delivery | imaging
    billed: str
    supported: str
    direction: str           # higher | lower | different


class Claim(BaseModel):
    """The billed codes given with a note (CLI --billed, an audit column, a CDS Hooks order) and how the
    billed code compares with the code the documentation supports (patterns/billing.yaml)."""

    billed: str                          # the claim as given, e.g. "62323-50, 77003"
    lines: list[ClaimLine] = Field(default_factory=list)
    billed_code: str | None = None       # the claim's 6232x line, else its first code
    supported: str | None = None         # the 6232x code notecheck supports
    supported_family: str | None = None  # or the other family the note documents
    # supported | mismatch | unreadable (no code in the claim) | not_checked (the note itself failed)
    status: str | None = None
    direction: str | None = None         # billed_higher | billed_lower | different_region | out_of_family | ...
    axes: list[ClaimAxis] = Field(default_factory=list)


class Finding(BaseModel):
    id: str
    title: str
    status: FindingStatus
    severity: Severity
    kind: FindingKind = "documentation"
    message: str
    query: str | None = None
    source: str
    evidence: list[Evidence] = Field(default_factory=list)


class NoteResult(BaseModel):
    """One note's verdict: the output contract of `notecheck check --format jsonl`."""

    note_id: str
    status: Literal["ok", "error"]
    error: str | None = None
    warnings: list[str] = Field(default_factory=list)
    profile: str | None = None           # the payer profile the findings were checked against
    claim: Claim | None = None
    record: ProcedureRecord | None = None
    code: CodeSuggestion | None = None
    findings: list[Finding] = Field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when a 6232x code is supported and no error-severity finding fails: documentation,
        coverage, or (when billed codes were given) coding compliance.

        An out-of-family note is not complete: notecheck names its family but does not vouch for it."""
        if self.status != "ok" or self.code is None or self.code.cpt is None:
            return False
        return not any(f.status == "missing" and f.severity == "error" for f in self.findings)
