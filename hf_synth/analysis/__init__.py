"""Analysis of generated data: numbers and figures."""
from .by_round import difficulty_by_round, diversity_by_round, failures_by_round, plot_by_round, user_turns_by_round
from .coevol import length_growth, plot_length_growth, plot_round_distribution, response_lengths, round_distribution
from .directions import (Directions, evolving_directions, load_nlp, plot_directions, suggestion_lines, verb_object,
                         verb_object_pairs)
from .r2s import (dialogue_types, evaluation_means, grounding, grounding_by_turn, plot_evaluation,
                  plot_grounding_by_turn, plot_types_by_turn, types_by_turn)
from .report import Report, detect_methods, report

__all__ = ["difficulty_by_round", "diversity_by_round", "failures_by_round", "plot_by_round", "user_turns_by_round",
           "round_distribution", "plot_round_distribution", "response_lengths", "length_growth", "plot_length_growth",
           "Directions", "evolving_directions", "suggestion_lines", "plot_directions", "load_nlp", "verb_object",
           "verb_object_pairs", "Report", "detect_methods", "report", "dialogue_types", "grounding", "evaluation_means",
           "types_by_turn", "grounding_by_turn", "plot_types_by_turn", "plot_grounding_by_turn", "plot_evaluation"]
