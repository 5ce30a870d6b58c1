"""The deterministic coverage of R2S dialogues: the percent of each document's sentences of which at least
half the content units appear in the replies (`hf_synth.methods.dialogue_eval.dialogue_coverage`); no LLM."""
import evaluate

from hf_synth.metrics import DIALOGUES, mean


class R2SCoverage(evaluate.Measurement):
    def _info(self):
        return evaluate.MeasurementInfo(
            description=__doc__, citation="", features=DIALOGUES,
            inputs_description="dialogues: OpenAI-style messages per dialogue; documents: the document each is "
                               "about. Returns eval_coverage, the mean over the dialogues.")

    def _compute(self, dialogues, documents):
        from hf_synth.methods.dialogue_eval import dialogue_coverage

        return {"eval_coverage": mean(dialogue_coverage(doc, messages) for doc, messages in zip(documents, dialogues))}
