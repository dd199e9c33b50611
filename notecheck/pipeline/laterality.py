"""How laterality is found: the side of the needle approach ("left paramedian", "midline") or of the
symptoms ("right L5 radiculopathy"), else a weaker side cue ("right total knee arthroplasty"). Approach
beats symptoms beats weak cues in notecheck/extract/anatomy.py.
Patterns: patterns/measurements.yaml `laterality` and `icd10` (written ICD-10-CM codes)."""


from spacy.language import Language

from .regex_spans import RegexSpanRecognizer, compile_patterns, load_section


_ABBREVIATED = {"l": "left", "r": "right", "bilat": "bilateral"}


def parse_side(match, pattern, text):
    side = pattern.spec.get("value") or next(v for k, v in match.groupdict().items() if k.startswith("side") and v)
    side = side.lower()
    return {"side": _ABBREVIATED.get(side, side), "strength": pattern.spec.get("strength", "symptom")}


def parse_icd10(match, pattern, text):
    return {"code": match["code"]}


@Language.factory("notecheck_laterality", default_config={"patterns_path": None})
def make_laterality_recognizer(nlp: Language, name: str, patterns_path: str | None):
    section = load_section(patterns_path, "laterality")
    return RegexSpanRecognizer(section["label"], compile_patterns(section), parse_side)


@Language.factory("notecheck_icd10", default_config={"patterns_path": None})
def make_icd10_recognizer(nlp: Language, name: str, patterns_path: str | None):
    section = load_section(patterns_path, "icd10")
    return RegexSpanRecognizer(section["label"], compile_patterns(section), parse_icd10)
