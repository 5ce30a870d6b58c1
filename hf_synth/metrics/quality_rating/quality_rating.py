"""The AlpaGasus-style quality rating, 0 to 5, of (instruction, response) pairs by an LLM judge
(`hf_synth.transforms.QualityTransform`): the mean score, the share rated 4.5 or more (AlpaGasus's
threshold), and how many replies held no score."""
import datasets
import evaluate

from hf_synth.metrics import mean

_FEATURES = datasets.Features({"predictions": datasets.Value("string"), "instructions": datasets.Value("string")})


class QualityRating(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__, citation="Chen et al., 2024, AlpaGasus", features=_FEATURES,
            inputs_description="predictions: responses; instructions; inputs (optional); llm: the hf_synth LLM "
                               "that rates.")

    def _compute(self, predictions, instructions, inputs=None, llm=None):
        from hf_synth.transforms import QualityTransform

        rows = datasets.Dataset.from_dict({"instruction": instructions, "input": inputs or [""] * len(instructions),
                                           "output": predictions})
        scores = rows.map(QualityTransform(llm), batched=True)["quality_score"]
        read = [s for s in scores if s is not None]
        return {"quality_score": mean(scores), "quality_share_4_5": (sum(s >= 4.5 for s in read) / len(read)) if read
                else None, "quality_unread": len(scores) - len(read)}
