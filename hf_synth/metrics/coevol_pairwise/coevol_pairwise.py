"""CoEvol's position-swapped pairwise judge (Eq. 4, Table 9) as a comparison of two response sets: the
share of instructions where set b wins, where set a wins, ties, and judgments that could not be read
(`hf_synth.transforms.PairwiseJudgeTransform`)."""
import datasets
import evaluate

from hf_synth.metrics import shares

_FEATURES = datasets.Features({"predictions_a": datasets.Value("string"), "predictions_b": datasets.Value("string"),
                               "instructions": datasets.Value("string")})


class CoEvolPairwise(evaluate.Comparison):
    def _info(self):
        return evaluate.ComparisonInfo(
            description=__doc__, citation="Li et al., 2024, CoEvol (Eq. 4)", features=_FEATURES,
            inputs_description="predictions_a, predictions_b: two responses per instruction; instructions; "
                               "inputs (optional); llm: the hf_synth LLM that judges.")

    def _compute(self, predictions_a, predictions_b, instructions, inputs=None, llm=None):
        from hf_synth.transforms import PairwiseJudgeTransform

        rows = datasets.Dataset.from_dict({"instruction": instructions, "input": inputs or [""] * len(instructions),
                                           "a": predictions_a, "b": predictions_b})
        judged = rows.map(PairwiseJudgeTransform(llm, a_column="a", b_column="b"), batched=True)
        found = shares(judged["pairwise_winner"], ("a", "b", "tie", None))
        return {"pairwise_a": found["a"], "pairwise_b": found["b"], "pairwise_tie": found["tie"],
                "pairwise_undecided": found[None]}
