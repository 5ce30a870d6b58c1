"""`Dataset.map` adapters: picklable callables that run a method over the rows of a batch."""
from .base import MapTransform
from .coevol import CoEvolTransform
from .judges import DifficultyTransform, PairwiseJudgeTransform, QualityTransform
from .r2s import DialogueEvalTransform, R2STransform
from .review_instruct import ReviewInstructTransform

__all__ = ["MapTransform", "CoEvolTransform", "ReviewInstructTransform", "R2STransform", "DialogueEvalTransform",
           "DifficultyTransform", "QualityTransform", "PairwiseJudgeTransform"]
