"""The ranker's Evaluator: TFX's Evaluator with a runtime AUC floor and checked baselines."""
