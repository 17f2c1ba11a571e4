"""HardNegativeMiner: two-tower hard negatives from the last blessed retriever and ranker."""
