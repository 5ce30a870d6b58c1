"""Methods: pure protocols (generators of chat requests) and their prompt templates."""
