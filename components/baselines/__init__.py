"""Per-family baselines: BaselinePublisher records them, BaselineLoader hands them out."""
