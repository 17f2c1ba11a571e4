"""The pipeline: config, create_pipeline(config), runners and the CLI."""
