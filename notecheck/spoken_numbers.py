"""Numbers written as words ("L four five", "eight out of ten", "zero point two five percent").

Speech-recognition exports spell numbers out. The recognizers read digits, so before the pipeline runs the
note is read through `digits_for_words`: every spoken number becomes its digits, left-aligned and padded
with spaces to the phrase's own length ("eight out of ten" -> "8     out of 10 "). The result has exactly
the note's length, so every offset the pipeline reports indexes the original note too; the engine cuts the
evidence text from the original (`NoteChecker`). Word lists: patterns/spoken_numbers.yaml.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from .patterns_path import load_yaml


@dataclass(frozen=True)
class SpokenNumbers:
    values: dict[str, int]
    units: frozenset[str]
    tens: frozenset[str]
    phrase: re.Pattern
    keep: re.Pattern | None

    def digits_for_words(self, text: str) -> str:
        """The text with spoken numbers as padded digits; the same string object when there are none."""
        if not self.phrase.search(text):
            return text
        kept = [(m.start(), m.end()) for m in self.keep.finditer(text)] if self.keep else []
        out, last = [], 0
        for m in self.phrase.finditer(text):
            if any(lo <= m.start() < hi for lo, hi in kept):
                continue
            digits = self._value(m.group(0))
            if digits is None or len(digits) > m.end() - m.start():
                continue
            out.append(text[last:m.start()])
            out.append(digits.ljust(m.end() - m.start()))
            last = m.end()
        out.append(text[last:])
        shadow = "".join(out)
        return shadow if len(shadow) == len(text) else text  # never shift an offset

    def _value(self, phrase: str) -> str | None:
        words = re.findall(r"[a-z]+", phrase.lower())
        if len(words) == 2 and words[0] in self.units and words[1] in self.tens:
            return str(self.values[words[0]] * 100 + self.values[words[1]])
        whole, i = 0, 0
        while i < len(words) and words[i] != "point":
            if words[i] == "hundred":
                whole = max(whole, 1) * 100
            elif words[i] != "and":
                whole += self.values[words[i]]
            i += 1
        fraction = "".join(str(self.values[w]) for w in words[i + 1:] if w in self.units)  # "point two five"
        if i < len(words) and not fraction:
            return None
        return f"{whole}.{fraction}" if fraction else str(whole)


@cache
def load_spoken_numbers(folder: Path) -> SpokenNumbers:
    data = load_yaml(folder / "spoken_numbers.yaml")
    units, teens, tens = data["units"], data["teens"], data["tens"]
    alt = lambda words: "|".join(sorted(words, key=len, reverse=True))  # noqa: E731 - longest first
    one_to_99 = rf"(?:(?:{alt(tens)})(?:[\s-]+(?:{alt(units)}))?|{alt(teens)}|{alt(units)})"
    hundred, point = data["hundred"], data["point"]
    # "Omni two forty" is Omnipaque 240, as "one eighty" is 180: a digit then a tens word, said as hundreds.
    said_as_hundreds = rf"(?:{alt(units)})\s+(?:{alt(tens)})\b"
    number = (rf"(?:{said_as_hundreds}|{one_to_99}(?:\s+{hundred}(?:\s+(?:and\s+)?{one_to_99})?)?"
              rf"(?:\s+{point}(?:\s+(?:{alt(units)}))+)?|{point}(?:\s+(?:{alt(units)}))+)")
    keep = data.get("keep") or []
    first_letters = "".join(sorted({w[0] for w in [*units, *teens, *tens, point]}))
    return SpokenNumbers(
        values={**units, **teens, **tens},
        units=frozenset(units), tens=frozenset(tens),
        # A leading look-ahead on the words' first letters lets most positions fail at once.
        phrase=re.compile(rf"(?=[{first_letters}])\b{number}\b", re.IGNORECASE),
        keep=re.compile(r"\b(?:" + "|".join(map(re.escape, keep)) + r")\b", re.IGNORECASE) if keep else None,
    )
