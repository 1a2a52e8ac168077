"""Evaluation: top-1/top-5 over the eval split, result files, the linear probe."""
