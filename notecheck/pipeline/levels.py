"""How spinal levels are found: interspaces such as L4-L5, L4-5, L5/S1, C7-T1, T10-11 and the sacral
hiatus, normalised to "L4-L5" form. Patterns: patterns/measurements.yaml `levels`."""


from spacy.language import Language

from .regex_spans import RegexSpanRecognizer, compile_patterns, load_section

# Highest vertebra number per region; anything else (e.g. "L7-8", "T14") is not a spinal level.
_MAX_VERTEBRA = {"C": 7, "T": 12, "L": 5, "S": 5}
_NEXT_REGION = {"C": "T", "T": "L", "L": "S"}


def parse_level(match, pattern, text):
    if pattern.spec.get("value"):
        return {"level": pattern.spec["value"], "regions": ["sacral"]}
    r1, n1 = match["r1"].upper(), int(match["n1"])
    r2 = (match["r2"] or r1).upper()
    n2 = int(match["n2"])
    if not (1 <= n1 <= _MAX_VERTEBRA[r1] and 1 <= n2 <= _MAX_VERTEBRA[r2]):
        return None
    adjacent = (r2 == r1 and n2 == n1 + 1) or (r2 == _NEXT_REGION.get(r1) and n1 == _MAX_VERTEBRA[r1] and n2 == 1)
    if not adjacent:
        return None  # "L3-L5" spans two interspaces; "T1-7" is more likely a range of dermatomes
    return {"level": f"{r1}{n1}-{r2}{n2}", "regions": [_region(r1), _region(r2)]}


def _region(letter: str) -> str:
    return {"C": "cervical", "T": "thoracic", "L": "lumbar", "S": "sacral"}[letter]


@Language.factory("notecheck_levels", default_config={"patterns_path": None})
def make_level_recognizer(nlp: Language, name: str, patterns_path: str | None):
    section = load_section(patterns_path, "levels")
    return RegexSpanRecognizer(section["label"], compile_patterns(section), parse_level)
