"""A user's files are never replaced: every command that writes takes a new path, an empty folder or a
folder hf_synth wrote, refuses anything else in one sentence before any request is paid for, and never
writes over its input, `--overwrite` or not."""
import os
import shutil
from pathlib import Path

import datasets
import pytest
from command import hf_synth_cli

import hf_synth
from hf_synth import LLM, CoEvolTransform, HFSynthError
from hf_synth.hub import write_repo

SAMPLE = Path(hf_synth.__file__).parent / "data" / "alpaca_sample.jsonl"


cli = hf_synth_cli


def coevol(server, source, output, *more):
    return cli("coevol", source, "--output", output, "--limit", "2", "--mode", "edit", "--model", "m",
               "--base-url", server.url, *more)


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("overwrite", [False, True])
def test_the_input_file_is_never_the_output(server, tmp_path, overwrite):
    data = tmp_path / "mydata.jsonl"
    shutil.copy(SAMPLE, data)
    result = coevol(server, data, data, *(["--overwrite"] if overwrite else []))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (f"error: --output {data} would replace the input {data}: "
                                                      "choose another --output.")
    assert data.read_bytes() == SAMPLE.read_bytes() and server.requests == []


def test_a_folder_hf_synth_did_not_write_is_refused_then_replaced_only_with_overwrite(server, tmp_path):
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    result = coevol(server, SAMPLE, mine)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: --output {mine} is a folder that hf_synth did not write, and it would be replaced: choose a new "
        "--output, or pass --overwrite to replace it.")
    assert snapshot(mine) == {"notes.txt": b"my notes"} and server.requests == []

    assert coevol(server, SAMPLE, mine, "--overwrite").returncode == 0  # the deliberate case
    assert len(datasets.load_from_disk(str(mine))) == 2 and not (mine / "notes.txt").exists()


def test_an_existing_file_is_refused(server, tmp_path):
    other = tmp_path / "results.parquet"
    other.write_bytes(b"PAR1 not mine to replace")
    result = coevol(server, SAMPLE, other)
    assert result.returncode == 1 and f"--output {other} is a file, and it would be replaced" in result.stderr
    assert other.read_bytes() == b"PAR1 not mine to replace"


def test_a_run_writes_its_folder_again_and_an_empty_folder_is_taken(server, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert coevol(server, SAMPLE, empty).returncode == 0
    assert (empty / ".hf_synth").is_file() and (empty / "hf_synth_recipe.json").is_file()
    again = coevol(server, SAMPLE, empty)
    assert again.returncode == 0, again.stderr
    assert not [p for p in tmp_path.iterdir() if ".saving-" in p.name or ".old-" in p.name]  # nothing left beside it


def test_filter_analyze_and_publish_follow_the_same_rule(server, tmp_path):
    run = tmp_path / "run"
    assert coevol(server, SAMPLE, run).returncode == 0
    before = snapshot(run)
    # filter into its own input: refused, --overwrite or not
    result = cli("filter", run, "--output", run, "--keep", "succeeded", "--overwrite")
    assert result.returncode == 1 and f"would replace the input {run}" in result.stderr
    # analyze and publish --folder into a folder of the user's
    mine = tmp_path / "mine"
    (mine / "data").mkdir(parents=True)
    (mine / "data" / "keep.csv").write_text("a,b\n")
    result = cli("analyze", run, "--output", mine)
    assert result.returncode == 1 and f"--output {mine} is a folder that hf_synth did not write" in result.stderr
    result = cli("publish", run, "me/run", "--folder", mine, "--local-only", "--license", "mit")
    assert result.returncode == 1 and f"--folder {mine} is a folder that hf_synth did not write" in result.stderr
    assert snapshot(mine) == {os.path.join("data", "keep.csv"): b"a,b\n"} and snapshot(run) == before
    # into new paths, each writes; again into what it wrote, each writes again
    for _ in range(2):
        assert cli("filter", run, "--output", tmp_path / "kept", "--keep", "succeeded").returncode == 0
        assert cli("analyze", run, "--output", tmp_path / "report").returncode == 0
        assert cli("publish", run, "me/run", "--folder", tmp_path / "repo", "--local-only",
                   "--license", "mit").returncode == 0
    assert len(datasets.load_from_disk(str(tmp_path / "kept"))) == 2
    assert (tmp_path / "report" / "summary.md").is_file() and (tmp_path / "repo" / "README.md").is_file()


def test_write_repo_refuses_a_folder_it_did_not_write(tmp_path):
    mine = tmp_path / "mine"
    (mine / "data").mkdir(parents=True)
    (mine / "data" / "keep.csv").write_text("a,b\n")
    dataset = datasets.Dataset.from_dict({"instruction": ["a"], "output": ["b"]})
    with pytest.raises(HFSynthError, match="is a folder that hf_synth did not write, and it would be replaced: "
                                           "choose a new folder, or pass overwrite=True"):
        write_repo(dataset, mine, CoEvolTransform(LLM(model="m", base_url="http://127.0.0.1:9/v1")), license="mit",
                   analysis=False)
    assert (mine / "data" / "keep.csv").read_text() == "a,b\n"


def test_recipes_and_cards_carry_no_path_of_this_machine(server, tmp_path):
    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    shutil.copy(SAMPLE, project / "data" / "alpaca.jsonl")
    near = cli("coevol", "data/alpaca.jsonl", "--output", "out/run", "--limit", "2", "--mode", "edit", "--model", "m",
               "--base-url", server.url, cwd=project)
    assert near.returncode == 0, near.stderr
    far = tmp_path / "elsewhere" / "deep" / "down" / "run"
    assert coevol(server, project / "data" / "alpaca.jsonl", far).returncode == 0
    for run, recorded in ((project / "out" / "run", os.path.join("..", "..", "data", "alpaca.jsonl")),
                          (far, os.path.join(*[".."] * 4, "project", "data", "alpaca.jsonl"))):
        recipe = (run / "hf_synth_recipe.json").read_text()
        assert f'"source": "{recorded}"' in recipe and '"local": true' in recipe  # relative to the run
        again = cli("reproduce", run, "--output", run.parent / "again", "--model", "m", "--base-url", server.url)
        assert again.returncode == 0, again.stderr  # found from any folder
        # published: the input by its name alone, and the card asks for it
        repo = run.parent / "repo"
        assert cli("publish", run, "me/run", "--folder", repo, "--local-only", "--license", "mit").returncode == 0
        shown, card = (repo / "hf_synth_recipe.json").read_text(), (repo / "README.md").read_text()
        assert '"source": "alpaca.jsonl"' in shown and str(tmp_path) not in recipe + shown + card
        assert "hf-synth reproduce hf_synth_recipe.json --output reproduced --input PATH/TO/alpaca.jsonl" in card
        result = cli("reproduce", repo, "--output", tmp_path / "x")
        assert result.returncode == 1 and "pass --input with where it is now" in result.stderr
