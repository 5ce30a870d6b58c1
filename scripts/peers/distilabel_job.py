"""The peers' benchmark job with distilabel: send each row's messages once, keep the reply.
Run by scripts/bench_peers.py in distilabel's own virtualenv. Usage: distilabel_job.py ROWS.jsonl BASE_URL CONCURRENCY"""
import sys

from datasets import load_dataset
from distilabel.models import OpenAILLM
from distilabel.pipeline import Pipeline
from distilabel.steps import make_generator_step
from distilabel.steps.tasks import ChatGeneration


def main(rows: str, base_url: str, concurrency: str) -> None:
    dataset = load_dataset("json", data_files=rows, split="train")
    with Pipeline(name="bench-rewrite") as pipeline:
        load = make_generator_step(dataset, batch_size=int(concurrency))
        # distilabel sends one input batch at a time, concurrently: the batch size is its concurrency
        chat = ChatGeneration(llm=OpenAILLM(model="fake-model", base_url=base_url, api_key="bench", max_retries=0,
                                            generation_kwargs={"temperature": 0.0, "top_p": 1.0, "max_new_tokens": 1000}),
                              input_batch_size=int(concurrency))
        load >> chat
    distiset = pipeline.run(use_cache=False)
    print("rows out:", len(distiset["default"]["train"]))


if __name__ == "__main__":
    main(*sys.argv[1:])
