"""BehaviorSequenceGen: per-event behaviour histories, labels, negatives, split."""
