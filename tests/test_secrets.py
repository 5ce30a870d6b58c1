"""The API key never reaches a file: request cache, dataset, datasets cache, fingerprint, worker
pickles, logs, errors, dataset card, recipe. Tested by running a whole job and searching every byte
it wrote for the key."""
import subprocess
import sys

from fake_openai import FakeOpenAI, coevol_replies, prefer_edit

KEY = "sk-secret-0123456789abcdefXYZ"

JOB = """
import logging, pickle, sys
from pathlib import Path
import datasets
from hf_synth import LLM, CoEvolTransform, HFSynthError
from hf_synth.hub import write_repo

out = Path(sys.argv[3])
logging.basicConfig(filename=out / "debug.log", level=logging.DEBUG)   # every library's debug logs
ds = datasets.Dataset.from_dict({"instruction": [f"task {i}" for i in range(8)], "output": [f"a{i}" for i in range(8)]})
ds.to_json(out / "input.jsonl")
ds = datasets.load_dataset("json", data_files=str(out / "input.jsonl"), split="train")
transform = CoEvolTransform(LLM(model="m", base_url=sys.argv[1], api_key=sys.argv[2]), max_rounds=1)
(out / "transform.pkl").write_bytes(pickle.dumps(transform))          # what num_proc workers receive
(out / "fingerprint.txt").write_text(repr(transform.fingerprint_state()))
evolved = ds.map(transform, batched=True, batch_size=4, num_proc=2)
evolved.save_to_disk(str(out / "saved"))
write_repo(evolved, out / "repo", transform, license="mit", source=str(out / "input.jsonl"))
try:   # a key the endpoint rejects: the error must not show it either
    ds.map(CoEvolTransform(LLM(model="m", base_url=sys.argv[4], api_key=sys.argv[2]), max_rounds=1), batched=True)
except HFSynthError as error:
    (out / "error.txt").write_text(str(error))
print(repr(transform), transform.llm)
"""


def test_the_key_is_in_no_file_log_or_error(tmp_path):
    env = {"HF_SYNTH_CACHE": str(tmp_path / "requests"), "HF_DATASETS_CACHE": str(tmp_path / "datasets"),
           "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    with FakeOpenAI(coevol_replies(prefer_edit), api_key=KEY) as good, FakeOpenAI(api_key="sk-other") as rejects:
        result = subprocess.run([sys.executable, "-c", JOB, good.url, KEY, str(tmp_path), rejects.url],
                                capture_output=True, text=True, timeout=300, env=env)
        assert result.returncode == 0, result.stderr
        assert len(good.requests) == 8 * 8 and all(h["Authorization"] == f"Bearer {KEY}" for h in good.headers)
    assert "rejected the API key (401)" in (tmp_path / "error.txt").read_text()
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    kinds = {p.suffix for p in written}
    assert {".sqlite", ".arrow", ".parquet", ".json", ".md", ".log", ".pkl", ".txt"} <= kinds, kinds
    assert (tmp_path / "debug.log").stat().st_size > 0
    leaks = [str(p) for p in written if KEY.encode() in p.read_bytes()]
    assert leaks == []
    assert KEY not in result.stdout + result.stderr


def test_a_key_given_in_code_has_one_variable_that_goes_with_its_last_llm():
    import gc
    import os

    from hf_synth import LLM
    from hf_synth.llm.secret import GIVEN_PREFIX

    before = {name for name in os.environ if name.startswith(GIVEN_PREFIX)}
    llms = [LLM(model="m", base_url="http://127.0.0.1:9/v1", api_key="sk-one-tenant-key-000000") for _ in range(1000)]
    other = LLM(model="m", base_url="http://127.0.0.1:9/v1", api_key="sk-another-tenant-key-11")
    added = {name for name in os.environ if name.startswith(GIVEN_PREFIX)} - before
    assert len(added) == 2  # one per key, however many LLMs hold it: the environment does not grow
    assert sorted(os.environ[name] for name in added) == ["sk-another-tenant-key-11", "sk-one-tenant-key-000000"]
    del llms[:-1]
    gc.collect()
    assert {os.environ[name] for name in added} == {"sk-another-tenant-key-11", "sk-one-tenant-key-000000"}
    del llms, other
    gc.collect()
    assert not {name for name in os.environ if name.startswith(GIVEN_PREFIX)} - before  # gone with its LLMs
    inherited = subprocess.run(["env"], capture_output=True, text=True).stdout
    assert "tenant-key" not in inherited  # nor in what a later subprocess inherits
