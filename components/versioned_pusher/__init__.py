"""VersionedPusher: pushes the combined model when every gate blessed it."""
