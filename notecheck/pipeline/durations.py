"""How durations are found: "6 weeks", "x10 days", "3 months", "six wks", converted to weeks.
Whether a duration belongs to conservative care is decided in notecheck/extract/conservative.py.
Patterns: patterns/measurements.yaml `durations`."""


from spacy.language import Language

from .regex_spans import RegexSpanRecognizer, compile_patterns, load_section

_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
          "ten": 10, "eleven": 11, "twelve": 12}
_UNIT_KEY = {"day": "day", "days": "day", "week": "week", "weeks": "week", "wk": "week", "wks": "week",
             "month": "month", "months": "month", "mo": "month", "mos": "month",
             "year": "year", "years": "year", "yr": "year", "yrs": "year"}


def make_duration_parser(weeks_per_unit: dict):
    def parse_duration(match, pattern, text):
        raw = match["number"].lower()
        unit = _UNIT_KEY[match["unit"].lower()]
        number = float(raw) if raw[0].isdigit() or raw[0] == "." else _WORDS.get(raw)
        weeks = round(number * weeks_per_unit[unit], 2) if number is not None else None
        return {"number": number, "unit": unit, "weeks": weeks}

    return parse_duration


@Language.factory("notecheck_durations", default_config={"patterns_path": None})
def make_duration_recognizer(nlp: Language, name: str, patterns_path: str | None):
    section = load_section(patterns_path, "durations")
    parser = make_duration_parser(section["weeks_per_unit"])
    return RegexSpanRecognizer(section["label"], compile_patterns(section), parser)
