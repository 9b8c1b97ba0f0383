"""Evaluation: object-discovery metrics and the VQA linear probe."""
