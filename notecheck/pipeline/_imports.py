"""Import medspaCy without paying for QuickUMLS.

`medspacy/__init__.py` imports `medspacy.util`, which imports `quickumls` (and with it nltk) at module
load: ~0.3 s of a 2 s start-up budget, for a UMLS matcher notecheck never uses. While medspaCy loads,
`quickumls` resolves to an empty placeholder; the placeholder is removed afterwards, so a later
`import quickumls` elsewhere still gets the real package.
"""

import sys
import types


def import_medspacy_without_quickumls() -> None:
    if "medspacy" in sys.modules or "quickumls" in sys.modules:
        return
    placeholder = types.ModuleType("quickumls")
    placeholder.__path__ = []  # a package, so "from quickumls import spacy_component" finds the submodule
    component = types.ModuleType("quickumls.spacy_component")
    placeholder.spacy_component = component
    sys.modules["quickumls"] = placeholder
    sys.modules["quickumls.spacy_component"] = component
    try:
        import medspacy  # noqa: F401
    finally:
        del sys.modules["quickumls"]
        del sys.modules["quickumls.spacy_component"]
