"""Flat and nested overrides of a RetrievalConfig, and the former flat JSON form.

Before the groups, RetrievalConfig was flat (`{"epochs": 3, "loss": "listwise",
"num_sampled": 512, ...}`); custom_configs, bench commands and tuner
hyperparameters spell those names. `FLAT` maps each one to its group and field;
the loss fields map to their loss class (`LOSS_FLAT`). A flat loss field of
another loss than the config's fails, naming it, unless it holds that class's
default (a former JSON carries every loss's fields).

Nested values merge: `{"tower": {"history": {"kind": "mean"}}}` changes only the
history's kind. `{"loss": "sampled_softmax"}` (flat) or `{"loss": {"type":
"sampled_softmax", ...}}` (nested) switch the loss class: a new class starts from
its defaults, the same class keeps its values. Flat keys apply after nested ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from models.retrieval.config import losses as L
from models.retrieval.config.groups import PREFIX

GROUPS = ("tower", "training", "negatives", "positives", "embeddings", "updates")
LOSS, LOSS_TYPE = "loss", "type"  # the loss group, and its JSON tag
_RENAMED = {
    "tower_depth": ("tower", "depth"),
    "tower_width": ("tower", "width"),
    "negative_distribution": ("negatives", "distribution"),
    "negative_ratio": ("negatives", "ratio"),
    "item_embedding": ("embeddings", "item"),
    "user_embedding": ("embeddings", "user"),
}
_KEPT = {
    "tower": (
        *("embedding_dim", "feature_dim", "output_dim", "temperature", "history"),
        "popularity_prior",
    ),
    "training": (
        *("learning_rate", "optimizer", "batch_size", "epochs"),
        *("steps_per_epoch", "eval_steps", "seed", "strategy", "max_example_passes"),
        "ema_momentum",
    ),
    "negatives": ("log_q", "remove_accidental_hits", "unigram_power"),
    "positives": ("downsample_threshold", "cold_min_count", "cold_boost", "non_positive_weight"),
    "embeddings": (
        *("pretrained", "pretrained_users", "pretrained_mode", "pretrained_dim"),
        *("freeze_steps", "item2vec_window", "item2vec_epochs"),
    ),
    "updates": ("mode", "mined_negatives_path", "mined_ratio", "max_mined_per_user"),
}
FLAT: dict[str, tuple[str, str]] = {
    **{name: (group, name) for group, names in _KEPT.items() for name in names},
    **_RENAMED,
}
LOSS_FLAT: dict[str, tuple[type[L.Loss], str]] = {
    "num_mixed_negatives": (L.Listwise, "num_mixed_negatives"),
    "num_hard_negatives": (L.Listwise, "num_hard_negatives"),
    "pointwise_scale": (L.Pointwise, "scale"),
    "triplet_margin": (L.TripletHinge, "margin"),
    "triplet_scale": (L.TripletLogistic, "scale"),
    "num_sampled": (L.SampledSoftmax, "num_sampled"),
    "softmax_sampler": (L.SampledSoftmax, "sampler"),
    "adaptive_top_m": (L.SampledSoftmax, "adaptive_top_m"),
    "adaptive_temperature": (L.SampledSoftmax, "adaptive_temperature"),
    "adaptive_sampling": (L.SampledSoftmax, "adaptive_sampling"),
}


def apply(config, values: Mapping[str, Any]):
    """`config` with flat and/or nested `values` applied (module docstring).

    Raises:
        ValueError: an unknown key, a loss field of another loss, or a value a group
            refuses; the message names the field.
    """
    unknown = sorted(set(values) - set(GROUPS) - set(FLAT) - set(LOSS_FLAT) - {LOSS})
    if unknown:
        raise ValueError(f"{PREFIX}: unknown field(s) {unknown}")
    changes: dict[str, Any] = {}
    for group in GROUPS:
        if group in values:
            changes[group] = _group_value(values[group], type(getattr(config, group)), group)
    for name, value in values.items():
        if name in FLAT:
            group, field = FLAT[name]
            changes.setdefault(group, {})[field] = value
    groups = {
        group: value if not isinstance(value, dict) else merge(getattr(config, group), value)
        for group, value in changes.items()
    }
    loss = _loss(config.loss, values.get(LOSS), {k: v for k, v in values.items() if k in LOSS_FLAT})
    return dataclasses.replace(config, **groups, loss=loss)


def merge(obj, fields: Mapping[str, Any]):
    """The dataclass `obj` with `fields` replaced; dict values merge into nested dataclasses."""
    path = getattr(obj, "PATH", None) or f"{PREFIX}.{type(obj).__name__}"
    unknown = sorted(set(fields) - {f.name for f in dataclasses.fields(obj)})
    if unknown:
        raise ValueError(f"{path}: unknown field(s) {unknown}")
    changes = {}
    for name, value in fields.items():
        current = getattr(obj, name)
        if dataclasses.is_dataclass(current) and isinstance(value, Mapping):
            value = _merge_leaf(current, value, f"{path}.{name}")
        changes[name] = value
    return dataclasses.replace(obj, **changes)


def _merge_leaf(spec, fields: Mapping[str, Any], path: str):
    """A spec (EmbeddingSpec, HistoryEncoderSpec) merged with JSON fields, errors named."""
    known = {f.name for f in dataclasses.fields(spec)}
    if set(fields) - known:
        raise ValueError(f"{path} has unknown keys {sorted(set(fields) - known)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    try:
        return dataclasses.replace(spec, **values)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None


def _group_value(value, cls, group: str):
    if isinstance(value, cls):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(f"{PREFIX}.{group} must be a {cls.__name__} or a dict, got {value!r}")
    return dict(value)


def _loss(current: L.Loss, value, flat: Mapping[str, Any]) -> L.Loss:
    """The loss after a `loss` value (name, dict, Loss or None) and flat loss fields."""
    if isinstance(value, L.Loss):
        current, value = value, None
    fields = dict(value) if isinstance(value, Mapping) else {}
    name = value if isinstance(value, str) else fields.pop(LOSS_TYPE, current.NAME)
    if value is not None and not isinstance(value, str | Mapping):
        raise ValueError(f"{L.Loss.PATH} must be a name, a dict or a Loss, got {value!r}")
    if name not in L.LOSS_TYPES:
        raise ValueError(f"{L.Loss.PATH} must be one of {L.LOSSES}, got {name!r}")
    cls = L.LOSS_TYPES[name]
    for key, given in flat.items():
        owner, field = LOSS_FLAT[key]
        if owner is cls:
            fields[field] = given
        elif given != getattr(owner(), field):
            raise ValueError(
                f"{PREFIX}.{key} belongs to loss {owner.NAME!r}; this config's loss is {name!r}"
            )
    return merge(current if type(current) is cls else cls(), fields)


def loss_dict(loss: L.Loss) -> dict[str, Any]:
    """The JSON form of a loss: {"type": NAME, **fields}."""
    return {LOSS_TYPE: loss.NAME, **dataclasses.asdict(loss)}


def flat_value(config, name: str):
    """The value of a former flat field name (FLAT, LOSS_FLAT or "loss") in `config`.

    A loss field of another loss than the config's gives that loss class's default.
    """
    if name == LOSS:
        return config.loss.NAME
    if name in LOSS_FLAT:
        owner, field = LOSS_FLAT[name]
        return getattr(config.loss if isinstance(config.loss, owner) else owner(), field)
    if name not in FLAT:
        raise ValueError(f"{PREFIX}: unknown field {name!r}")
    group, field = FLAT[name]
    return getattr(getattr(config, group), field)
