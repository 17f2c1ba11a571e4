"""Models: the Transform preprocessing_fn, retrieval/, ranking/ and serving/."""
