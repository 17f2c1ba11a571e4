"""Blessing artifacts written as TFX's Evaluator writes them (Pusher and Resolver read them).

Shared by the custom components that bless (RetrievalEvaluator, ScannIndexBuilder); not
a component itself.
"""

from __future__ import annotations

import os

from tfx.components.evaluator import constants
from tfx.dsl.io import fileio


def write_blessing(blessing, blessed: bool, model, baseline) -> None:
    """Marks the ModelBlessing artifact as TFX's Evaluator does (so Pusher and Resolver work)."""
    name = constants.BLESSED_FILE_NAME if blessed else constants.NOT_BLESSED_FILE_NAME
    with fileio.open(os.path.join(blessing.uri, name), "w") as f:
        f.write("")
    blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_BLESSED_KEY, int(blessed))
    blessing.set_string_custom_property(
        constants.ARTIFACT_PROPERTY_CURRENT_MODEL_URI_KEY, model.uri
    )
    blessing.set_int_custom_property(constants.ARTIFACT_PROPERTY_CURRENT_MODEL_ID_KEY, model.id)
    if baseline is not None:
        blessing.set_string_custom_property(
            constants.ARTIFACT_PROPERTY_BASELINE_MODEL_URI_KEY, baseline.uri
        )
        blessing.set_int_custom_property(
            constants.ARTIFACT_PROPERTY_BASELINE_MODEL_ID_KEY, baseline.id
        )
