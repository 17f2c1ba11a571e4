"""Data sources that produce the raw tables of the data contract."""
