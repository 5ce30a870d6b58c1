"""How long the evolving-directions analysis takes on many suggestion lines (issue target: 50k lines in
minutes). Run: python scripts/bench_directions.py [N]"""
import random
import sys
import time

from hf_synth.analysis import evolving_directions, load_nlp

VERBS = ["Add", "Explain", "Provide", "Include", "Clarify", "Use", "Remove", "Expand", "Mention", "Describe"]
OBJECTS = ["an example", "the reasoning", "more context", "a summary", "the definition", "simpler words",
           "a code snippet", "the history", "a comparison", "the limitations"]
TAILS = ["", " to make it clearer.", " for beginners.", " at the end of the response.", " with numbers."]


def lines(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.choice(VERBS)} {rng.choice(OBJECTS)}{rng.choice(TAILS)}" for _ in range(n)]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
    started = time.perf_counter()
    nlp = load_nlp()
    loaded = time.perf_counter() - started
    print("| lines | batch size | seconds | lines/s | distinct pairs |\n| --- | --- | --- | --- | --- |")
    for batch_size in (256, 1000):
        texts = lines(n)
        started = time.perf_counter()
        directions = evolving_directions(texts, nlp, batch_size=batch_size)
        seconds = time.perf_counter() - started
        print(f"| {n:,} | {batch_size} | {seconds:.1f} | {n / seconds:,.0f} | {directions.summary()['distinct_pairs']} |")
    print(f"\n(spaCy pipeline loaded in {loaded:.2f} s)")


if __name__ == "__main__":
    main()
