"""The verb–object diversity of a set of instructions (Self-Instruct's procedure, spaCy): how many have a
root verb with a direct object, and the distinct verbs and pairs (`hf_synth.analysis.evolving_directions`)."""
import datasets
import evaluate

_FEATURES = datasets.Features({"data": datasets.Value("string")})


class VerbObjectDiversity(evaluate.Measurement):
    def _info(self):
        return evaluate.MeasurementInfo(
            description=__doc__, citation="Wang et al., 2023, Self-Instruct", features=_FEATURES,
            inputs_description="data: the instructions (or any texts). Needs hf_synth's [analysis] extra.")

    def _compute(self, data):
        from hf_synth.analysis import evolving_directions

        return evolving_directions(list(data)).summary()
