"""CoEvol's Figure 2 and 3 analyses, the one-call report and `hf-synth analyze`, on hand-made datasets
with known answers (real spaCy, real matplotlib and plotly)."""
import math
from pathlib import Path

import datasets
import pytest
from matplotlib.image import imread
from command import hf_synth_cli

import hf_synth
from hf_synth import InputError
from hf_synth.analysis import (evolving_directions, length_growth, plot_directions, plot_length_growth,
                               plot_round_distribution, report, response_lengths, round_distribution, suggestion_lines)

words = str.split  # a tokenizer: one token per word


def step(edited, accepted, suggestions="1. Add an example.\n2. Explain the reasoning."):
    return {"edited": edited, "accepted": accepted, "suggestions": suggestions}


def coevol_rows():
    """Four rows: evolved twice (2 → 3 → 5 words), once then rejected (4 → 6), rejected at once (3),
    and a failed row."""
    return datasets.Dataset.from_list([
        {"instruction": "i1", "output": "a b", "coevol_output": "a b c d e", "coevol_rounds": 2, "coevol_error": None,
         "coevol_trace": [step("a b c", True), step("a b c d e", True)]},
        {"instruction": "i2", "output": "a b c d", "coevol_output": "a b c d e f", "coevol_rounds": 1, "coevol_error": None,
         "coevol_trace": [step("a b c d e f", True, "- Use simpler words.\n\n* Provide more context."), step("x", False)]},
        {"instruction": "i3", "output": "a b c", "coevol_output": "a b c", "coevol_rounds": 0, "coevol_error": None,
         "coevol_trace": [step("y", False, "Clarify the definition.")]},
        {"instruction": "i4", "output": "q", "coevol_output": None, "coevol_rounds": None, "coevol_error": "LLM call failed",
         "coevol_trace": None}])


def test_round_distribution_counts_failed_rows_apart():
    table = round_distribution(coevol_rows())
    row = table.loc["all"]
    assert (row["unit"], row["units"], row["failed_rows"]) == ("row", 3, 1)
    assert [row[k] for k in (0, 1, 2)] == pytest.approx([1 / 3, 1 / 3, 1 / 3])
    assert 3 not in table.columns
    assert round_distribution(coevol_rows(), max_rounds=3).loc["all", 3] == 0


def test_round_distribution_of_conversations_and_of_runs_side_by_side():
    turns = datasets.Dataset.from_dict({"coevol_rounds": [[0, 2], [1], None], "coevol_error": [None, None, "bad turn"]})
    table = round_distribution({"conversations": turns, "single": coevol_rows()})
    assert list(table.index) == ["conversations", "single"]
    assert table.loc["conversations", "unit"] == "turn" and table.loc["conversations", "units"] == 3
    assert table.loc["conversations", "failed_rows"] == 1
    assert table.loc["conversations", [0, 1, 2]].tolist() == pytest.approx([1 / 3] * 3)
    empty = datasets.Dataset.from_dict({"coevol_rounds": [None], "coevol_error": ["x"]})
    assert math.isnan(round_distribution(empty).loc["all", 0])
    with pytest.raises(InputError, match="needs CoEvolTransform output"):
        round_distribution(datasets.Dataset.from_dict({"text": ["x"]}))


def test_response_lengths_replay_each_round():
    lengths = response_lengths(coevol_rows(), tokenizer=words)
    by_unit = lengths.pivot(index="unit", columns="round", values="tokens")
    assert by_unit.values.tolist() == [[2, 3, 5], [4, 6, 6], [3, 3, 3]]   # the failed row is left out


def test_length_growth_means_medians_ratio_and_per_round():
    growth = length_growth(coevol_rows(), tokenizer=words).loc["all"]
    assert growth["units"] == 3
    assert (growth["original_mean"], growth["original_median"]) == (3, 3)
    assert (growth["evolved_mean"], growth["evolved_median"]) == (pytest.approx(14 / 3), 5)
    assert growth["ratio"] == pytest.approx(14 / 9)
    per_round = length_growth(coevol_rows(), tokenizer=words, per_round=True)
    assert per_round["round"].tolist() == [0, 1, 2]
    assert per_round["mean"].tolist() == pytest.approx([3, 4, 14 / 3])
    assert per_round["ratio"].tolist() == pytest.approx([1, 4 / 3, 14 / 9])


def test_lengths_of_multi_turn_rows_and_injected_tokenizers():
    conversation = [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "one two"},
                    {"role": "user", "content": "q2"}, {"role": "assistant", "content": "three"}]
    ds = datasets.Dataset.from_list([{"messages": conversation, "coevol_rounds": [1], "coevol_error": None,
                                      "coevol_trace": [[step("one two three four", True)]]}])
    assert response_lengths(ds, tokenizer=words)["tokens"].tolist() == [2, 4]    # only the optimized turn

    class Encoding:  # the shape of a tiktoken encoding or a transformers tokenizer: .encode
        def encode(self, text):
            return list(text)

    assert response_lengths(ds, tokenizer=Encoding())["tokens"].tolist() == [7, 18]


def test_the_default_tokenizer_works_offline():
    from hf_synth.tokens import token_counter

    count = token_counter()
    # SmolLM2's byte-level BPE: "Hello" and " world" are one token each, no BOS is counted
    assert [count("Hello world"), count("Hello world. Hello world."), count("")] == [2, 6, 0]
    lengths = response_lengths(coevol_rows())
    assert (lengths["tokens"] > 0).all()
    assert lengths[lengths["unit"] == 0]["tokens"].is_monotonic_increasing


def test_evolving_directions_parse_each_suggestion_line_on_its_own():
    # Figure 3 counts what improved the data: the suggestions of accepted edits (by default)
    assert suggestion_lines(coevol_rows()) == ["Add an example.", "Explain the reasoning.", "Add an example.",
                                               "Explain the reasoning.", "Use simpler words.", "Provide more context."]
    lines = suggestion_lines(coevol_rows(), accepted_only=False)
    assert lines == ["Add an example.", "Explain the reasoning.", "Add an example.", "Explain the reasoning.",
                     "Use simpler words.", "Provide more context.", "Add an example.", "Explain the reasoning.",
                     "Clarify the definition."]
    directions = evolving_directions(lines)
    assert directions.pairs[("add", "example")] == 3 and directions.pairs[("explain", "reasoning")] == 3
    assert directions.summary() == {"texts": 9, "with_pair": 9, "distinct_verbs": 5, "distinct_pairs": 5}
    top = directions.top(verbs=2, objects=1)
    assert top.values.tolist() == [["add", "example", 3], ["explain", "reasoning", 3]]
    assert evolving_directions(["The answer is fine.", None, ""]).summary()["with_pair"] == 0


def test_the_plots_are_valid_png_and_html(tmp_path):
    directions = evolving_directions(suggestion_lines(coevol_rows(), accepted_only=False))
    png, html = tmp_path / "directions.png", tmp_path / "directions.html"
    plot_directions(directions, png=png, html=html)
    image = imread(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and image.shape[0] > 500 and image.shape[1] > 500
    assert image[..., :3].std() > 0.05                                   # not a blank canvas
    page = html.read_text()
    assert page.lower().startswith("<!doctype html>") and page.rstrip().endswith("</html>") and '"type":"sunburst"' in page and "reasoning" in page
    for name, figure in (("rounds", plot_round_distribution(round_distribution(coevol_rows()))),
                         ("lengths", plot_length_growth(response_lengths(coevol_rows(), tokenizer=words)))):
        figure.savefig(tmp_path / f"{name}.png")
        assert imread(tmp_path / f"{name}.png").shape[2] in (3, 4)
    with pytest.raises(ValueError, match="no verb–object pairs"):
        plot_directions(evolving_directions(["Fine."]))


def r2s_rows():
    span = lambda text, grounded: {"text": text, "grounded": grounded, "match": "exact" if grounded else None,
                                   "score": 100.0 if grounded else 10.0, "passage": text if grounded else None}
    turn = lambda kind, user, spans: {"type": kind, "user": user, "search": [], "find": spans, "assistant": "a"}
    document = ("Tea came from China. Monks carried tea seeds to Japan. Tea houses spread in cities. "
                "Merchants shipped tea across oceans.")
    replies = [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "It came from China."},
               {"role": "user", "content": "q2"}, {"role": "assistant", "content": "Merchants shipped it across oceans."}]
    return datasets.Dataset.from_list([
        {"text": document, "r2s_error": None, "r2s_messages": replies,
         "r2s_cod": [turn("Question-Answer", "Explain the history of tea.", [span("x", True)]),
                     turn("Opinion-Rebuttal", "Describe the process.", [span("y", False)])]},
        {"text": "doc", "r2s_error": "turn 1: the questioner's reply held no 'User:' line", "r2s_messages": None,
         "r2s_cod": None}])


def test_report_writes_every_table_and_figure_it_links(tmp_path):
    written = report(coevol_rows(), tmp_path / "coevol", tokenizer=words)
    assert written.methods == ["coevol"]
    names = {path.name for path in written.files}
    assert {"coevol_rounds.csv", "coevol_rounds.png", "coevol_lengths.csv", "coevol_lengths.png",
            "coevol_directions.csv", "coevol_directions.png", "coevol_directions.html", "summary.md"} <= names
    assert all(path.exists() for path in written.files)
    summary = (tmp_path / "coevol" / "summary.md").read_text()
    assert summary == written.markdown and "1 of 4 rows failed" in summary and "1 × LLM call failed" in summary
    assert "6 suggestion lines" in summary and "4 distinct verbs, 4 distinct verb–object pairs" in summary  # accepted edits only (Figure 3)
    assert "![coevol_rounds](coevol_rounds.png)" in summary
    assert written.tables["coevol_lengths"].loc["all", "ratio"] == pytest.approx(14 / 9)

    r2s = report(r2s_rows(), tmp_path / "r2s")
    assert r2s.methods == ["r2s"]
    assert "1 of 2 Find spans (50.0%) were found in the document." in r2s.markdown
    # sentences 1 and 4 of 4 have half their content words in the replies
    assert "cover 50.0% of the document's sentences on average (over 1 dialogue;" in r2s.markdown
    assert r2s.tables["r2s_dialogue_types"]["turns"].tolist() == [1, 1]
    # by turn: turn 1 was Question-Answer with its span found, turn 2 Opinion-Rebuttal with its span not
    assert r2s.tables["r2s_grounding_by_turn"].to_dict("records") == [
        {"turn": 1, "spans": 1, "found": 1, "share": 1.0}, {"turn": 2, "spans": 1, "found": 0, "share": 0.0}]
    from hf_synth.analysis.r2s import types_by_turn

    assert types_by_turn(r2s_rows()).to_dict("records") == [
        {"turn": 1, "Opinion-Rebuttal": 0.0, "Question-Answer": 1.0}, {"turn": 2, "Opinion-Rebuttal": 1.0, "Question-Answer": 0.0}]
    assert {"r2s_types_by_turn.png", "r2s_grounding_by_turn.png"} <= {p.name for p in r2s.files}
    assert "![r2s_types_by_turn](r2s_types_by_turn.png)" in r2s.markdown
    assert ("explain", "history") in {tuple(p) for p in r2s.tables["r2s_directions"][["verb", "object"]].values}
    messages = lambda *questions: [m for q in questions for m in ({"role": "user", "content": q},
                                                                 {"role": "assistant", "content": "ok"})]
    review = datasets.Dataset.from_list([
        {"review_messages": messages("Write a poem.", "Explain the meter.", "Give an example."), "review_error": None,
         "review_trace": [{"direction": "depth", "next_instruction": "Explain the meter."},
                          {"direction": "breadth", "next_instruction": "Give an example."},
                          {"direction": None, "next_instruction": None}]}])
    grown = report(review, tmp_path / "review", failures=False)
    assert grown.tables["review_turns"].values.tolist() == [[3, 1]] and "failed" not in grown.markdown
    assert grown.tables["review_chairman"].values.tolist() == [["depth", 1], ["breadth", 1]]
    assert grown.tables["review_diversity_by_round"]["new_pairs"].tolist() == [1, 1, 1]
    assert "2 questions; 2 have a root verb" in grown.markdown and (tmp_path / "review" / "review_by_round.png").exists()
    with pytest.raises(InputError, match="report found no output of a hf_synth method"):
        report(datasets.Dataset.from_dict({"text": ["x"]}), tmp_path / "none")


def test_analyze_command(tmp_path):
    coevol_rows().save_to_disk(str(tmp_path / "run"))
    result = hf_synth_cli("analyze", str(tmp_path / "run"), "--output", str(tmp_path / "report"))
    assert result.returncode == 0, result.stderr
    assert "coevol output, 4 rows" in result.stdout
    assert (tmp_path / "report" / "summary.md").exists() and (tmp_path / "report" / "coevol_rounds.png").exists()


def test_the_shipped_vocabulary_counts_as_llama_cpp_does_with_the_gguf():
    import json

    llama_cpp = pytest.importorskip("llama_cpp")
    from hf_synth.llm.local import embedded_model_path
    from hf_synth.tokens import token_counter

    data = Path(hf_synth.__file__).parent / "data"
    texts = [json.dumps(json.loads(line), ensure_ascii=False) for name in ("alpaca_sample.jsonl", "documents_sample.jsonl",
             "multiturn_sample.jsonl") for line in (data / name).read_text().splitlines() if line.strip()]
    texts += ["12345 apples", "  spaces  and\ttabs\n\nnew", "emoji 👋🏽 and ترجم", "你好，世界。", "don't I'll we're"]
    gguf = llama_cpp.Llama(str(embedded_model_path()), vocab_only=True, verbose=False)
    count = token_counter()
    assert [count(t) for t in texts] == [len(gguf.tokenize(t.encode(), add_bos=False, special=False)) for t in texts]


def test_loading_the_vocabulary_prints_nothing():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", "from hf_synth.tokens import token_counter; "
                             "print(token_counter()('Hello world'))"], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "2" and result.stderr == ""


def test_counting_tokens_needs_no_llama_cpp():
    import subprocess
    import sys

    code = ("import sys; sys.modules['llama_cpp'] = None  # as if hf_synth[local] were not installed\n"
            "from hf_synth.tokens import token_counter; print(token_counter()('Hello world. Hello world.'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "6", result.stderr


def test_the_evaluation_figure_shows_this_run_beside_a_reference(tmp_path):
    from hf_synth.analysis.r2s import evaluation_means, plot_evaluation

    scores = {f"eval_{m}": [4.0, 5.0] for m in ("info", "ud", "uf", "fd", "fl", "cs", "co", "ia")}
    ds = datasets.Dataset.from_dict({**scores, "eval_cr": [60.0, 80.0], "eval_avg": [4.2, 4.9], "eval_coverage": [50.0, 70.0]})
    means = evaluation_means(ds)
    figure = plot_evaluation(means, reference={"paper": {"INFO": 4.0, "UD": 4.5, "CR": 75.0}})
    scores_axes, rate_axes = figure.axes
    heights = [patch.get_height() for patch in scores_axes.patches]
    assert heights[:8] == [4.5] * 8 and heights[8:10] == [4.0, 4.5]  # this run's means, then the reference's
    assert [patch.get_height() for patch in rate_axes.patches] == [70.0, 75.0]
    figure.savefig(tmp_path / "eval.png")
    assert imread(tmp_path / "eval.png").shape[0] > 100


def test_coevol_lengths_are_counted_as_the_paper_counted_them():
    """Figure 2b: tiktoken's gpt-3.5-turbo encoding (cl100k_base), shipped by bpe-openai for offline use."""
    from hf_synth.tokens import paper_counter

    count, name = paper_counter()
    assert "cl100k_base" in name
    # tiktoken's own examples for cl100k_base
    assert count("tiktoken is great!") == 6 and count("hello world") == 2
    assert count("Hello world. Hello world.") == 6 and count("") == 0
    lengths = response_lengths(coevol_rows())
    assert lengths[lengths["round"] == 0]["tokens"].tolist()[:3] == [count("a b"), count("a b c d"), count("a b c")]
