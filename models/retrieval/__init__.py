"""Two-tower retrieval model (TFRS): towers, losses, samplers, trainer, export."""
