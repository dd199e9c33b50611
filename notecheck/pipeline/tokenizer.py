"""The tokenizer: medspaCy's clinical tokenizer rules, built directly.

Same rules as `medspacy.custom_tokenizer.create_medspacy_tokenizer` (spaCy's English defaults plus
every punctuation mark but "." as an infix, so "c/o" and "L4-L5" split and "1.5 mg" does not). Three
differences, both for speed with identical tokens (tests/test_pipeline.py compares them):
- it is registered for `spacy.blank`, so spaCy's default tokenizer is never built only to be replaced
  (medspaCy's function needs one to exist; ~0.4 s of start-up);
- spaCy's whitespace special cases ("\\n", " ") are left out: the first blank line or double space
  in a note switches the tokenizer's cache off for the rest of it (3x slower on real notes);
- the note text is kept on the Doc (`doc.user_data["notecheck_text"]`): `doc.text` rebuilds it from
  the tokens on every access.
"""

import re
import string

import spacy
from spacy.tokenizer import Tokenizer
from spacy.util import compile_infix_regex, compile_prefix_regex, compile_suffix_regex


@spacy.registry.tokenizers("notecheck.clinical_tokenizer.v1")
def make_clinical_tokenizer():
    def create(nlp):
        defaults = nlp.Defaults
        punctuation = re.escape(string.punctuation.replace(".", ""))
        infixes = list(defaults.infixes) + [rf"[{punctuation}]"]
        exceptions = {text: tokens for text, tokens in defaults.tokenizer_exceptions.items() if text.strip()}
        return TextKeepingTokenizer(Tokenizer(
            nlp.vocab,
            exceptions,
            prefix_search=compile_prefix_regex(defaults.prefixes).search,
            suffix_search=compile_suffix_regex(defaults.suffixes).search,
            infix_finditer=compile_infix_regex(infixes).finditer,
            token_match=defaults.token_match,
        ))

    return create


class TextKeepingTokenizer:
    def __init__(self, tokenizer: Tokenizer) -> None:
        self.tokenizer = tokenizer

    def __call__(self, text: str):
        doc = self.tokenizer(text)
        doc.user_data["notecheck_text"] = text
        return doc
