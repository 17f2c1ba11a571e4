"""Carrying id tables over to a new vocabulary (the warm starts of both models).

Transform's vocabularies are sorted by frequency, so a new span moves ids: row j of a
table means another item than it did in the base model. Each kind of id table
(models/common/embeddings.py) follows its ids its own way:

- FullEmbedding: row by row through the two vocabularies (`remap_rows`); OOV rows by
  position; new ids keep their fresh initialisation.
- MixedDimEmbedding: every id's row follows it. An id that stays in its popularity block
  gets its old row; one that moved to another block gets, in its new block, the row whose
  projection is closest (least squares) to its old vector: exact when the new block is
  full width. The projections are copied.
- QREmbedding: a row is shared by many ids (row id // m of one table, id % m of the
  other), so rows cannot follow ids. The tables are copied when every id of both
  vocabularies kept its row (the vocabulary only grew or shrank at its end) and m is
  unchanged; otherwise the table is refused (`TableRefusedError`, naming it).

A table whose variables are missing from the base model or changed width (the config
changed) is skipped: it keeps its fresh initialisation. Never is an id table copied
by shape alone: that is what misaligned the rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from models.common.embeddings import FullEmbedding, MixedDimEmbedding, QREmbedding


class TableRefusedError(ValueError):
    """An id table whose rows cannot follow a vocabulary change (the message names it)."""


def read_vocab_file(path: str) -> list[bytes] | None:
    """The tokens of a Transform vocabulary file (one per line), or None when it is absent."""
    import tensorflow as tf

    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path, "rb") as f:
        return [line.rstrip(b"\n") for line in f]


def as_bytes(tokens) -> list[bytes]:
    """Vocabulary tokens as bytes (TFTransformOutput gives bytes or str)."""
    return [t if isinstance(t, bytes) else str(t).encode() for t in tokens]


def row_map(old_vocab: Sequence, new_vocab: Sequence, old_rows: int, new_rows: int, num_oov: int):
    """[new_rows] int64: the old row of each new row, -1 where the id is new.

    Vocabulary rows map through their token; the trailing `num_oov` OOV rows by position.
    """
    index = {token: row for row, token in enumerate(old_vocab)}
    out = np.full(new_rows, -1, np.int64)
    for row, token in enumerate(new_vocab[:new_rows]):
        old = index.get(token, -1)
        if 0 <= old < old_rows:
            out[row] = old
    for k in range(1, num_oov + 1):
        if old_rows - k >= len(old_vocab) and new_rows - k >= len(new_vocab):
            out[new_rows - k] = old_rows - k
    return out


def remap_rows(old: np.ndarray, old_vocab, new: np.ndarray, new_vocab, num_oov: int) -> int:
    """Copies rows of `old` [V0, D] into `new` [V1, D] in place, by id; returns rows copied.

    Vocabulary rows map through their token; the trailing `num_oov` OOV rows map by
    position. New tokens keep their fresh initialisation.
    """
    rows = row_map(old_vocab, new_vocab, len(old), len(new), num_oov)
    keep = rows >= 0
    new[keep] = old[rows[keep]]
    return int(keep.sum())


def _full(layer, old, key, old_vocab, new_vocab, num_oov) -> dict:
    var = layer.table.embeddings
    value = old.get(key(var.name))
    if value is None or value.shape[1:] != tuple(var.shape[1:]):
        return {"skipped": [key(var.name)]}
    matrix = var.numpy()
    rows = remap_rows(value, old_vocab, matrix, new_vocab, num_oov)
    var.assign(matrix)
    return {"remapped": {key(var.name): rows}}


def _mixed(layer, old, key, old_vocab, new_vocab, num_oov) -> dict:
    tables = [t.embeddings for t in layer.tables]
    kernels = [p.kernel if p is not None else None for p in layer.projections]
    names = [key(v.name) for v in tables] + [key(k.name) for k in kernels if k is not None]
    olds = [old.get(key(v.name)) for v in tables]
    projs = [old.get(key(k.name)) if k is not None else None for k in kernels]
    fits = all(
        o is not None and o.shape[1:] == tuple(v.shape[1:])
        for o, v in zip(olds, tables, strict=True)
    )
    fits = fits and all(
        (k is None) == (p is None) and (k is None or p.shape == tuple(k.shape))
        for k, p in zip(kernels, projs, strict=True)
    )
    if not fits:
        return {"skipped": names}
    for kernel, value in zip(kernels, projs, strict=True):
        if kernel is not None:
            kernel.assign(value)
    old_ends = np.cumsum([len(o) for o in olds])
    old_starts = old_ends - [len(o) for o in olds]
    rows = row_map(old_vocab, new_vocab, int(old_ends[-1]), layer.num_ids, num_oov)
    new_ids = np.nonzero(rows >= 0)[0]
    old_ids = rows[new_ids]
    old_block = np.searchsorted(old_ends, old_ids, side="right")
    new_block = np.searchsorted(np.asarray(layer.ends), new_ids, side="right")
    mats, fitted = [v.numpy() for v in tables], 0
    for b, matrix in enumerate(mats):
        for a, source in enumerate(olds):
            pick = (new_block == b) & (old_block == a)
            src, dst = old_ids[pick] - old_starts[a], new_ids[pick] - layer.starts[b]
            if a == b:
                matrix[dst] = source[src]
                continue
            vectors = source[src] @ projs[a] if projs[a] is not None else source[src]
            matrix[dst] = vectors @ np.linalg.pinv(projs[b]) if projs[b] is not None else vectors
            fitted += int(pick.sum()) if projs[b] is not None else 0
    for var, matrix in zip(tables, mats, strict=True):
        var.assign(matrix)
    result = {
        "remapped": {key(v.name): int((new_block == b).sum()) for b, v in enumerate(tables)},
        "loaded": [key(k.name) for k in kernels if k is not None],
    }
    if fitted:
        result["fitted"] = {layer.name: fitted}
    return result


def _qr(layer, old, key, old_vocab, new_vocab, num_oov) -> dict:
    del num_oov  # OOV ids sit after the vocabulary: they keep their rows when its size does
    quotient, remainder = layer.quotient.embeddings, layer.remainder.embeddings
    names = [key(quotient.name), key(remainder.name)]
    q, r = old.get(names[0]), old.get(names[1])
    if q is None or r is None or q.shape[1:] != tuple(quotient.shape[1:]):
        return {"skipped": names}
    common = min(len(old_vocab), len(new_vocab))
    changed = [j for j in range(common) if old_vocab[j] != new_vocab[j]]
    if changed or len(r) != layer.buckets:
        j = changed[0] if changed else None
        example = f", e.g. id {j}: {old_vocab[j]!r} -> {new_vocab[j]!r}" if changed else ""
        raise TableRefusedError(
            f"id table {layer.name!r} is a quotient-remainder embedding (ids share its rows: "
            f"id // m and id % m) and the vocabulary changed: {len(changed)} of the {common} "
            f"ids now name another item{example}; m {len(r)} -> {layer.buckets}. Its rows "
            "cannot follow the ids: train it from scratch, or use a full or mixed table"
        )
    q_new = quotient.numpy()
    n = min(len(q), len(q_new))
    q_new[:n] = q[:n]
    quotient.assign(q_new)
    remainder.assign(r)
    return {"loaded": names}


_KINDS = ((FullEmbedding, _full), (MixedDimEmbedding, _mixed), (QREmbedding, _qr))


def carry_table(
    layer,
    old: Mapping[str, np.ndarray],
    key: Callable[[str], str],
    vocabs: tuple,
    num_oov: int,
    report: dict,
    strict: bool = False,
) -> set[str]:
    """Carries one id table of the base model into `layer` (any kind), by id.

    Args:
        layer: the new model's FullEmbedding, MixedDimEmbedding or QREmbedding.
        old: the base model's variable values by key.
        key: variable name -> key in `old`.
        vocabs: (the base model's vocabulary or None if unknown, this run's vocabulary).
        num_oov: OOV rows after the vocabulary.
        report: the warm start's report; "remapped", "loaded", "skipped", "fitted" and
            "refused" ({table: why}) are updated.
        strict: raise TableRefusedError instead of recording the refusal (incremental updates,
            which train nothing but the id tables, must not start from fresh ones).

    Returns:
        The keys of the layer's variables: the caller must not copy them by shape.
    """
    handled = {key(w.name) for w in layer.weights}
    old_vocab, new_vocab = vocabs
    try:
        if old_vocab is None:
            raise TableRefusedError(
                f"id table {layer.name!r}: the base model has no vocabulary for it, so its "
                "rows cannot be matched to ids"
            )
        convert = next((fn for kind, fn in _KINDS if isinstance(layer, kind)), None)
        if convert is None:
            raise TypeError(f"id table {layer.name!r}: unknown kind {type(layer).__name__}")
        result = convert(layer, old, key, list(old_vocab), list(new_vocab), num_oov)
    except TableRefusedError as e:
        if strict:
            raise
        report.setdefault("refused", {})[layer.name] = str(e)
        return handled
    for field, value in result.items():
        target = report.setdefault(field, [] if isinstance(value, list) else {})
        target.extend(value) if isinstance(value, list) else target.update(value)
    return handled
