"""What a user takes away from a run: the model bundle, the offline report, the code."""
