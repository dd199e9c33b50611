"""How image guidance and contrast are found.

Only fluoroscopy or CT count as imaging guidance for 62320-62327; ultrasound and landmark technique
are "without imaging". A negated modality ("fluoroscopy was not used") is an explicit "none".
"""

from __future__ import annotations

import re

from ..record import Contrast
from .context import Extraction

_PRIORITY = ("ct", "fluoroscopy", "ultrasound", "none")


def extract_imaging(x: Extraction) -> str | None:
    found: dict[str, list] = {}
    denials = _no_imaging_statements(x)
    for m in x.view.of("IMAGING"):
        if m.hypothetical or m.historical or m.uncertain or m.section in ("plan", "past_history"):
            continue
        # Under "Consent:" a modality told with the risks is an alternative explained ("the limits of
        # ultrasound compared with fluoroscopy were explained"), not the guidance used.
        if m.section == "consent" and x.cues.consent_discussion.search(x.view.sentence_text(m.sentence)):
            continue
        modality = m.meta["modality"]
        if m.negated or (modality != "none" and _coordinated_with_no_imaging(x, m)):
            if modality in ("fluoroscopy", "ct", "ultrasound"):
                found.setdefault("none", []).append(m)
            continue
        if modality != "none" and _aside_to_no_imaging(x, m, denials):
            continue
        found.setdefault(modality, []).append(m)
    # "Ultrasound-guided ... (fluoroscopy without contrast not offered)": when some modality is said to
    # have guided the needle, a modality merely named elsewhere does not outrank it.
    guided = {mod for mod, ms in found.items() if mod != "none" and any(_guided(x, m) for m in ms)}
    if guided:
        found = {mod: ms for mod, ms in found.items() if mod in guided or mod == "none"}
    for modality in _PRIORITY:
        if modality in found:
            x.cite("imaging", *found[modality])
            return modality
    return None


_COORDINATED = re.compile(r"^\s*(?:,|or|nor|and|/)\s*(?:iodinated\s+|iv\s+)?$", re.IGNORECASE)


def _coordinated_with_no_imaging(x: Extraction, m) -> bool:
    """"No fluoroscopy or contrast used": the "no" belongs to a target ("no fluoroscopy"), so ConText
    cannot reach the contrast; the coordination carries the negation over. Likewise "fluoro/contrast not
    used": the omission target after the modality takes it in."""
    if _coordinated_with(x, m, "IMAGING", lambda other: other.meta.get("modality") == "none"):
        return True
    return m.label == "IMAGING" and any(
        other.start >= m.end and _COORDINATED.match(x.view.text[m.end:other.start])
        for other in x.view.in_sentence(m.sentence, "CONTRAST_OMITTED"))


def _coordinated_with(x: Extraction, m, label: str, which=lambda other: True) -> bool:
    """"Anaphylaxis to iodinated contrast and gadolinium": the gadolinium shares the allergy."""
    for other in x.view.in_sentence(m.sentence, label):
        if which(other) and other.end <= m.start and _COORDINATED.match(x.view.text[other.end:m.start]):
            return True
    return False


def _no_imaging_statements(x: Extraction) -> set[frozenset]:
    """For each statement that imaging was not used, the modalities it denies: "landmark technique" names
    none (an empty set: it denies them all), "no fluoroscopy" fluoroscopy (its rule's `denies` metadata),
    a negated "CT guidance" CT."""
    found = set()
    for o in x.view.of("IMAGING"):
        if o.hypothetical:
            continue
        if o.meta.get("modality") == "none" and not o.negated:
            found.add(frozenset(o.meta.get("denies", ())))
        elif o.negated and o.meta.get("modality") != "none":
            found.add(frozenset([o.meta["modality"]]))
    return found


def _aside_to_no_imaging(x: Extraction, m, denials: set[frozenset]) -> bool:
    """"Landmark technique, no fluoroscopy (transport to the fluoro suite is not feasible)", "A C-arm was
    available but was not used ... landmark technique": a modality named in a note that says no imaging
    (or not this modality) was used, with no word near it saying it guided the needle. "No fluoroscopy"
    does not deny the ultrasound that guided the needle."""
    if not any(named <= {m.meta["modality"]} for named in denials):
        return False
    return not _guided(x, m)


def _guided(x: Extraction, m) -> bool:
    text = x.view.text
    starts = x.view.sentence_starts
    lo = max(m.start - 25, starts[m.sentence])
    hi = min(m.end + 25, starts[m.sentence + 1] if m.sentence + 1 < len(starts) else len(text))
    near = text[lo:m.start] + " " + m.text + " " + text[m.end:hi]
    return bool(x.cues.imaging_use.search(near))


def extract_contrast(x: Extraction) -> Contrast:
    view = x.view
    used = [m for m in view.of("CONTRAST") if m.current and m.section != "allergies" and not x.is_blank_field(m)]
    denied = [m for m in used if _coordinated_with_no_imaging(x, m) or _coordinated_with(x, m, "CONTRAST_REASON")]
    reactions = [m for m in used if not m.meta.get("agent")
                 and x.cues.contrast_reaction.search(view.sentence_text(m.sentence))]
    field_none = [m for m in used if x.cues.contrast_field_none.match(view.text, m.end)]
    used = [m for m in used if m not in reactions and m not in field_none]
    omitted = [m for m in view.of("CONTRAST_OMITTED") if m.current] + field_none
    reasons = [m for m in view.of("CONTRAST_REASON") if not (m.negated or m.hypothetical or m.family)] + reactions
    # "CONTRAST: anaphylaxis to iodinated contrast; none injected": the header word is not a use.
    denied += [m for m in used if _header_of(x, m, omitted + reasons)]
    used = [m for m in used if m not in denied]
    if omitted:
        # "planned without contrast ... the anaphylactic contrast history": with an omission stated, a
        # bare contrast word is a use only where its sentence says contrast was given or seen.
        omission_sentences = {m.sentence for m in omitted}
        used = [m for m in used if m.meta.get("agent") or (
            m.sentence not in omission_sentences and x.cues.contrast_use.search(view.sentence_text(m.sentence)))]
    negated_use = [m for m in view.of("CONTRAST") if m.negated and not m.hypothetical] + denied
    # "Allergies: iodinated contrast" names an allergy, which is a reason to omit contrast.
    reasons += [m for m in view.of("CONTRAST") if m.section == "allergies" and not m.negated]

    contrast = Contrast()
    if used:
        contrast.used = True
        x.cite("contrast.used", *used)
        named = [m for m in used if m.meta.get("agent")]
        if named:
            contrast.agent = named[0].meta["agent"]
            x.cite("contrast.agent", named[0])
    elif omitted or negated_use:
        contrast.used = False
        x.cite("contrast.used", *(omitted or negated_use))
    if contrast.used is False and reasons:
        omission_sentences = {m.sentence for m in omitted + negated_use}
        near = [m for m in reasons if m.sentence in omission_sentences] or reasons
        contrast.omission_reason = near[0].meta.get("reason", "iodinated contrast allergy")
        x.cite("contrast.omission_reason", near[0])
    return contrast


def _header_of(x: Extraction, m, others: list) -> bool:
    """A "Contrast:" label whose line goes on to say none was used or why not."""
    text = x.view.text
    if not text[m.end:m.end + 3].lstrip(" \t").startswith(":"):
        return False
    line_end = text.find("\n", m.end)
    line_end = len(text) if line_end < 0 else line_end
    return any(m.end <= o.start < line_end for o in others)


def unsafe_intrathecal_contrast(x: Extraction) -> list:
    """Omnipaque 140/350 are not labelled for intrathecal use (rules.md §6.3)."""
    return [m for m in x.view.of("CONTRAST") if m.current and m.meta.get("intrathecal_safe") is False]
