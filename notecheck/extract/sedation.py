"""The billing-context facts of a session: the sedation given (and whether a reason for it is
documented), a separately identifiable E/M service beside the procedure, and which biologic injectants
were injected (rather than discussed).

Sedation levels are the SEDATION targets (patterns/targets/documentation.json, metadata `level`); reasons
and E/M wording are the SEDATION_REASON and SEPARATE_EM targets and the `cues` of
patterns/targets/billing_context.json. The payers care only about sedation beyond local anesthesia and
oral anxiolysis (rules.md §2, §3.7), so minimal sedation, anxiolysis and oral anxiolytics give no level.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from ..patterns_path import load_json
from ..record import Medication, Sedation
from .context import Extraction
from .mentions import Mention

# Deeper wins when a note names several: "moderate sedation, converted to MAC" is MAC.
_DEPTH = {"moderate": 1, "deep": 2, "mac": 3, "general": 4}
# The bare value of a "Sedation:" / "Anesthesia:" field ("Sedation: moderate (RN-administered)").
_FIELD_LEVEL = {"moderate": "moderate", "conscious": "moderate", "deep": "deep", "general": "general"}
# IV opioids given for procedural sedation are DRUG targets (drugs.json); epidural fentanyl is an injectate,
# so an opioid counts only when the note gives it intravenously.
_IV_SEDATION_OPIOIDS = {"fentanyl": "moderate"}
# Sections whose mentions are not this session's sedation or its reason.
_NOT_THIS_SESSION = {"allergies", "medications_home", "consent"}
# Sections where a biologic named without an injection verb is still the injectate ("Injectate: PRP 3 mL").
_INJECTATE_SECTIONS = {"procedure", "technique", "medications"}


@dataclass(frozen=True)
class BillingCues:
    iv_before: re.Pattern
    iv_after: re.Pattern
    oral_before: re.Pattern
    oral_after: re.Pattern
    agent_not_sedation_clause: re.Pattern
    surgical_anesthetic_sentence: re.Pattern
    surgical_timing_sentence: re.Pattern
    allergy_sentence: re.Pattern
    consent_sentence: re.Pattern
    level_negated_after: re.Pattern
    sedation_field_title: re.Pattern
    sedation_field_value: re.Pattern
    gestational_age: re.Pattern
    icu_context: re.Pattern
    anxiety_qualifier_before: re.Pattern
    failed_anxiolytic_sentence: re.Pattern
    vasovagal: re.Pattern
    prior_sentence: re.Pattern
    attempt_link_sentence: re.Pattern
    em_negated_before: re.Pattern
    em_future_sentence: re.Pattern
    em_not_separate_sentence: re.Pattern
    em_other_problem_sentence: re.Pattern
    biologic_discussion_clause: re.Pattern
    biologic_injected: re.Pattern

    def named(self, name: str) -> re.Pattern:
        return getattr(self, name)


@cache
def load_billing_cues(folder: Path) -> BillingCues:
    cues = load_json(folder / "targets" / "billing_context.json")["cues"]
    return BillingCues(**{name: re.compile(cues[name], re.IGNORECASE) for name in BillingCues.__dataclass_fields__})


def _line_bounds(text: str, start: int, end: int) -> tuple[int, int]:
    lo = text.rfind("\n", 0, start) + 1
    hi = text.find("\n", end)
    return lo, (len(text) if hi < 0 else hi)


def _sentence_window(x: Extraction, m: Mention) -> tuple[int, int]:
    """The mention's sentence, cut to its line: flowsheet and MAR rows are one fact a line."""
    starts = x.view.sentence_starts
    s_lo = starts[m.sentence] if m.sentence >= 0 else 0
    s_hi = starts[m.sentence + 1] if m.sentence + 1 < len(starts) else len(x.view.text)
    l_lo, l_hi = _line_bounds(x.view.text, m.start, m.end)
    return max(s_lo, l_lo), min(s_hi, l_hi)


def _clause_window(x: Extraction, m: Mention) -> tuple[int, int]:
    lo, hi = _sentence_window(x, m)
    text = x.view.text
    for cut in x.cues.clause_separator.finditer(text, lo, hi):
        if cut.end() <= m.start:
            lo = cut.end()
        elif cut.start() >= m.end:
            hi = cut.start()
            break
    return lo, hi


# --- sedation ------------------------------------------------------------------------------------------

def _route(x: Extraction, b: BillingCues, m: Mention, lo: int, hi: int, default: str | None) -> str | None:
    text = x.view.text
    before, after = text[max(lo, m.start - 25):m.start], text[m.end:min(hi, m.end + 40)]
    if b.oral_before.search(before) or b.oral_after.search(after):
        return "oral"
    if b.iv_before.search(before) or b.iv_after.search(after):
        return "iv"
    return default


def _sedation_level(x: Extraction, b: BillingCues, m: Mention, minimal_spans: list[tuple[int, int]]) -> str | None:
    """The level this mention documents for this session, or None (not sedation, minimal, or not today's)."""
    if not m.current or m.section in _NOT_THIS_SESSION or x.is_blank_field(m):
        return None
    text = x.view.text
    lo, hi = _sentence_window(x, m)
    sentence = text[lo:hi]
    # "allergic to propofol", "consent for IV sedation", "TKA under general anesthesia (separate record)"
    if (b.allergy_sentence.search(sentence) or b.consent_sentence.search(sentence)
            or b.surgical_anesthetic_sentence.search(sentence)):
        return None
    meta = m.meta
    if m.label == "DRUG":
        level, agent_default = _IV_SEDATION_OPIOIDS.get(meta.get("name", "")), None
    else:
        level, agent_default = meta.get("level"), meta.get("default_route")
    if level is None or level == "minimal":
        return None
    if level != "moderate" and b.surgical_timing_sentence.search(sentence):
        return None
    if meta.get("reject_sentence") and b.named(meta["reject_sentence"]).search(sentence):
        return None
    after = text[m.end:hi]  # sliced: these cues are anchored with "^"
    if meta.get("reject_after") and b.named(meta["reject_after"]).match(after):
        return None
    if b.level_negated_after.match(after):
        return None
    if m.label == "DRUG" or meta.get("agent"):
        c_lo, c_hi = _clause_window(x, m)
        if b.agent_not_sedation_clause.search(text, c_lo, c_hi):
            return None
        if _route(x, b, m, lo, hi, agent_default) != "iv":
            return None  # oral anxiolysis, or an opioid that is the epidural injectate
        # "midazolam 1 mg IV push (anxiolysis)": the note itself calls it minimal.
        if any(lo <= s < hi for s, _ in minimal_spans):
            return None
    return level


def _agent(m: Mention) -> str | None:
    return m.meta.get("name") if m.label == "DRUG" else m.meta.get("agent")


def extract_sedation(x: Extraction, patterns_folder: Path) -> Sedation:
    b = load_billing_cues(patterns_folder)
    sedation = x.view.of("SEDATION")
    opioids = [m for m in x.view.of("DRUG") if m.meta.get("name") in _IV_SEDATION_OPIOIDS]
    fields = _sedation_fields(x, b)
    if not sedation and not opioids and not fields:
        return Sedation()
    minimal_spans = [(m.start, m.end) for m in sedation
                     if m.current and m.meta.get("qualifier") and m.meta.get("level") == "minimal"]
    given: list[tuple[Mention, str]] = []
    for m in sorted(sedation + opioids, key=lambda m: m.start):
        level = _sedation_level(x, b, m, minimal_spans)
        if level is not None:
            given.append((m, level))
    if not given and not fields:
        return Sedation()
    level = max([lvl for _, lvl in given] + [lvl for lvl, _, _ in fields], key=_DEPTH.__getitem__)
    agents: list[str] = []
    for m, _ in given:
        agent = _agent(m)
        if agent and agent not in agents:
            agents.append(agent)
    x.cite("sedation", *(m for m, _ in given))
    for _, start, end in fields:
        x.cite_span("sedation", start, end)
    reasons = _sedation_reasons(x, b, sedation)
    x.cite("sedation.justification", *reasons)
    return Sedation(level=level, agents=agents, justification=bool(reasons))


def _sedation_fields(x: Extraction, b: BillingCues) -> list[tuple[str, int, int]]:
    """(level, start, end) of "Sedation: moderate" fields: a template's bare level word is no target."""
    text = x.view.text
    found = []
    for sec in x.view.section_bodies("anesthesia"):
        title = text[sec.title_start:sec.body_start].strip().lower()
        line_start = text.rfind("\n", 0, sec.title_start) + 1
        # "Primary anesthetic: general (separate record)" and "Anesthetic plan:" are the surgery's.
        if not b.sedation_field_title.match(title) or text[line_start:sec.title_start].strip():
            continue
        _, line_end = _line_bounds(text, sec.body_start, sec.body_start)
        value = b.sedation_field_value.match(text[sec.body_start:line_end])
        if not value:
            continue
        end = sec.body_start + value.end(1)
        line = text[line_start:line_end]
        if (b.level_negated_after.match(text[end:line_end]) or b.surgical_anesthetic_sentence.search(line)
                or b.consent_sentence.search(line)):
            continue
        found.append((_FIELD_LEVEL[value.group(1).lower()], sec.title_start, end))
    return found


def _sedation_reasons(x: Extraction, b: BillingCues, sedation: list[Mention]) -> list[Mention]:
    """Documented reasons for sedation (patient request and ordinary nerves are not reasons). A reason
    is often told as history ("prior vasovagal reaction", "failed awake attempt"), so historical
    mentions count; negated, planned and family ones do not."""
    text = x.view.text
    reasons = []
    candidates = x.view.of("SEDATION_REASON") + [m for m in x.view.of("COMPLICATIONS") if b.vasovagal.search(m.text)]
    for m in sorted(candidates, key=lambda m: m.start):
        if m.negated or m.hypothetical or m.family or m.section in ("allergies", "medications_home"):
            continue
        lo, hi = _sentence_window(x, m)
        sentence = text[lo:hi]
        if m.label == "COMPLICATIONS":
            # Today's vasovagal episode ("had a brief vasovagal episode after the procedure") is a
            # complication; a past one is why sedation was used.
            if not b.prior_sentence.search(sentence):
                continue
        elif m.meta.get("needs_qualifier"):
            if not (b.anxiety_qualifier_before.search(text, max(lo, m.start - 40), m.start)
                    or b.failed_anxiolytic_sentence.search(sentence)):
                continue
        elif m.meta.get("reason") == "failed_attempt_awake" and not b.attempt_link_sentence.search(sentence):
            continue  # "failed attempts at physical therapy"
        reasons.append(m)
    # "Anxiety not relieved by oral lorazepam 1 mg": the failed oral anxiolytic is itself a reason. The
    # failure words ("not relieved", "no relief with") are what ConText reads as negation here.
    for m in sedation:
        if (m.meta.get("level") == "minimal" or m.meta.get("default_route") == "oral") and m.meta.get("agent") \
                and not (m.hypothetical or m.family):
            lo, hi = _sentence_window(x, m)
            if b.failed_anxiolytic_sentence.search(text, lo, hi):
                reasons.append(m)
    return sorted(reasons, key=lambda m: m.start)


# --- separate E/M --------------------------------------------------------------------------------------

_INDICATION_LABELS = ("DIAGNOSIS", "EPIDURAL", "APPROACH")


def extract_separate_em(x: Extraction, patterns_folder: Path) -> bool:
    """A significant, separately identifiable E/M beside the procedure (modifier 25 on the E/M line):
    another problem or a new complaint evaluated, not the pre-procedure H&P or the decision to inject."""
    mentions = x.view.of("SEPARATE_EM")
    if not mentions:
        return False
    b = load_billing_cues(patterns_folder)
    text = x.view.text
    found = []
    for m in mentions:
        if m.negated or m.family or m.historical or x.is_blank_field(m):
            continue
        lo, hi = _sentence_window(x, m)
        sentence = text[lo:hi]
        # The plan section makes every mention hypothetical; "Plan: also addressed her new knee pain,
        # X-ray ordered" is still today's evaluation unless the sentence itself speaks of the future.
        if m.hypothetical and not (m.section == "plan" and not b.em_future_sentence.search(sentence)):
            continue
        c_lo, _ = _clause_window(x, m)
        if b.em_negated_before.search(text, c_lo, m.start):
            continue  # "is not separately identifiable": ConText keeps the longer "is not" looking back
        if m.meta.get("strength") != "explicit":
            if b.em_not_separate_sentence.search(sentence):
                continue
            about_the_injection = any(o.current for o in x.view.in_sentence(m.sentence, *_INDICATION_LABELS))
            others = sentence[:m.start - lo] + " " * (m.end - m.start) + sentence[m.end - lo:]
            if about_the_injection and not b.em_other_problem_sentence.search(others):
                continue
        found.append(m)
    x.cite("separate_em", *found)
    return bool(found)


# --- biologic injectants -------------------------------------------------------------------------------

def session_medications(x: Extraction, patterns_folder: Path, medications: list[Medication]) -> list[Medication]:
    """The medications with biologics kept only when injected this session: "PRP was discussed as an
    option (not covered)" or "clear amniotic fluid" names one without injecting it."""
    biologic_meds = [med for med in medications if med.category == "biologic"]
    if not biologic_meds:
        return medications
    b = load_billing_cues(patterns_folder)
    text = x.view.text
    injected: set[tuple[int, int]] = set()
    for m in x.view.of("DRUG"):
        if m.meta.get("drug_class") != "biologic":
            continue
        c_lo, c_hi = _clause_window(x, m)
        if b.biologic_discussion_clause.search(text, c_lo, c_hi):
            continue
        s_lo, s_hi = _sentence_window(x, m)
        quantity_in_clause = any(c_lo <= q.start < c_hi for q in x.view.in_sentence(m.sentence, "QUANTITY"))
        if m.meta.get("ambiguous"):
            said = quantity_in_clause or b.biologic_injected.search(text, c_lo, c_hi)
        else:
            quantity_in_sentence = any(s_lo <= q.start < s_hi for q in x.view.in_sentence(m.sentence, "QUANTITY"))
            said = (quantity_in_sentence or b.biologic_injected.search(text, s_lo, s_hi)
                    or m.section in _INJECTATE_SECTIONS)
        if said:
            injected.add((m.evidence.start, m.evidence.end))
    kept = [med for med in medications
            if med.category != "biologic" or any((ev.start, ev.end) in injected for ev in med.evidence)]
    return kept
