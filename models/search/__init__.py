"""The search layer: top-k over the item catalog, at export and at serving time.

- `params`: IndexParams (how an index is built and searched), IndexConfig, choose_params;
- `partitions`: k-means leaves of the portable partitioned search;
- `searchers`: the `Searcher` protocol and its exact, partitioned and ScaNN searchers;
- `index`: the Index (ids, embeddings, ScaNN state, partitions), its files, and the
  searcher of each serving variant (`scann_searcher`, `portable_searcher`).

components/scann_index_builder builds and evaluates indexes with it; the combined
serving model (models/serving) searches with it.
"""
