"""RecommenderAssembler: the combined retrieval + ranking SavedModel and its canary."""
