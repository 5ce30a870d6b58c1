"""R2S's nine dialogue metrics (Section 3.2) by an LLM judge, with Avg. and the deterministic coverage:
`hf_synth.transforms.DialogueEvalTransform` over the given dialogues, averaged."""
import datasets
import evaluate

from hf_synth.metrics import DIALOGUES, mean


class R2SDialogueEval(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__, citation="Hou et al., 2024, arXiv:2407.03040", features=DIALOGUES,
            inputs_description="dialogues: OpenAI-style messages per dialogue; documents: the document each is "
                               "about; llm: the hf_synth LLM that judges. Returns the mean of each eval_* column.")

    def _compute(self, dialogues, documents, llm=None):
        from hf_synth.transforms import DialogueEvalTransform

        rows = datasets.Dataset.from_dict({"text": documents, "messages": dialogues})
        scored = rows.map(DialogueEvalTransform(llm), batched=True)
        names = [c for c in scored.column_names if c.startswith("eval_") and c not in
                 ("eval_error", "eval_usage", "eval_turns", "eval_judgment")]
        return {name: mean(scored[name]) for name in names}

