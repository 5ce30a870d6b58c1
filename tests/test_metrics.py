"""Our judges and measures as `evaluate` modules: each loads offline from the installed package with
`evaluate.load` and gives the numbers the transforms give on the same rows (the fake server judges)."""
import datasets
import pytest
from fake_openai import FakeOpenAI, coevol_replies, prefer_edit, r2s_replies
from test_filters import RATED, quality_reply

from hf_synth import LLM
from hf_synth.analysis import evolving_directions
from hf_synth.metrics import MODULES, path
from hf_synth.transforms import DialogueEvalTransform, PairwiseJudgeTransform, QualityTransform

evaluate = pytest.importorskip("evaluate")

DOCUMENTS = ["Tea came from China. Monks carried tea seeds to Japan. Tea houses spread in cities.",
             "Lighthouses guide ships. Early ones burned wood. Modern ones use electric lamps."]
DIALOGUES = [[{"role": "user", "content": "Where did tea come from?"}, {"role": "assistant", "content": "Tea came from China."},
              {"role": "user", "content": "And then?"}, {"role": "assistant", "content": "Monks carried tea seeds to Japan."}],
             [{"role": "user", "content": "What do lighthouses do?"}, {"role": "assistant", "content": "They guide ships."}]]


def rows() -> datasets.Dataset:
    return datasets.Dataset.from_dict({"text": DOCUMENTS, "messages": DIALOGUES})


def mean(values):
    values = [v for v in values if v is not None]
    return sum(values) / len(values)


def test_every_module_loads_offline_from_the_package(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for name in MODULES:
        module = evaluate.load(path(name))
        assert module.description.strip()
    with pytest.raises(ValueError, match="no hf_synth metric 'bleu'"):
        path("bleu")


def test_r2s_coverage_is_the_transforms_coverage():
    with FakeOpenAI(r2s_replies()) as server:
        expected = rows().map(DialogueEvalTransform(LLM(model="m", base_url=server.url)), batched=True)["eval_coverage"]
    result = evaluate.load(path("r2s_coverage")).compute(dialogues=DIALOGUES, documents=DOCUMENTS)
    assert result == {"eval_coverage": pytest.approx(mean(expected))} and 0 < result["eval_coverage"] < 100


def test_r2s_dialogue_eval_is_the_transforms_means():
    with FakeOpenAI(r2s_replies()) as server:
        llm = LLM(model="m", base_url=server.url)
        expected = rows().map(DialogueEvalTransform(llm), batched=True)
        result = evaluate.load(path("r2s_dialogue_eval")).compute(dialogues=DIALOGUES, documents=DOCUMENTS, llm=llm)
    for name in ("eval_info", "eval_ud", "eval_uf", "eval_fd", "eval_fl", "eval_cs", "eval_co", "eval_ia", "eval_cr",
                 "eval_avg", "eval_coverage"):
        assert result[name] == pytest.approx(mean(expected[name])), name
    assert result["eval_cr"] == 60 and result["eval_info"] == 4  # the fake evaluator's scores


def test_coevol_pairwise_compares_two_response_sets_as_the_judge_does():
    instructions = ["Say hi", "Add 2 and 2", "Name a fruit"]
    a, b = ["hi", "4", "apple"], ["hi [edited]", "4", "pear [edited]"]
    with FakeOpenAI(coevol_replies(prefer_edit)) as server:
        llm = LLM(model="m", base_url=server.url)
        judged = datasets.Dataset.from_dict({"instruction": instructions, "a": a, "b": b}).map(
            PairwiseJudgeTransform(llm, a_column="a", b_column="b"), batched=True)
        result = evaluate.load(path("coevol_pairwise")).compute(predictions_a=a, predictions_b=b,
                                                               instructions=instructions, llm=llm)
    winners = judged["pairwise_winner"]
    assert result == {"pairwise_a": winners.count("a") / 3, "pairwise_b": winners.count("b") / 3,
                      "pairwise_tie": winners.count("tie") / 3, "pairwise_undecided": winners.count(None) / 3}
    assert result["pairwise_b"] == pytest.approx(2 / 3) and result["pairwise_tie"] == pytest.approx(1 / 3)


def test_quality_rating_is_the_transforms_scores():
    with FakeOpenAI(quality_reply) as server:
        llm = LLM(model="m", base_url=server.url)
        scores = datasets.Dataset.from_dict(RATED).map(QualityTransform(llm), batched=True)["quality_score"]
        result = evaluate.load(path("quality_rating")).compute(predictions=RATED["output"],
                                                              instructions=RATED["instruction"], inputs=RATED["input"],
                                                              llm=llm)
    read = [s for s in scores if s is not None]
    assert result == {"quality_score": pytest.approx(mean(scores)), "quality_unread": scores.count(None),
                      "quality_share_4_5": sum(s >= 4.5 for s in read) / len(read)}
    assert result["quality_unread"] == 1 and result["quality_share_4_5"] == 0.5  # 5, 4.5 of 5, 4.5, 3, 4


def test_verb_object_diversity_is_the_directions_summary():
    texts = ["Write a poem about cats.", "Write a story about a dragon.", "What is love?", "Describe the process."]
    result = evaluate.load(path("verb_object_diversity")).compute(data=texts)
    assert result == evolving_directions(texts).summary()
    assert result == {"texts": 4, "with_pair": 3, "distinct_verbs": 2, "distinct_pairs": 3}
