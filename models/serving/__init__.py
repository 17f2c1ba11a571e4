"""The combined retrieval + ranking SavedModel (DESIGN §5)."""
