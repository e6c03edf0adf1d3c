"""Putting personas to models and to the non-LLM predictors, and runs on disk; open-ended answers and their judge."""
