"""Evaluation: accuracy of a model on experiences, and metrics as pure functions of results."""
