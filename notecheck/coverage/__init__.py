"""Coverage and coding compliance: the findings an auditor raises beyond missing text.

    facts.py     record + code + claim + payer profile -> CoverageFacts (lookups only)
    billing.py   billed code vs supported code (billed_code_mismatch) and claim lines not allowed
    rules (data) patterns/coverage.yaml, in the requirements condition language over CoverageFacts;
                 payer numbers and lists from patterns/profiles/*.yaml

`CoverageChecker` is built once per NoteChecker (rules and profile loaded once) and called per note.
"""

from __future__ import annotations

from pathlib import Path

from ..record import Claim, Finding, NoteResult
from ..requirements import Requirement, evaluate, load_requirements
from .billing import evaluate_billed, load_billing_rules
from .facts import CoverageFacts, Lookups, build_facts

COVERAGE_FILE = "coverage.yaml"


def load_coverage_rules(path: Path, profile: dict | None = None) -> list[Requirement]:
    """The rules of coverage.yaml (a file, or a patterns folder holding it), bound to `profile`."""
    return load_requirements(path, profile=profile, model=CoverageFacts, list_key="rules", file_name=COVERAGE_FILE)


class CoverageChecker:
    def __init__(self, folder: Path, profile: dict, coding_rules) -> None:
        self.profile = profile
        self.rules = load_coverage_rules(folder, profile)
        self.billing = load_billing_rules(folder)
        self.lookups = Lookups.build(profile, coding_rules, self.billing.em_codes)

    def check(self, result: NoteResult, multiple_regions: bool, billed: str | None) -> tuple[list[Finding], Claim | None]:
        """Coverage findings for a checked note (status ok) plus the billing comparison when billed."""
        billing_findings, claim = evaluate_billed(result, billed, self.billing)
        record, code = result.record, result.code
        if record is None or code is None:
            return billing_findings, claim
        in_family = code.out_of_family is None
        facts = build_facts(record, code.cpt, in_family, multiple_regions, claim, self.lookups)
        return evaluate(facts, self.rules) + billing_findings, claim
