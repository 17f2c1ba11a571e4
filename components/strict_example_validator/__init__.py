"""StrictExampleValidator: TFX's ExampleValidator that stops the pipeline on anomalies."""
