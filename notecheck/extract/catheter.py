"""How catheter delivery is found: needle only, catheter placed and removed the same session (single
injection), or catheter left indwelling for infusion/bolus (62324-62327). Negated, planned and past
catheters ("No catheter was left in place", "will place a catheter next visit") do not count."""

from __future__ import annotations

from ..record import Catheter
from .context import Extraction

# Cues that mean an indwelling catheter even when the word "catheter" is elsewhere in the note.
_STRONG_INDWELLING = ("pcea", "infusion pump", "continuous infusion", "continuous epidural", "intermittent bolus",
                      "patient-controlled", "patient controlled", "basal rate", "programmed intermittent")


def extract_catheter(x: Extraction) -> Catheter:
    view = x.view
    placed = [m for m in view.of("CATHETER") if m.current]
    negated = [m for m in view.of("CATHETER") if m.negated and not m.hypothetical]
    cues = [m for m in view.of("CATHETER_INDWELLING") if m.current]
    # An infusion rate ("@ 5 mL/hr") is a catheter left running, once a catheter was placed.
    cues += [m for m in view.of("QUANTITY") if m.current and m.meta.get("kind") == "rate"]
    cues.sort(key=lambda m: m.start)
    catheter_sentences = {m.sentence for m in placed}
    # "The needle was withdrawn" is not a catheter removal: the cue must name the catheter or its tip,
    # or share a sentence with a catheter.
    removed = [m for m in view.of("CATHETER_REMOVED") if m.current
               and (any(w in m.text.lower() for w in ("catheter", "tip", "not left")) or m.sentence in catheter_sentences)]
    # "Left in place" only speaks of a catheter when one was placed; a pump or PCEA always does.
    cues = [m for m in cues if placed or any(w in m.text.lower() for w in _STRONG_INDWELLING)]

    catheter = Catheter(placed=False, indwelling=False)
    if placed or cues:
        catheter.placed = True
        x.cite("catheter.placed", *(placed or cues))
        # The last word on the catheter wins: "threaded and left in place ... removed at the end" is a
        # single injection; "the dislodged catheter was removed ... a new one left in place" is indwelling.
        if removed and not (cues and cues[-1].start > removed[-1].start):
            catheter.removed = True
            catheter.indwelling = False
            x.cite("catheter.indwelling", *removed)
        elif cues:
            catheter.indwelling = True
            x.cite("catheter.indwelling", *cues)
        else:
            catheter.indwelling = None  # placed, but the note does not say whether it stayed
    elif negated:
        x.cite("catheter.placed", *negated)
        x.cite("catheter.indwelling", *negated)
    return catheter
