"""Sentence boundaries for procedure notes.

ConText scopes stop at sentence ends, so boundaries decide what a negation reaches. PyRuSH (medspaCy's
default) is correct but manages ~40 notes/s here; spaCy's punctuation sentencizer is fast but joins
template lines ("Denies fever\\nContrast: Omnipaque 2 mL" becomes one sentence and negates the
contrast). This splitter starts a sentence after a line break, after . ? ! ; followed by space, and at
an upper-case section header run into the previous text ("...,ANESTHESIA: , Local.,"), and after a
dictation command left as a word ("period", "new paragraph").
"""


import re
from pathlib import Path

import numpy
from spacy.attrs import IDX, SENT_START
from spacy.language import Language
from spacy.tokens import Doc

from ..patterns_path import load_json, patterns_dir
from .regex_spans import doc_text

_BOUNDARY = re.compile(
    r"\n"  # a line break
    r"|[.?!;](?=\s)"  # sentence punctuation followed by space
    r"|,(?=\s*[A-Z][A-Z /&-]{2,40}:)"  # comma before an upper-case header run into the line
    # dictation commands speech recognition left as words ("...radiculopathy period IMAGING shows ..."),
    # but not "a period of six weeks"
    r"|(?<![Aa] )(?<![Tt]he )\b(?:period|full stop|new paragraph|next paragraph|new line|next line)\b(?!\s+of\b)"
)


@Language.factory("notecheck_sentences", default_config={"patterns_path": None})
def make_sentence_splitter(nlp: Language, name: str, patterns_path: str | None):
    headers = _spoken_headers(Path(patterns_path) if patterns_path else patterns_dir())
    return lambda doc: split_sentences(doc, headers)


def _spoken_headers(folder: Path) -> re.Pattern | None:
    """Section headers dictated without a colon into run-on text ("... as tolerated CONSENT risks were ..."):
    the upper-case header words of patterns/sections.json, followed by lower-case text."""
    titles = {rule["literal"].rstrip(" :").upper() for rule in load_json(folder / "sections.json")["section_rules"]
              if rule.get("literal")}
    titles = sorted((t for t in titles if len(t) >= 4 and re.fullmatch(r"[A-Z][A-Z /-]+", t)), key=len, reverse=True)
    if not titles:
        return None
    # (?=[A-Z]{4}) first: most positions fail there at once, before the look-behind and the alternation.
    return re.compile(r"(?=[A-Z]{4})(?<=[a-z0-9,)] )(?=(?:" + "|".join(map(re.escape, titles)) + r")\s+[a-z])")


def split_sentences(doc: Doc, headers: re.Pattern | None = None) -> Doc:
    if not len(doc):
        return doc
    text = doc_text(doc)
    ends = [m.end() for m in _BOUNDARY.finditer(text)]
    if headers is not None:
        ends = sorted(ends + [m.start() for m in headers.finditer(text)])
    boundaries = numpy.fromiter(ends, dtype=numpy.int64)
    token_starts = doc.to_array([IDX]).astype(numpy.int64)
    # The first token at or after each boundary starts a sentence; every other token does not.
    firsts = numpy.searchsorted(token_starts, boundaries, side="left")
    # -1 (stored as uint64, as spaCy does) marks a token that does not start a sentence.
    flags = numpy.full(len(doc), -1, dtype=numpy.int64).astype(numpy.uint64)
    flags[firsts[firsts < len(doc)]] = 1
    flags[0] = 1
    doc.from_array([SENT_START], flags.reshape(-1, 1))
    # Kept for later components: iterating doc.sents builds a Span per sentence every time.
    doc.user_data["notecheck_sentence_starts"] = numpy.flatnonzero(flags == 1).tolist()
    doc.user_data["notecheck_token_starts"] = token_starts.tolist()
    return doc


def token_char_starts(doc: Doc) -> list[int]:
    """Character offset of each token (from this splitter, or computed)."""
    starts = doc.user_data.get("notecheck_token_starts")
    return starts if starts is not None else [token.idx for token in doc]


def sentence_token_starts(doc: Doc) -> list[int]:
    """Token index of each sentence start (from this splitter, or from doc.sents otherwise)."""
    starts = doc.user_data.get("notecheck_sentence_starts")
    return starts if starts is not None else [sent.start for sent in doc.sents]
