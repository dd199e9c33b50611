"""How a note's procedure family and approach are found: interlaminar/caudal epidural (in family),
or another family (transforaminal, facet, SI joint, blood patch, neurolytic, lumbar puncture, ...),
or an epidural given as the anesthetic for surgery or labor, or no procedure at all."""

from __future__ import annotations

from dataclasses import dataclass, field

from .context import Extraction

# Substances/procedures that make an epidural-space injection another family, even if interlaminar.
# Adhesiolysis comes first: its CPT descriptor (62263/62264) includes lysis "using solution injection
# (eg, hypertonic saline)", so a Racz procedure with hypertonic saline is adhesiolysis, not neurolysis.
_OVERRIDING_FAMILIES = ("adhesiolysis", "neurolytic", "blood_patch")
_THECAL_FAMILIES = ("lumbar_puncture", "myelography")
_OBSTETRIC = ("cesarean", "c-section", "caesarean", "labor", "labour", "delivery")


@dataclass
class ProcedureFinding:
    in_family: bool
    approach: str | None = None
    out_of_family: list[str] = field(default_factory=list)
    anesthetic_for: str | None = None
    performed: bool = True  # False: an epidural is mentioned only as history or plan


def extract_procedure(x: Extraction, analgesia_purpose: bool) -> ProcedureFinding | None:
    """None when nothing in the note is about a spinal injection at all."""
    view = x.view
    family_labels = ("APPROACH", "EPIDURAL", "SUBARACHNOID", "OUT_OF_FAMILY", "ANESTHETIC", "CATHETER")
    all_mentions = view.of(*family_labels)
    if not any(m.label not in ("CATHETER", "ANESTHETIC") or "epidural" in m.text.lower() for m in all_mentions):
        return None
    # (Often written under "Plan:", which makes it look hypothetical; it is still a statement of fact.)
    if any(not (m.negated or m.family) for m in view.of("NO_PROCEDURE_TODAY")):
        return ProcedureFinding(False, performed=False)  # "No procedure performed today."
    current = [m for m in all_mentions if m.current and m.section not in ("plan", "past_history")
               and not _template_choice_list(x, m)]
    others: dict[str, list] = {}
    for m in current:
        if m.label == "OUT_OF_FAMILY":
            others.setdefault(m.meta["family"], []).append(m)
    approaches = [m for m in current if m.label == "APPROACH"]
    epidural = [m for m in current if m.label in ("EPIDURAL", "SUBARACHNOID")
                or (m.label == "CATHETER" and "epidural" in m.text.lower())]
    anesthetic = [m for m in current if m.label == "ANESTHETIC"]

    for fam in _OVERRIDING_FAMILIES:
        if fam in others:
            x.cite("approach", *others[fam])
            return ProcedureFinding(False, approach=fam, out_of_family=[fam])
    obstetric = [m for m in anesthetic if any(w in m.text.lower() for w in _OBSTETRIC)]
    # An epidural named as the surgical anesthetic is an anesthesia service, unless the note says it was
    # placed for postoperative analgesia (then it is a 6232x catheter, reported with modifier 59).
    if obstetric or (anesthetic and not analgesia_purpose and (approaches or epidural)):
        chosen = obstetric or anesthetic
        x.cite("anesthetic_for", *chosen)
        what = "labor or cesarean delivery" if obstetric else "surgery"
        return ProcedureFinding(False, approach=None, out_of_family=["anesthesia"], anesthetic_for=what)
    # "Under fluoroscopy the L3-L4 interlaminar space was localized ... into the thecal sac": in a lumbar
    # puncture or myelogram "interlaminar" names the window, not an epidural approach.
    thecal = [f for f in _THECAL_FAMILIES if f in others]
    if thecal and not any(m.label != "SUBARACHNOID" for m in epidural):
        x.cite("approach", *others[thecal[0]])
        return ProcedureFinding(False, approach=thecal[0], out_of_family=sorted(others))
    # "Procedure: bilateral L4-L5 medial branch blocks ... a caudal ESI was discussed": the procedure header
    # names what was done; an epidural word elsewhere in the note does not outrank it.
    named_in_header = [f for f in others if any(m.section == "procedure" for m in others[f])]
    if approaches and named_in_header and not any(m.section == "procedure" for m in approaches + epidural):
        fam = min(named_in_header, key=lambda f: others[f][0].start)
        x.cite("approach", *others[fam])
        return ProcedureFinding(False, approach=fam, out_of_family=sorted(others))
    if approaches:
        first = next((m for m in approaches if m.meta.get("approach") == "caudal"), approaches[0])
        x.cite("approach", first)
        return ProcedureFinding(True, approach=first.meta["approach"], out_of_family=sorted(others))
    if others:
        fam = min(others, key=lambda f: others[f][0].start)
        x.cite("approach", *others[fam])
        return ProcedureFinding(False, approach=fam, out_of_family=sorted(others))
    if epidural:
        x.cite("approach", epidural[0])
        return ProcedureFinding(True, approach=None)
    return ProcedureFinding(False, performed=False)


def _template_choice_list(x: Extraction, m) -> bool:
    """"Template: SPINE INJECTION (interlaminar/caudal)", "transforaminal/interlaminar ESI": approach words
    joined by a slash name a template's choices, not what was done."""
    if m.label not in ("APPROACH", "OUT_OF_FAMILY"):
        return False
    text = x.view.text
    return text[m.start - 1:m.start] == "/" or text[m.end:m.end + 1] == "/"
