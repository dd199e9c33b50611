"""How a record, its code, a claim and a payer profile become the facts the coverage rules test.

The coverage rules (patterns/coverage.yaml) are conditions in the requirements language over
`CoverageFacts`. This module only looks things up: which region group the code is in, which diagnosis
codes the profile covers there, which steroid doses pass the profile's ceilings, what the claim lines
say. Which fact fails which rule, and how badly, is written in the YAML.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from ..profiles import parameter
from ..record import Claim, ClaimLine, Diagnosis, Evidence, Medication, ProcedureRecord

_MG_PER_ML = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*mg\s*/\s*ml\s*$", re.IGNORECASE)


class SteroidDose(BaseModel):
    name: str
    dose_mg: float
    ceiling_mg: float
    over_ceiling: bool
    evidence: list[Evidence] = Field(default_factory=list)


class CoverageFacts(BaseModel):
    """What the coverage and coding-compliance rules read (field paths of patterns/coverage.yaml)."""

    record: ProcedureRecord
    in_family: bool
    cpt: str | None = None
    esi: bool = False                       # a single-injection ESI for spinal pain (profile esi_codes)
    region_group: str | None = None         # cervical_thoracic | lumbar_sacral
    diagnoses_covered: list[Diagnosis] = Field(default_factory=list)
    diagnoses_not_covered: list[Diagnosis] = Field(default_factory=list)
    imaging: str | None = None
    contrast_contraindicated: bool = False
    level_count: int = 0
    region_group_count: int = 0
    steroid_doses: list[SteroidDose] = Field(default_factory=list)
    biologics: list[Medication] = Field(default_factory=list)
    sedation_needs_reason: bool = False
    has_claim: bool = False
    claim_has_family_line: bool = False
    family_line_modifiers: list[str] = Field(default_factory=list)   # modifiers on the 6232x line(s)
    claim_codes: list[str] = Field(default_factory=list)
    em_line_modifiers: list[str] = Field(default_factory=list)        # modifiers on E/M lines

    @property
    def evidence(self) -> dict[str, list[Evidence]]:
        return self.record.evidence


@dataclass(frozen=True)
class Lookups:
    """The profile values and code sets the facts read, resolved once per checker (not per note)."""

    region_groups: dict[str, str]
    family_codes: frozenset[str]          # 62320-62327, from coding.yaml's decision table
    em_codes: frozenset[str]
    esi_codes: frozenset[str]
    not_esi_pain_contexts: frozenset[str]
    covered_diagnoses: dict[str, tuple[str, ...]]
    contrast_contraindications: tuple[str, ...]
    steroid_ceiling_mg: dict[str, float]
    sedation_needing_reason: frozenset[str]

    @classmethod
    def build(cls, profile: dict, coding: Any, em_codes: set[str]) -> Lookups:
        """`coding` is notecheck.coding.CodingRules; a missing profile value raises ProfileError here."""
        value = lambda path: parameter(profile, f"coverage.{path}").value  # noqa: E731
        return cls(region_groups=dict(coding.region_groups),
                   family_codes=frozenset(row.cpt for row in coding.decision_table),
                   em_codes=frozenset(em_codes),
                   esi_codes=frozenset(value("esi_codes")),
                   not_esi_pain_contexts=frozenset(value("not_esi_pain_contexts")),
                   covered_diagnoses={g: tuple(codes) for g, codes in value("covered_diagnoses").items()},
                   contrast_contraindications=tuple(value("contrast_contraindications")),
                   steroid_ceiling_mg={k: float(v) for k, v in value("steroid_ceiling_mg").items()},
                   sedation_needing_reason=frozenset(value("sedation_needing_reason")))


def build_facts(record: ProcedureRecord, cpt: str | None, in_family: bool, multiple_regions: bool,
                claim: Claim | None, lookups: Lookups) -> CoverageFacts:
    group = lookups.region_groups.get(record.region or "") if record.region else None
    esi = bool(in_family and cpt in lookups.esi_codes
               and record.pain_context not in lookups.not_esi_pain_contexts
               and not record.anesthetic_for and not record.catheter.indwelling)
    covered, not_covered = _split_diagnoses(record.diagnoses, lookups.covered_diagnoses.get(group or "", ()))
    reason = (record.contrast.omission_reason or "").casefold()
    lines = claim.lines if claim else []
    return CoverageFacts(
        record=record, in_family=in_family, cpt=cpt, esi=esi, region_group=group,
        diagnoses_covered=covered, diagnoses_not_covered=not_covered,
        imaging=record.imaging,
        contrast_contraindicated=any(word in reason for word in lookups.contrast_contraindications),
        level_count=len(set(record.levels)),
        region_group_count=2 if multiple_regions else (1 if group else 0),
        steroid_doses=_steroid_doses(record.medications, lookups.steroid_ceiling_mg),
        biologics=[m for m in record.medications if m.category == "biologic"],
        sedation_needs_reason=record.sedation.level in lookups.sedation_needing_reason,
        has_claim=bool(lines),
        claim_has_family_line=any(ln.code in lookups.family_codes for ln in lines),
        family_line_modifiers=_modifiers(lines, lookups.family_codes),
        claim_codes=[ln.code for ln in lines],
        em_line_modifiers=_modifiers(lines, lookups.em_codes),
    )


def _split_diagnoses(diagnoses: list[Diagnosis], prefixes: tuple[str, ...]) -> tuple[list[Diagnosis], list[Diagnosis]]:
    covered, not_covered = [], []
    for dx in diagnoses:
        codes = [c.code for c in dx.icd10_candidates] or ([dx.icd10] if dx.icd10 else [])
        (covered if prefixes and any(c.startswith(prefixes) for c in codes) else not_covered).append(dx)
    return covered, not_covered


def _steroid_doses(medications: list[Medication], ceilings: dict[str, float]) -> list[SteroidDose]:
    doses = []
    for med in medications:
        ceiling = next((mg for prefix, mg in ceilings.items() if med.name.casefold().startswith(prefix)), None)
        mg = _dose_mg(med)
        if ceiling is not None and mg is not None:
            doses.append(SteroidDose(name=med.name, dose_mg=mg, ceiling_mg=float(ceiling),
                                     over_ceiling=mg > float(ceiling) + 1e-9, evidence=med.evidence))
    return doses


def _dose_mg(med: Medication) -> float | None:
    """The dose in mg as written, or concentration (mg/mL) x volume when only those are given."""
    if med.dose is not None and (med.unit or "").casefold() == "mg":
        return float(med.dose)
    match = _MG_PER_ML.match(med.concentration or "")
    if med.dose is None and match and med.volume_ml:
        return round(float(match[1]) * med.volume_ml, 3)
    return None


def _modifiers(lines: list[ClaimLine], codes: frozenset[str]) -> list[str]:
    return sorted({m for ln in lines if ln.code in codes for m in ln.modifiers})
