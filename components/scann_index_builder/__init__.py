"""ScannIndexBuilder: the catalog's ScaNN index (or exact search), its recall and latency."""
