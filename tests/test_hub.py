"""Dataset cards, the repository folder, and publishing through the real huggingface_hub client to a
fake Hub on loopback."""
import io
import json
import re
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
from command import hf_synth_cli
from fake_hub import FakeHub
from fake_openai import FakeOpenAI, coevol_replies, prefer_edit, r2s_replies, review_replies
from huggingface_hub import DatasetCard

import hf_synth
from hf_synth import LLM, CoEvolTransform, R2STransform, ReviewInstructTransform
from hf_synth.runs import recipe
from hf_synth.errors import InputError
from hf_synth.hub import build_card, write_repo
from hf_synth.transforms import DialogueEvalTransform

DATA = Path(hf_synth.__file__).parent / "data"
KEY = "sk-test-do-not-leak-0123456789"
HF_TOKEN = "hf_fake_token_for_tests"


def sample(name: str, rows: int) -> datasets.Dataset:
    return datasets.load_dataset("json", data_files=str(DATA / name), split="train").select(range(rows))


def run(replies, steps_of, data: datasets.Dataset):
    """Map the steps `steps_of(llm)` over `data` on a fake endpoint that demands KEY."""
    with FakeOpenAI(replies, api_key=KEY) as server:
        steps = steps_of(LLM(model="fake-model", base_url=server.url, api_key=KEY, max_retries=0))
        for step in steps:
            data = data.map(step, batched=True)
    return data, steps


METHODS = {
    "coevol": (coevol_replies(prefer_edit), lambda llm: [CoEvolTransform(llm, max_rounds=2)], "alpaca_sample.jsonl",
               "coevol_prompts.JUDGE"),
    "review-instruct": (review_replies(), lambda llm: [ReviewInstructTransform(llm, rounds=2)], "alpaca_sample.jsonl",
                        "review_instruct_prompts.CHAIRMAN"),
    "r2s": (r2s_replies(), lambda llm: [R2STransform(llm, turns=2), DialogueEvalTransform(llm)],
            "documents_sample.jsonl", "r2s_prompts.QUESTIONER"),
}


# the calls each step of METHODS makes for 3 rows, from the methods' definitions, not from the output:
# CoEvol, 2 accepted rounds of 8 calls; ReviewInstruct, 2 answers + 1 round of 3 reviews and the
# Chairman; R2S, the flow and 2 turns of a plan and a reply, then one evaluation per dialogue
CALLS = {"coevol": [3 * 2 * 8], "review-instruct": [3 * (2 + 3 + 1)], "r2s": [3 * (1 + 2 * 2), 3]}


# the sampling the card must show: what was sent, the method's paper values for an LLM that set none
SENT = {"coevol": "0.0 | 1.0 | 1000", "review-instruct": "0.1 | 1.0 | 8192", "r2s": "0.0 | 1.0 | 1000"}


@pytest.mark.parametrize("method", METHODS)
def test_card_of_each_method(method):
    replies, steps_of, data, prompt = METHODS[method]
    out, steps = run(replies, steps_of, sample(data, 3))
    card = build_card(out, steps, source=str(DATA / data), license="cc-by-nc-4.0", language="en", repo_id="me/data")
    text = str(card)
    assert KEY not in text

    reparsed = DatasetCard(text).data  # the metadata as huggingface_hub reads it back
    assert reparsed.license == "cc-by-nc-4.0" and reparsed.language == ["en"]
    assert reparsed.tags == ["synthetic", "hf-synth", method] and reparsed.size_categories == ["n<1K"]
    assert reparsed.configs == [{"config_name": "default", "data_files": [{"split": "train", "path": "data/train-*"}]}]
    assert "text-generation" in reparsed.task_categories
    assert reparsed.source_datasets is None  # a local file is not a Hub dataset

    # the prompts the method used, verbatim; the models; the numbers of each step from its columns
    module_name, name = prompt.split(".")
    module = __import__(f"hf_synth.methods.{module_name}", fromlist=[name])
    assert getattr(module, name) in text
    assert f"| all agents | `fake-model` | OpenAI-compatible server | {SENT[method]} | none |" in text
    for step, calls in zip(steps, CALLS[method], strict=True):
        assert f"| `{type(step).__name__}` | 3 | 0 (" in text and f"| {calls} |" in text
    assert 'load_dataset("me/data", split="train")' in text
    assert "hf-synth reproduce hf_synth_recipe.json" in text and "@software{hf_synth" in text


def test_license_comes_from_the_user_or_the_source_card(tmp_path):
    out, steps = run(coevol_replies(prefer_edit), lambda llm: [CoEvolTransform(llm, max_rounds=1)],
                     sample("alpaca_sample.jsonl", 2))
    source = tmp_path / "source"
    source.mkdir()
    (source / "README.md").write_text("---\nlicense: apache-2.0\nlanguage:\n- fr\n---\n# Source\n")
    card = build_card(out, steps, source=str(source))
    assert card.data.license == "apache-2.0" and card.data.language == ["fr"]
    assert "License: `apache-2.0` (from the source dataset's card)" in str(card)
    assert build_card(out, steps, source=str(source), license="other").data.license == "other"

    with pytest.raises(InputError, match="license of the data is unknown.*pass license="):
        build_card(out, steps, source=str(DATA / "alpaca_sample.jsonl"))
    (source / "README.md").write_text("# a card without metadata\n")
    with pytest.raises(InputError, match="names none"):
        build_card(out, steps, source=str(source))


def test_the_repository_folder_loads_back_equal_and_reproduces(tmp_path):
    out, steps = run(coevol_replies(prefer_edit), lambda llm: [CoEvolTransform(llm, max_rounds=2)],
                     sample("alpaca_sample.jsonl", 5))
    folder = write_repo(out, tmp_path / "repo", steps, source="alpaca_sample.jsonl", license="mit", repo_id="me/x")

    loaded = datasets.load_dataset(str(folder), split="train")
    assert loaded.features == out.features and loaded.to_list() == out.to_list()

    card = (folder / "README.md").read_text()
    links = re.findall(r"\]\((analysis/[^)]+)\)", card)
    assert {"analysis/coevol_rounds.png", "analysis/coevol_lengths.png"} <= set(links)
    assert all((folder / link).is_file() for link in links)
    assert "#### Accepted rounds of evolution" in card and "rows failed" not in card  # failures: once, in Statistics

    rebuilt = recipe.transforms(recipe.load(folder))
    assert [t.settings() for t in rebuilt] == [t.settings() for t in steps]
    assert rebuilt[0].fingerprint_state() == steps[0].fingerprint_state()

    for path in folder.rglob("*"):
        assert not path.is_file() or KEY.encode() not in path.read_bytes(), path


def hub_env(hub_url: str) -> dict:
    return {"HF_ENDPOINT": hub_url, "HF_TOKEN": HF_TOKEN, "HF_HUB_OFFLINE": "0", "OPENAI_API_KEY": KEY}


def test_push_to_hub_uploads_the_repository_folder_in_one_commit(tmp_path):
    with FakeOpenAI(coevol_replies(prefer_edit), api_key=KEY) as server, FakeHub(HF_TOKEN) as hub:
        result = hf_synth_cli("coevol", str(DATA / "alpaca_sample.jsonl"), "--output", str(tmp_path / "run"),
                              "--limit", "4", "--max-rounds", "1", "--model", "m", "--base-url", server.url,
                              "--push-to-hub", "me/alpaca-coevol", "--license", "cc-by-nc-4.0", "--language", "en",
                              "--private", env=hub_env(hub.url))
        assert result.returncode == 0, result.stderr
        assert f"published: {hub.url}/datasets/me/alpaca-coevol/commit/" in result.stdout
        assert len(hub.commits) == 1 and hub.private["me/alpaca-coevol"] is True
        files = hub.repos["me/alpaca-coevol"]
        assert {"README.md", "hf_synth_recipe.json", "data/train-00000-of-00001.parquet",
                "analysis/coevol_rounds.png"} <= set(files)

        saved = datasets.load_from_disk(str(tmp_path / "run"))
        uploaded = pq.read_table(io.BytesIO(files["data/train-00000-of-00001.parquet"]))
        assert uploaded.to_pylist() == saved.to_list()
        assert DatasetCard(files["README.md"].decode()).data.license == "cc-by-nc-4.0"
        assert json.loads(files["hf_synth_recipe.json"])["input"]["limit"] == 4

        # publishing the saved run again replaces the data in a second commit (the repository exists);
        # a shard left by an earlier, bigger upload goes
        hub.add_file("me/alpaca-coevol", "data/train-00001-of-00002.parquet", b"stale")
        result = hf_synth_cli("publish", str(tmp_path / "run"), "me/alpaca-coevol", "--license", "mit",
                              env=hub_env(hub.url))
        assert result.returncode == 0, result.stderr
        assert len(hub.commits) == 2 and DatasetCard(files["README.md"].decode()).data.license == "mit"
        assert [path for path in files if path.startswith("data/")] == ["data/train-00000-of-00001.parquet"]

        for path, content in files.items():
            assert KEY.encode() not in content and HF_TOKEN.encode() not in content, path
        assert all(HF_TOKEN not in line for line in (result.stdout + result.stderr).splitlines())


def test_license_of_a_hub_source_is_read_from_its_card(tmp_path):
    with FakeOpenAI(coevol_replies(prefer_edit)) as server:
        result = hf_synth_cli("coevol", str(DATA / "alpaca_sample.jsonl"), "--output", str(tmp_path / "run"),
                              "--limit", "2", "--max-rounds", "1", "--model", "m", "--base-url", server.url)
        assert result.returncode == 0, result.stderr
    recipe_path = tmp_path / "run" / recipe.FILE
    written = json.loads(recipe_path.read_text())
    written["input"]["source"] = "tatsu-lab/alpaca"  # as if the run had read the Hub dataset
    del written["input"]["local"]
    recipe_path.write_text(json.dumps(written))
    with FakeHub() as hub:
        hub.add_file("tatsu-lab/alpaca", "README.md", b"---\nlicense: cc-by-nc-4.0\nlanguage:\n- en\n---\n# Alpaca\n")
        result = hf_synth_cli("publish", str(tmp_path / "run"), "me/x", "--local-only", "--folder",
                              str(tmp_path / "repo"), env=hub_env(hub.url))
    assert result.returncode == 0, result.stderr
    card = DatasetCard.load(tmp_path / "repo" / "README.md")
    assert card.data.license == "cc-by-nc-4.0" and card.data.language == ["en"]
    assert card.data.source_datasets == ["extended|tatsu-lab/alpaca"]


def test_hub_failures_are_one_sentence(tmp_path):
    with FakeOpenAI(coevol_replies(prefer_edit)) as server:
        result = hf_synth_cli("coevol", str(DATA / "alpaca_sample.jsonl"), "--output", str(tmp_path / "run"),
                              "--limit", "1", "--max-rounds", "1", "--model", "m", "--base-url", server.url)
        assert result.returncode == 0, result.stderr
    with FakeHub() as hub:
        closed = hub.url
    result = hf_synth_cli("publish", str(tmp_path / "run"), "me/x", "--license", "mit", env=hub_env(closed))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        f"error: Could not publish to me/x: the Hugging Face Hub at {closed} cannot be reached")

    with FakeHub(token="hf_another_token") as hub:
        result = hf_synth_cli("publish", str(tmp_path / "run"), "me/x", "--license", "mit", env=hub_env(hub.url))
    assert result.returncode == 1 and "the Hub rejected the token (401)" in result.stderr
    assert HF_TOKEN not in result.stderr

    result = hf_synth_cli("publish", str(tmp_path / "run"), "me/x", env=hub_env(closed))
    assert result.returncode == 1 and "license of the data is unknown" in result.stderr

    # a mirror whose address carries credentials: they are not shown
    with_credentials = closed.replace("http://", "http://user:hunter2@")
    result = hf_synth_cli("publish", str(tmp_path / "run"), "me/x", "--license", "mit", env=hub_env(with_credentials))
    assert result.returncode == 1 and f"the Hugging Face Hub at {closed} cannot be reached" in result.stderr
    assert "hunter2" not in result.stderr + result.stdout


def test_reproduce_runs_the_recipe_again(tmp_path):
    with FakeOpenAI(r2s_replies()) as server:
        result = hf_synth_cli("r2s", str(DATA / "documents_sample.jsonl"), "--output", str(tmp_path / "run"),
                              "--limit", "2", "--turns", "2", "--evaluate", "--model", "m", "--base-url", server.url)
        assert result.returncode == 0, result.stderr
        sent = len(server.requests)
        # a new request cache and a new datasets cache: every request is sent again
        result = hf_synth_cli("reproduce", str(tmp_path / "run" / recipe.FILE), "--output", str(tmp_path / "again"),
                              "--cache-dir", str(tmp_path / "other_cache"),
                              env={"HF_DATASETS_CACHE": str(tmp_path / "other_datasets_cache")})
        assert result.returncode == 0, result.stderr
        assert len(server.requests) == 2 * sent
    first, again = (datasets.load_from_disk(str(tmp_path / name)) for name in ("run", "again"))
    assert again.to_list() == first.to_list() and "eval_avg" in again.column_names
    assert json.loads((tmp_path / "again" / recipe.FILE).read_text())["steps"] == \
        json.loads((tmp_path / "run" / recipe.FILE).read_text())["steps"]


def test_the_sample_cards_are_what_the_script_renders_today():
    # dataset_cards/samples/ shows readers a published card; regenerate with scripts/render_sample_cards.py
    import importlib.util

    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("render_sample_cards", root / "scripts" / "render_sample_cards.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.names() == ["coevol_embedded", "r2s_embedded", "review_instruct_embedded"]
    for name in script.names():
        shipped = (root / "dataset_cards" / "samples" / f"{name}.md").read_text(encoding="utf-8")
        assert script.render(name) == shipped, f"{name}: run python scripts/render_sample_cards.py"
        assert "| embedded llama.cpp server |" in shipped  # says which model made it


def test_the_cards_first_sentence_counts_what_succeeded_and_what_changed():
    rows = datasets.Dataset.from_dict({"instruction": ["Say hi", None, "Add 2 and 2", "Name a fruit"],
                                       "output": ["hi", "x", "4", "apple"]})

    def judge(messages):  # keeps the edit of "Say hi" only
        return prefer_edit(messages) if "Say hi" in messages[-1]["content"] else "<equal>\nsame"

    out, steps = run(coevol_replies(judge), lambda llm: [CoEvolTransform(llm, max_rounds=1)], rows)
    text = build_card(out, steps, license="mit").content
    assert ("4 instruction samples run through **CoEvol** (Li et al., 2024) with hf_synth: 1\nresponses improved "
            "(an edit accepted), 2 kept as they were, and\n1 rows failed") in text

    seeds = datasets.Dataset.from_dict({"instruction": ["Explain tides", "   "]})
    out, steps = run(review_replies(), lambda llm: [ReviewInstructTransform(llm, rounds=2)], seeds)
    assert "1 multi-turn conversations grown from 2 seed instructions" in build_card(out, steps, license="mit").content
