"""What a person at the command line sees: errors in the CLI's own terms, a 404 that names the models
served, help with defaults, `reproduce` from another folder with overrides, no half-written folder,
and errors in Python that start where the user called."""
import json
import os
import shutil
import traceback
from pathlib import Path

import datasets
import pytest
from command import hf_synth_cli
from fake_openai import FakeOpenAI, coevol_replies, prefer_edit

import hf_synth
from hf_synth import LLM, CoEvolTransform, EndpointError
from hf_synth.runs.recipe import FILE

SAMPLE = Path(hf_synth.__file__).parent / "data" / "alpaca_sample.jsonl"


cli = hf_synth_cli


def error_line(result) -> str:
    assert result.returncode == 1, result.stderr
    return result.stderr.strip().splitlines()[-1]


@pytest.fixture
def server():
    with FakeOpenAI(coevol_replies(prefer_edit), model="served-model") as fake:
        yield fake


def test_errors_name_the_flags_not_the_python_arguments(server, tmp_path):
    datasets.Dataset.from_dict({"prompt": ["a"], "answer": ["b"]}).to_json(tmp_path / "odd.jsonl")
    result = cli("coevol", str(tmp_path / "odd.jsonl"), "--output", str(tmp_path / "o"), "--model", "m",
                 "--base-url", server.url)
    line = error_line(result)
    assert "pass --instruction-column, --response-column (and --input-column) to name yours" in line
    assert "_column=" not in line
    assert result.stderr.strip().splitlines() == [line]  # said before the run's banner, bars or status
    assert server.requests == []

    guarded = FakeOpenAI(api_key="sk-right").start()
    try:
        line = error_line(cli("coevol", str(SAMPLE), "--output", str(tmp_path / "o"), "--limit", "1", "--model", "m",
                              "--base-url", guarded.url))
    finally:
        guarded.stop()
    assert "rejected the API key (401): set OPENAI_API_KEY or pass --api-key-env NAME with a valid key." in line

    server.fault_for = lambda body: 404
    line = error_line(cli("coevol", str(SAMPLE), "--output", str(tmp_path / "o"), "--limit", "1", "--model", "nope",
                          "--base-url", server.url))
    assert line == f"error: {server.url} has no model 'nope' (404); it serves 'served-model': check --model."


def test_a_refused_connection_is_not_called_a_timeout(tmp_path):
    with FakeOpenAI() as down:
        url = down.url
    line = error_line(cli("coevol", str(SAMPLE), "--output", str(tmp_path / "o"), "--model", "m", "--base-url", url))
    assert "could not connect (ConnectionRefusedError)" in line and "timeout" not in line


def test_help_shows_every_option_with_its_default():
    text = cli("coevol", "--help").stdout
    for option, default in [("--max-rounds", "3"), ("--top-p", "1.0, the method's"), ("--max-tokens", "1000, the method's"), ("--max-retries", "5"),
                            ("--instruction-column", "instruction"), ("--timeout", "600.0"), ("--batch-size", "64")]:
        described = text.split(option, 2)[-1].split("\n  --", 1)[0]  # the option's own help paragraph
        assert f"(default: {default})" in " ".join(described.split()), option
    assert "--seed SEED" in text and "(default: None)" not in text
    # a switch that turns something off is not "(default: True)", which reads as on
    assert "(default: True)" not in text and "--no-system-role" in text
    assert "gllm: a generator fine-tuned" in " ".join(cli("r2s", "--help").stdout.split())


def test_reproduce_from_another_folder_with_overrides(server, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(SAMPLE, data / "alpaca.jsonl")
    first = cli("coevol", "alpaca.jsonl", "--output", str(tmp_path / "run"), "--limit", "2", "--mode", "edit",
                "--model", "m", "--base-url", server.url, cwd=data)
    assert first.returncode == 0, first.stderr
    recipe = json.loads((tmp_path / "run" / FILE).read_text())
    # relative to the run's folder: found again from anywhere, and no path of this machine is written
    assert recipe["input"]["source"] == os.path.join("..", "data", "alpaca.jsonl") and recipe["input"]["local"]
    assert str(tmp_path) not in (tmp_path / "run" / FILE).read_text()
    with FakeOpenAI(coevol_replies(prefer_edit)) as elsewhere:
        again = cli("reproduce", str(tmp_path / "run"), "--output", str(tmp_path / "again"), "--model", "other",
                    "--base-url", elsewhere.url, "--no-cache", cwd="/")
        assert again.returncode == 0, again.stderr
        assert [body["model"] for body in elsewhere.requests] == ["other", "other"]
    assert datasets.load_from_disk(str(tmp_path / "again"))["coevol_error"] == [None, None]

    moved = tmp_path / "moved.jsonl"
    (data / "alpaca.jsonl").rename(moved)
    line = error_line(cli("reproduce", str(tmp_path / "run"), "--output", str(tmp_path / "x"), cwd="/"))
    assert line == f"error: the recipe's input {data / 'alpaca.jsonl'} is not here: pass --input with where it is now"


def test_publish_local_only_without_a_license_writes_nothing(server, tmp_path):
    run = cli("coevol", str(SAMPLE), "--output", str(tmp_path / "run"), "--limit", "1", "--mode", "edit",
              "--model", "m", "--base-url", server.url)
    assert run.returncode == 0, run.stderr
    result = cli("publish", str(tmp_path / "run"), "me/x", "--local-only", "--folder", str(tmp_path / "repo"))
    assert "the license of the data is unknown" in error_line(result).lower() and "--license" in error_line(result)
    assert not (tmp_path / "repo").exists()


def test_python_errors_start_where_the_user_called(server):
    server.fault_for = lambda body: 401
    with pytest.raises(EndpointError) as error:
        datasets.Dataset.from_dict({"instruction": ["a"], "output": ["b"]}).map(
            CoEvolTransform(LLM(model="m", base_url=server.url), mode="edit"), batched=True)
    files = {Path(frame.filename).name for frame in traceback.extract_tb(error.value.__traceback__)}
    assert not files & {"runner.py", "door.py", "endpoint.py", "online.py", "_base.py", "tasks.py"}  # nothing from the loop thread
    assert error.value.__cause__ is None and error.value.__suppress_context__  # no SDK exception printed
