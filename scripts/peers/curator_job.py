"""The peers' benchmark job with bespokelabs-curator: send each row's messages once, keep the reply.
Run by scripts/bench_peers.py in curator's own virtualenv. Usage: curator_job.py ROWS.jsonl BASE_URL CONCURRENCY"""
import sys

import tiktoken

# curator counts tokens (for its rate limiter only) with tiktoken's cl100k_base, which tiktoken downloads
# on first use; offline, one token per byte stands in for it.
_bytes = tiktoken.Encoding(name="bytes", pat_str=r"[\s\S]", mergeable_ranks={bytes([i]): i for i in range(256)},
                           special_tokens={})
tiktoken.get_encoding = lambda name: _bytes
tiktoken.encoding_for_model = lambda name: _bytes

from bespokelabs import curator  # noqa: E402
from datasets import load_dataset  # noqa: E402


class Rewrite(curator.LLM):
    def prompt(self, row):
        return row["messages"]

    def parse(self, row, response):
        return {"output": response}


def main(rows: str, base_url: str, concurrency: str) -> None:
    dataset = load_dataset("json", data_files=rows, split="train")
    rewrite = Rewrite(model_name="fake-model", backend="openai",
                      generation_params={"temperature": 0.0, "top_p": 1.0, "max_tokens": 1000},
                      backend_params={"base_url": base_url, "api_key": "bench", "max_concurrent_requests": int(concurrency),
                                      "max_requests_per_minute": 10**9, "max_tokens_per_minute": 10**12})
    out = rewrite(dataset)
    out = getattr(out, "dataset", out)
    print("rows out:", len(out))


if __name__ == "__main__":
    main(*sys.argv[1:])
