"""Pieces both models share: id embeddings, the input pipeline, vocabulary sizes."""
