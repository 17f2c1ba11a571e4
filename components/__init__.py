"""Custom TFX components of the recommender pipeline.

KFP v2 names a custom artifact type by its schema title `<module>.<Class>` and, in the
container, imports the class from that path: `components.HardNegatives` and
`components.ItemIndex` must resolve here. They load lazily, so that importing a light
module of this package does not import TFX.
"""

_ARTIFACT_TYPES = {
    "HardNegatives": "components.hard_negative_miner.component",
    "ItemIndex": "components.scann_index_builder.component",
}


def __getattr__(name):
    if name in _ARTIFACT_TYPES:
        import importlib

        return getattr(importlib.import_module(_ARTIFACT_TYPES[name]), name)
    raise AttributeError(f"module 'components' has no attribute {name!r}")
