"""The feature contract shared by every stage of the pipeline."""
