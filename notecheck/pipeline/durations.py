"""How durations are found: "6 weeks", "x10 days", "3 months", "six wks", converted to weeks, and
"since March" when the note gives a date to count to. Whether a duration belongs to conservative care
is decided in notecheck/extract/conservative.py. Patterns: patterns/measurements.yaml `durations`."""

import calendar
import re
from datetime import date

from spacy.language import Language

from .regex_spans import RegexSpanRecognizer, compile_patterns, load_section

_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
          "ten": 10, "eleven": 11, "twelve": 12}
_UNIT_KEY = {"day": "day", "days": "day", "week": "week", "weeks": "week", "wk": "week", "wks": "week",
             "month": "month", "months": "month", "mo": "month", "mos": "month",
             "year": "year", "years": "year", "yr": "year", "yrs": "year"}
_MONTHS = {name[:3].lower(): i for i, name in enumerate(calendar.month_name) if name}


def make_duration_parser(weeks_per_unit: dict, date_patterns: list[re.Pattern]):
    def parse_duration(match, pattern, text):
        groups = match.groupdict()
        if groups.get("month"):
            return _since_month(groups["month"], text, date_patterns)
        raw = match["number"].lower()
        unit = _UNIT_KEY[match["unit"].lower()]
        number = float(raw) if raw[0].isdigit() or raw[0] == "." else _WORDS.get(raw)
        weeks = round(number * weeks_per_unit[unit], 2) if number is not None else None
        return {"number": number, "unit": unit, "weeks": weeks}

    return parse_duration


def _since_month(month_name: str, text: str, date_patterns: list[re.Pattern]) -> dict | None:
    reference = _latest_date(text, date_patterns)
    if reference is None:
        return None  # "since March" with no date in the note cannot be measured
    month = _MONTHS[month_name[:3].lower()]
    year = reference.year if month <= reference.month else reference.year - 1
    end_of_month = date(year, month, calendar.monthrange(year, month)[1])
    days = (reference - end_of_month).days
    if days < 0:
        return None
    return {"number": days, "unit": "day", "weeks": round(days / 7, 2), "since": month_name.lower(),
            "until": reference.isoformat()}


def _latest_date(text: str, date_patterns: list[re.Pattern]) -> date | None:
    found = []
    for regex in date_patterns:
        for m in regex.finditer(text):
            g = m.groupdict()
            month = _MONTHS[g["month"][:3].lower()] if g.get("month") else int(g["m"])
            try:
                found.append(date(int(g["y"]), month, int(g["d"])))
            except ValueError:
                continue
    return max(found) if found else None


@Language.factory("notecheck_durations", default_config={"patterns_path": None})
def make_duration_recognizer(nlp: Language, name: str, patterns_path: str | None):
    section = load_section(patterns_path, "durations")
    dates = [re.compile(p, re.IGNORECASE) for p in section["date_patterns"]]
    parser = make_duration_parser(section["weeks_per_unit"], dates)
    return RegexSpanRecognizer(section["label"], compile_patterns(section), parser)
