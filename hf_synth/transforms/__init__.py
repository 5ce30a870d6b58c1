"""`Dataset.map` adapters: picklable callables that run a method over the rows of a batch."""
from .base import MapTransform
from .coevol import CoEvolTransform
from .difficulty import DifficultyTransform
from .review_instruct import ReviewInstructTransform

__all__ = ["MapTransform", "CoEvolTransform", "ReviewInstructTransform", "DifficultyTransform"]
