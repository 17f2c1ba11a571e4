"""Custom TFX components of the recommender pipeline."""
