from pathlib import Path

import datasets
from command import hf_synth_cli
from fake_openai import FakeOpenAI

import hf_synth

SAMPLE = Path(hf_synth.__file__).parent / "data" / "alpaca_sample.jsonl"
MULTITURN = Path(hf_synth.__file__).parent / "data" / "multiturn_sample.jsonl"


def test_coevol_command_writes_the_dataset_and_a_summary(server, tmp_path):
    out = tmp_path / "out"
    result = hf_synth_cli("coevol", str(SAMPLE), "--output", str(out), "--limit", "3", "--max-rounds", "2",
                          "--model", "m", "--base-url", server.url)
    assert result.returncode == 0, result.stderr
    evolved = datasets.load_from_disk(str(out))
    assert len(evolved) == 3 and evolved["coevol_rounds"] == [2, 2, 2]
    assert "rows: 3, failed: 0" in result.stdout
    assert "accepted rounds (rounds: rows): 2: 3" in result.stdout and "3 of 3 responses changed\n" in result.stdout
    assert "calls: 48 (" in result.stdout and "48 requests sent" in result.stdout
    # no terminal: the live status is a log line (every 30 s, and one at the end)
    status_line = [line for line in result.stderr.splitlines() if "rows 3/3 |" in line][-1]
    assert "| requests 48 answered, 0 cached, 0 in flight, 0 retries | tokens" in status_line


def test_coevol_command_on_the_multi_turn_sample(server, tmp_path):
    result = hf_synth_cli("coevol", str(MULTITURN), "--output", str(tmp_path / "out"), "--max-rounds", "1",
                          "--max-turns", "1", "--model", "m", "--base-url", server.url)
    assert result.returncode == 0, result.stderr
    evolved = datasets.load_from_disk(str(tmp_path / "out"))
    given = sum(1 for line in MULTITURN.read_text().splitlines() if line.strip())
    assert len(evolved) == given > 0 and evolved["coevol_error"] == [None] * given
    assert all(rounds == [1] for rounds in evolved["coevol_rounds"])


def test_unreachable_endpoint_is_one_line_of_error(tmp_path):
    with FakeOpenAI() as down:
        url = down.url
    result = hf_synth_cli("coevol", str(SAMPLE), "--output", str(tmp_path / "out"), "--model", "m", "--base-url", url)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: Cannot reach the LLM endpoint {url}")
    assert "Traceback" not in result.stderr
    assert "| requests" not in result.stderr  # no last status line above the error


def test_missing_file_and_unreachable_hub_say_so(tmp_path):
    result = hf_synth_cli("coevol", str(tmp_path / "nope.jsonl"), "--output", str(tmp_path / "out"))
    assert result.returncode == 1 and "nope.jsonl: no such file or folder." in result.stderr
    result = hf_synth_cli("coevol", "someone/some-dataset", "--output", str(tmp_path / "out"))
    assert result.returncode == 1
    assert "error: Could not load 'someone/some-dataset' from the Hugging Face Hub" in result.stderr
    assert "Traceback" not in result.stderr
    # online but the Hub unreachable: one look, then one sentence (load_dataset alone retries 5 times)
    with FakeOpenAI() as closed:
        hub = closed.url.removesuffix("/v1")
    # (in a new process: the Hub's libraries read these when imported)
    result = hf_synth_cli("coevol", "someone/some-dataset", "--output", tmp_path / "out", new_process=True,
                          env={"HF_HUB_OFFLINE": "0", "HF_ENDPOINT": hub})
    assert result.returncode == 1 and "Retrying" not in result.stderr and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: Could not load 'someone/some-dataset': the Hugging Face Hub at {hub} cannot be reached "
        "(ConnectError). Set HF_HUB_OFFLINE=1 to use a copy downloaded before, or pass a local file or folder.")


def test_review_instruct_command_with_rounds_reviewers_and_difficulty(tmp_path):
    from fake_openai import review_replies

    with FakeOpenAI(review_replies()) as fake:
        out = tmp_path / "out"
        result = hf_synth_cli("review-instruct", str(SAMPLE), "--output", str(out), "--limit", "2", "--rounds", "2",
                              "--reviewers", "1", "--difficulty", "--model", "m", "--base-url", fake.url)
        assert result.returncode == 0, result.stderr
        from hf_synth.methods.difficulty import ROLE

        sampling = {(body["messages"][0]["content"] == ROLE, body["temperature"], body["max_tokens"])
                    for body in fake.requests}
    grown = datasets.load_from_disk(str(out))
    assert len(grown) == 2 and all(len(messages) == 4 for messages in grown["review_messages"])
    assert grown["difficulty_labels"] == [["easy", "medium"]] * 2
    # each step samples at its own defaults: the authors' for the method, a deterministic judge's for ours
    assert sampling == {(False, 0.1, 8192), (True, 0.0, 1000)}
    assert "rows: 2, failed: 0" in result.stdout and "next questions: depth: 2" in result.stdout
    # one account: 2 × (2 + 1 + 1) calls of the method, then 2 × 2 labels, all sent
    assert "difficulty step: 2 rows done, 0 failed" in result.stdout
    assert "calls: 12 (" in result.stdout and "this run: 12 requests sent" in result.stdout
    table = result.stdout.split("difficulty by round (shares of the labelled user turns):\n", 1)[1].splitlines()
    assert table[0].split() == ["round", "turns", "easy", "medium", "hard", "unlabeled"]
    assert table[1].split() == ["1", "2", "100.0%", "0.0%", "0.0%", "0"]
    assert table[2].split() == ["2", "2", "0.0%", "100.0%", "0.0%", "0"]


def test_review_instruct_command_rejects_bad_options(tmp_path):
    result = hf_synth_cli("review-instruct", str(SAMPLE), "--output", str(tmp_path / "out"), "--reviewers", "9")
    assert result.returncode != 0 and "pass perspectives=" in result.stderr


def test_filter_command_chains_plain_and_llm_filters(tmp_path):
    from test_filters import quality_reply

    evolved = datasets.Dataset.from_dict({
        "instruction": ["a", "b", "c", "d"], "output": ["x", "y", "z", "w"],
        "coevol_output": ["x+ (score 5)", "y", "z+ (score 3)", None], "coevol_rounds": [1, 0, 2, None],
        "coevol_error": [None, None, None, "LLM call failed: HTTP 500"], "coevol_usage": [{"calls": 8}] * 4})
    evolved.save_to_disk(str(tmp_path / "evolved"))
    with FakeOpenAI(quality_reply) as judge:
        result = hf_synth_cli("filter", str(tmp_path / "evolved"), "--output", str(tmp_path / "kept"),
                              "--keep", "succeeded,evolved", "--min-quality", "4.5",
                              "--response-column", "coevol_output", "--model", "judge", "--base-url", judge.url)
        assert result.returncode == 0, result.stderr
        assert len(judge.requests) == 2                     # only the rows left after the plain filters are rated
    kept = datasets.load_from_disk(str(tmp_path / "kept"))
    assert kept["instruction"] == ["a"]
    assert result.stdout.splitlines()[:4] == ["rows: 4", "after Succeeded: 3", "after Evolved: 2", "after QualityFilter: 1"]
    assert "this run: 2 requests sent, 0 from cache" in result.stdout
    assert "rows 2/4 | requests 2 answered" in result.stderr  # the live status line


def test_filter_with_workers_counts_their_requests_and_says_when_a_finished_filter_was_reused(tmp_path):
    from test_filters import quality_reply

    evolved = datasets.Dataset.from_dict({"instruction": [f"q{i}" for i in range(6)], "output": ["x (score 5)"] * 6})
    evolved.save_to_disk(str(tmp_path / "evolved"))
    env = {"HF_DATASETS_CACHE": str(tmp_path / "datasets")}
    with FakeOpenAI(quality_reply) as judge:
        job = ("filter", str(tmp_path / "evolved"), "--output", str(tmp_path / "kept"), "--min-quality", "4.5",
               "--num-proc", "2", "--batch-size", "3", "--model", "judge", "--base-url", judge.url)
        first = hf_synth_cli(*job, env=env)
        assert first.returncode == 0, first.stderr
        assert "this run: 6 requests sent, 0 from cache" in first.stdout  # counted in the workers
        again = hf_synth_cli(*job, env=env)
    assert "after QualityFilter: 6 (datasets reused this finished filter: no request sent)" in again.stdout
    assert "this run: 0 requests sent" in again.stdout and len(judge.requests) == 6


def test_filter_command_needs_a_filter_and_known_names(tmp_path):
    result = hf_synth_cli("filter", str(SAMPLE), "--output", str(tmp_path / "kept"))
    assert result.returncode == 1 and "error: nothing to filter by" in result.stderr
    result = hf_synth_cli("filter", str(SAMPLE), "--output", str(tmp_path / "kept"), "--keep", "evolved,shiny")
    assert result.returncode == 1 and "error: --keep shiny: unknown; choose from succeeded" in result.stderr


def test_the_summary_says_why_no_response_changed(server, tmp_path):
    from fake_openai import coevol_replies

    server.reply = coevol_replies(lambda messages: "<assistant 1>\nThe first one.")  # whatever is shown first
    result = hf_synth_cli("coevol", str(SAMPLE), "--output", str(tmp_path / "out"), "--limit", "3", "--max-rounds", "1",
                          "--model", "m", "--base-url", server.url)
    assert result.returncode == 0, result.stderr
    assert ("0 of 3 responses changed; of the 3 edits not accepted, the judge preferred the first position in both "
            "orders for 3 — a position-biased judge, from which Eq. 4 accepts no edit; try a stronger judge model "
            "(llms={'judge': ...})") in result.stdout


def test_an_agent_gets_its_own_model_on_the_command_line(tmp_path):
    from fake_openai import agent_of, review_replies

    with FakeOpenAI(review_replies()) as fake:
        result = hf_synth_cli("review-instruct", str(SAMPLE), "--output", str(tmp_path / "out"), "--limit", "1",
                              "--rounds", "2", "--reviewers", "2", "--model", "m", "--base-url", fake.url,
                              "--agent-model", "reviewer_2=qwen2-72b", "--agent-model", "chairman=big@" + fake.url)
        assert result.returncode == 0, result.stderr
        models = {(agent_of(body["messages"]), body["model"]) for body in fake.requests}
        typo = hf_synth_cli("review-instruct", str(SAMPLE), "--output", str(tmp_path / "typo"), "--limit", "1",
                            "--model", "m", "--base-url", fake.url, "--agent-model", "chairmen=big")
    assert models == {("candidate", "m"), ("reviewer", "m"), ("reviewer", "qwen2-72b"), ("chairman", "big")}
    assert typo.returncode == 1 and "this run has no agent 'chairmen'; its agents are candidate, chairman, reviewer" \
        in typo.stderr


def test_the_command_can_run_twice_in_one_process_and_leaves_it_as_it_was(server, tmp_path):
    import logging
    import signal

    status_log = logging.getLogger("hf_synth.status")
    before = (list(status_log.handlers), status_log.propagate, datasets.are_progress_bars_disabled(),
              signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    for rows in (1, 2):  # the second run's status lines go to its own stderr, not the first one's
        result = hf_synth_cli("coevol", SAMPLE, "--output", tmp_path / str(rows), "--limit", rows, "--max-rounds", "1",
                              "--model", "m", "--base-url", server.url)
        assert result.returncode == 0 and f"rows {rows}/{rows} |" in result.stderr, result.stderr
    assert (list(status_log.handlers), status_log.propagate, datasets.are_progress_bars_disabled(),
            signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
