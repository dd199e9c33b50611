"""How doses, volumes and concentrations are found: "80 mg", "4 mL", "3 cc", "0.25%", "10 mg/mL",
"8 mL/hr". Units are normalised (cc -> mL). Patterns: patterns/measurements.yaml `quantities`."""


import re

from spacy.language import Language

from .regex_spans import RegexSpanRecognizer, compile_patterns, load_section

_UNIT = {
    "mg/ml": ("mg/mL", "concentration"), "mcg/ml": ("mcg/mL", "concentration"), "µg/ml": ("mcg/mL", "concentration"),
    "mg/cc": ("mg/mL", "concentration"), "%": ("%", "concentration"),
    "ml/hr": ("mL/hr", "rate"), "ml/h": ("mL/hr", "rate"), "cc/hr": ("mL/hr", "rate"), "cc/h": ("mL/hr", "rate"),
    "mcg/cc": ("mcg/mL", "concentration"),
    "mg": ("mg", "dose"), "milligram": ("mg", "dose"), "milligrams": ("mg", "dose"),
    "mcg": ("mcg", "dose"), "µg": ("mcg", "dose"), "ug": ("mcg", "dose"), "microgram": ("mcg", "dose"),
    "micrograms": ("mcg", "dose"), "unit": ("units", "dose"), "units": ("units", "dose"),
    "ml": ("mL", "volume"), "cc": ("mL", "volume"),
}


# Spoken and spelled-out units, read as their abbreviations ("milligram per CC" -> "mg/cc").
_SPELLED = [(re.compile(p, re.IGNORECASE), abbrev) for p, abbrev in (
    (r"milligrams?", "mg"), (r"micrograms?", "mcg"), (r"millilit(?:er|re)s?", "ml"), (r"percent", "%"),
    (r"\s*(?:/|per)\s*", "/"), (r"/hour$", "/hr"))]


def _normalised_unit(unit: str) -> str:
    unit = unit.lower()
    for pattern, abbrev in _SPELLED:
        unit = pattern.sub(abbrev, unit)
    return unit


def parse_quantity(match, pattern, text):
    unit, kind = _UNIT[_normalised_unit(match["unit"])]
    return {"number": float(match["number"]), "unit": unit, "kind": kind}


@Language.factory("notecheck_quantities", default_config={"patterns_path": None})
def make_quantity_recognizer(nlp: Language, name: str, patterns_path: str | None):
    section = load_section(patterns_path, "quantities")
    return RegexSpanRecognizer(section["label"], compile_patterns(section), parse_quantity)
