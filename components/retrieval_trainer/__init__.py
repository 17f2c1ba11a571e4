"""RetrievalTrainer: TFX's Trainer with an optional `hard_negatives` input for the two-tower."""
