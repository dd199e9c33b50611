"""How the spinal region, the level(s) and the laterality are found.

The level where the needle went outranks levels cited from imaging or the diagnosis, and the
technique outranks the header: a note titled "Lumbar epidural" whose technique enters C7-T1 is
cervical. Ranks: 3 = technique section or a sentence describing needle work, 2 = procedure header or
other prose, 1 = needle work inside a context section (run-together exports), 0 = indication/diagnosis/
imaging/history context (never decides the region).
"""

from __future__ import annotations

from .context import Extraction
from .mentions import Mention

_CONTEXT_SECTIONS = {"diagnosis", "indication", "imaging_findings", "past_history", "plan", "impression", "allergies"}
_TECHNIQUE_SECTIONS = {"technique", "medications", "anesthesia"}
_REGION_GROUP = {"cervical": "cervical_thoracic", "thoracic": "cervical_thoracic", "lumbar": "lumbar_sacral",
                 "sacral": "lumbar_sacral"}


def _rank(x: Extraction, m: Mention) -> int:
    sentence_labels = {o.label for o in x.view.in_sentence(m.sentence, "IMAGING_STUDY", "DIAGNOSIS", "CONTRAST",
                                                           "CATHETER")}
    sentence = x.view.sentence_text(m.sentence)
    action = bool(x.cues.procedure_action.search(sentence))
    if m.section in _CONTEXT_SECTIONS:
        # A run-together export ("INDICATION: ... TECHNIQUE ... 18g Tuohy right paramedian T5-T6, LOR")
        # leaves the needle work inside a context section: it still outranks nothing-at-all.
        return 1 if action and "IMAGING_STUDY" not in sentence_labels and "DIAGNOSIS" not in sentence_labels else 0
    if "IMAGING_STUDY" in sentence_labels and not action:
        return 0
    before = x.view.text[max(0, m.start - 40):m.start]
    if m.label == "LEVEL" and "CONTRAST" in sentence_labels and x.cues.spread.search(before):
        return 0  # "contrast spread up to L5-S1": where the contrast went, not where the needle did
    if m.label == "LEVEL" and (x.cues.level_not_entered.search(before)
                               or ("CATHETER" in sentence_labels and x.cues.catheter_tip.search(before))):
        return 0  # "catheter steered ... to the left C5-C6", "counting up from the iliac crest at L4-L5"
    if m.section in _TECHNIQUE_SECTIONS or (action and m.section != "procedure"):
        return 3
    return 2


def _modifies_diagnosis(x: Extraction, m: Mention) -> bool:
    """"lumbar radiculopathy", "lumbar MRI": a region word naming the diagnosis or study, not the site."""
    for other in x.view.in_sentence(m.sentence, "DIAGNOSIS", "IMAGING_STUDY"):
        if 0 <= other.start - m.end <= 2:
            return True
    return False


def extract_region_and_levels(x: Extraction, approach: str | None) -> tuple[str | None, list[str], bool]:
    """Returns (region, levels, more_than_one_region_group)."""
    candidates: list[tuple[int, int, str, Mention]] = []  # (rank, is_level, region, mention)
    level_mentions: list[tuple[int, Mention]] = []
    for m in x.view.of("LEVEL"):
        if not m.current:
            continue
        rank = _rank(x, m)
        if rank == 0:
            continue
        level_mentions.append((rank, m))
        candidates.append((rank, 1, m.meta["regions"][0], m))
    # The levels named where the needle work is described, when the note has such a sentence.
    top = max((rank for rank, _ in level_mentions), default=0)
    levels: list[str] = []
    for rank, m in level_mentions:
        # Caudal entry is through the sacral hiatus; levels named are where the catheter tip or the
        # injectate went, not where the needle entered.
        if approach == "caudal" and m.meta["level"] != "sacral hiatus":
            continue
        if rank == top or approach == "caudal":
            if m.meta["level"] not in levels:
                levels.append(m.meta["level"])
            x.cite("levels", m)
    for m in x.view.of("REGION", "APPROACH", "OUT_OF_FAMILY"):
        if not m.current or _modifies_diagnosis(x, m):
            continue
        region = m.meta.get("region") or ("sacral" if m.meta.get("approach") == "caudal" else None)
        if region is None:
            continue
        rank = _rank(x, m)
        if rank:
            candidates.append((rank, 0, region, m))
    if approach == "caudal" and not levels:
        levels.append("sacral hiatus")
    if not candidates:
        return None, levels, False
    best = max(c[:2] for c in candidates)
    top = [c for c in candidates if c[:2] == best]
    region = top[0][2]
    for c in top:
        x.cite("region", c[3])
    groups = {_REGION_GROUP[c[2]] for c in candidates if c[0] == best[0]}
    return region, levels, len(groups) > 1


_SYMPTOM_SIDE_SECTIONS = ("procedure", "indication", "diagnosis")
_NOT_SYMPTOM_SIDE_SECTIONS = ("imaging_findings", "pain_scores", "disposition")


def extract_laterality(x: Extraction) -> str | None:
    # The symptoms' side is the same in the history as today, so historical mentions count here.
    sides = [m for m in x.view.of("LATERALITY")
             if not (m.negated or m.hypothetical or m.family) and m.section not in ("plan", "past_history")]
    for strength in ("approach", "symptom", "weak"):
        chosen = [m for m in sides if m.meta["strength"] == strength]
        if strength == "symptom":
            # The side of the complaint is told where the indication is: "bilateral L4 foraminal narrowing"
            # under the MRI findings, or "strength intact in bilateral lower extremities" after the
            # injection, are anatomy and exam, not the symptom side.
            stated = [m for m in chosen if m.section in _SYMPTOM_SIDE_SECTIONS]
            chosen = stated or [m for m in chosen if m.section not in _NOT_SYMPTOM_SIDE_SECTIONS]
        if chosen:
            values = {m.meta["side"] for m in chosen}
            side = "bilateral" if {"left", "right"} <= values or "bilateral" in values else chosen[0].meta["side"]
            x.cite("laterality", *chosen)
            return side
    return None
