"""Token counting with an injectable tokenizer. The default is the embedded model's own vocabulary
(SmolLM2's byte-level BPE), shipped as a `tokenizers` file read from its GGUF by
`scripts/export_vocabulary.py`: it counts as llama.cpp does, needs neither llama.cpp nor a download,
and so works with the `[analysis]` extra alone (tiktoken would download its vocabulary)."""
from __future__ import annotations

import functools
import gzip
from pathlib import Path
from typing import Callable

VOCABULARY = Path(__file__).parent / "data" / "smollm2_tokenizer.json.gz"
# CoEvol counted every length with tiktoken's gpt-3.5-turbo encoding; `bpe-openai` (in the [analysis]
# extra) ships that vocabulary, where tiktoken downloads it on first use.
PAPER_ENCODING = "cl100k_base"


@functools.cache
def _embedded_vocabulary():
    from tokenizers import Tokenizer

    return Tokenizer.from_str(gzip.decompress(VOCABULARY.read_bytes()).decode("utf-8"))


def paper_counter() -> tuple[Callable[[str], int], str]:
    """The counter of CoEvol's lengths (Figure 2b), and its name: gpt-3.5-turbo's encoding
    (`cl100k_base`) when `bpe-openai` is installed, else the embedded model's vocabulary."""
    try:
        import bpe_openai
    except ImportError:
        return token_counter(), "the embedded model's vocabulary (SmolLM2; install hf_synth[analysis] for the paper's)"
    encoding = bpe_openai.get_encoding(PAPER_ENCODING)
    return (lambda text: len(encoding.encode(text))), f"gpt-3.5-turbo's encoding ({PAPER_ENCODING}), as the paper"


def token_counter(tokenizer=None) -> Callable[[str], int]:
    """A function text → number of tokens. `tokenizer` is a transformers tokenizer, a tiktoken
    encoding, a callable returning tokens or a count, or None for the embedded model's vocabulary."""
    if tokenizer is None:
        vocabulary = _embedded_vocabulary()
        return lambda text: len(vocabulary.encode(text, add_special_tokens=False).ids)
    if hasattr(tokenizer, "encode"):
        if hasattr(tokenizer, "add_special_tokens"):  # transformers: count the text's tokens only
            return lambda text: len(tokenizer.encode(text, add_special_tokens=False))
        return lambda text: len(tokenizer.encode(text))
    if callable(tokenizer):
        return lambda text: (lambda n: n if isinstance(n, int) else len(n))(tokenizer(text))
    raise TypeError(f"tokenizer={tokenizer!r} is neither a tokenizer with .encode nor a callable")
