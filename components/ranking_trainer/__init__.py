"""The DIN ranker's Trainer: TFX's Trainer with a checked base model."""
