"""Analysis of generated data: numbers and figures."""
from .by_round import difficulty_by_round, diversity_by_round, plot_by_round, user_turns_by_round
from .directions import load_nlp, verb_object, verb_object_pairs

__all__ = ["difficulty_by_round", "diversity_by_round", "plot_by_round", "user_turns_by_round",
           "load_nlp", "verb_object", "verb_object_pairs"]
