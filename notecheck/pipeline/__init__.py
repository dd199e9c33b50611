"""The spaCy/medspaCy pipeline, built once per process and reused.

Order: clinical tokenizer (medspaCy's rules) -> newline-aware sentences -> target rules -> regex
recognizers (levels, quantities, pain scores, durations, laterality, ICD-10) -> sections -> ConText.
PyRuSH and the default ConText/section rules are not used: they cost most of the time and miss this
domain (measured in benchmarks/throughput.py; see README "Performance").
"""


from functools import cache

import warnings

from loguru import logger

# medspaCy's matchers keep an empty token Matcher when all rules are literals; spaCy warns (W036) on
# every call. Nothing is wrong, and a user should see no dependency noise.
warnings.filterwarnings("ignore", message=r"\[W036\]")

# PyRuSH logs every sentence start, with the note's words, at DEBUG; medspaCy's newer code uses loguru too.
logger.disable("PyRuSH")
logger.disable("medspacy")

from ._imports import import_medspacy_without_quickumls  # noqa: E402

import_medspacy_without_quickumls()

import spacy  # noqa: E402
from spacy.language import Language  # noqa: E402

from . import durations, laterality, levels, pain_scores, quantities, rules, sentences, tokenizer  # noqa: E402,F401
from .regex_spans import SPAN_GROUP  # noqa: E402

COMPONENTS = [
    "notecheck_sentences",
    "notecheck_targets",
    "notecheck_levels",
    "notecheck_quantities",
    "notecheck_pain_scores",
    "notecheck_durations",
    "notecheck_laterality",
    "notecheck_icd10",
    "notecheck_sections",
    "notecheck_context",
]


def build_pipeline(patterns_path: str | None = None) -> Language:
    """A new pipeline; most callers want `get_pipeline()` instead."""
    nlp = spacy.blank("en", config={"nlp": {"tokenizer": {"@tokenizers": "notecheck.clinical_tokenizer.v1"}}})
    for name in COMPONENTS:
        nlp.add_pipe(name, config={"patterns_path": patterns_path})
    return nlp


@cache
def get_pipeline(patterns_path: str | None = None) -> Language:
    """The process-wide pipeline for a rules folder (built on first use)."""
    return build_pipeline(patterns_path)


__all__ = ["SPAN_GROUP", "build_pipeline", "get_pipeline"]
