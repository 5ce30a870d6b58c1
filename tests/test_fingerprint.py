"""The fingerprint datasets gets: deterministic across processes, sensitive to what changes the
output, blind to the API key and to how requests are sent; and no key in any pickle."""
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import datasets
import dill
import pytest
from datasets.fingerprint import Hasher

import hf_synth
from hf_synth import LLM, CoEvolTransform

HASH = ("from hf_synth import LLM, CoEvolTransform\nfrom datasets.fingerprint import Hasher\n"
        "print(Hasher.hash(CoEvolTransform(LLM(model='m', base_url='http://127.0.0.1:9/v1'), max_rounds=2)))")


def fingerprint(**llm_options):
    options = {"model": "m", "base_url": "http://127.0.0.1:9/v1", **llm_options}
    return Hasher.hash(CoEvolTransform(LLM(**options), max_rounds=2))


CHECKOUT = Path(hf_synth.__file__).parent.parent  # the hf_synth under test, whatever is installed


def _hash_in_a_new_process(pythonpath: Path = CHECKOUT) -> str:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "PYTHONPATH": str(pythonpath)}
    return subprocess.run([sys.executable, "-c", HASH + "\nimport hf_synth; assert hf_synth.__file__.startswith("
                           f"{str(pythonpath)!r}), hf_synth.__file__"], capture_output=True, text=True, check=True,
                          env=env, cwd=pythonpath).stdout.strip()


def test_the_same_in_two_processes():
    assert _hash_in_a_new_process() == _hash_in_a_new_process() == fingerprint()


@pytest.mark.parametrize("change", [{"model": "other"}, {"base_url": "http://127.0.0.1:10/v1"}, {"temperature": 0.7},
                                    {"top_p": 0.9}, {"max_tokens": 10}, {"seed": 1}])
def test_changes_with_what_changes_the_output(change):
    assert fingerprint(**change) != fingerprint()


@pytest.mark.parametrize("change", [{"api_key": "sk-one"}, {"max_concurrency": 3}, {"timeout": 5.0},
                                    {"max_retries": 0}])
def test_ignores_key_concurrency_timeout_and_retries(change):
    assert fingerprint(**change) == fingerprint()


def test_changes_with_method_options_and_agents():
    llm = LLM(model="m", base_url="http://127.0.0.1:9/v1")
    base = Hasher.hash(CoEvolTransform(llm))
    assert Hasher.hash(CoEvolTransform(llm, max_rounds=1)) != base
    assert Hasher.hash(CoEvolTransform(llm, mode="edit")) != base
    assert Hasher.hash(CoEvolTransform(llm, llms={"judge": LLM(model="j", base_url="http://127.0.0.1:9/v1")})) != base
    assert Hasher.hash(CoEvolTransform(llm, cache=False)) == base


def test_changes_when_a_prompt_is_edited(tmp_path):
    copy = tmp_path / "pkg"
    shutil.copytree(Path(hf_synth.__file__).parent, copy / "hf_synth")
    prompts = copy / "hf_synth" / "methods" / "coevol_prompts.py"
    unedited = _hash_in_a_new_process(copy)
    assert unedited == fingerprint()  # the copy hashes as the checkout does, until a prompt changes
    prompts.write_text(prompts.read_text().replace("no more than 3 writing", "no more than 4 writing"))
    assert _hash_in_a_new_process(copy) != unedited


def test_map_uses_it_without_falling_back_to_a_random_fingerprint():
    ds = datasets.Dataset.from_dict({"instruction": ["a"], "output": ["b"]})
    t1 = CoEvolTransform(LLM(model="m", base_url="http://127.0.0.1:9/v1", api_key="sk-a"))
    t2 = CoEvolTransform(LLM(model="m", base_url="http://127.0.0.1:9/v1", api_key="sk-b", max_concurrency=2))
    kwargs = {"batched": True, "batch_size": 1000}
    from datasets.fingerprint import update_fingerprint
    assert update_fingerprint(ds._fingerprint, t1, kwargs) == update_fingerprint(ds._fingerprint, t2, kwargs)


def test_no_api_key_in_pickles_or_repr():
    key = "sk-secret-abcdefghijklmnopqrstuvwxyz"
    transform = CoEvolTransform(LLM(model="m", base_url="http://127.0.0.1:9/v1", api_key=key))
    for blob in (pickle.dumps(transform), dill.dumps(transform), datasets.utils._dill.dumps(transform)):
        assert key.encode() not in blob
    assert key not in repr(transform)
    # a copy sent to a worker still has the settings that are not hashed, and finds its own key
    copy = dill.loads(dill.dumps(CoEvolTransform(LLM(model="m", base_url="http://127.0.0.1:9/v1", max_concurrency=7,
                                                     api_key=key))))
    assert copy.llm.max_concurrency == 7 and copy.llm.api_key.reveal() == key
    assert key not in repr(copy.llm.api_key) and key not in repr(copy.llm)


def test_every_transform_and_filter_hashes_the_same_in_another_process():
    code = ("from hf_synth import LLM, R2STransform, ReviewInstructTransform\n"
            "from hf_synth.transforms import DialogueEvalTransform, DifficultyTransform, PairwiseJudgeTransform, QualityTransform\n"
            "from hf_synth.filters import ConversationShape, Evolved, Grounded, QualityFilter, WinFilter\n"
            "from datasets.fingerprint import Hasher\n"
            "llm = LLM(model='m', base_url='http://127.0.0.1:9/v1')\n"
            "objects = [ReviewInstructTransform(llm, rounds=2), DifficultyTransform(llm), QualityTransform(llm),\n"
            "           PairwiseJudgeTransform(llm), Evolved(2), ConversationShape(max_turns=3),\n"
            "           QualityFilter(llm, threshold=4), WinFilter(llm), R2STransform(llm),\n"
            "           R2STransform(llm, strategy='cot'), DialogueEvalTransform(llm), Grounded(0.5)]\n"
            "print(' '.join(Hasher.hash(o) for o in objects))")
    run = lambda: subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                 env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home())}, cwd="/").stdout.split()
    first = run()
    assert first == run() and len(set(first)) == 12
