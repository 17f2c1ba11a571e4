"""Pretrained item vectors: built-in item2vec, a user-supplied TSV file, and table init.

- item2vec (Barkan & Koenigstein 2016): skip-gram with negative sampling over
  each user's chronological sequence of positive items; negatives are drawn
  with probability proportional to count**0.75; sigmoid loss. TF on CPU,
  seconds for ~100k events.
- File format (`save_pretrained` / `load_pretrained`): one item per line,
  `id<TAB>v1 v2 ... vD`; blank lines and lines starting with `#` are skipped.
- `init_matrix` aligns vectors with an embedding table's vocabulary.
"""

from __future__ import annotations

import collections
import dataclasses
import glob

import numpy as np
import tensorflow as tf

from models.common import example_codec
from models.retrieval import samplers
from schemas import features as F


@dataclasses.dataclass(frozen=True)
class Item2VecConfig:
    """Skip-gram hyperparameters.

    Attributes:
        dim: vector width.
        window: context items on each side of a target.
        negatives: sampled negatives per (target, context) pair.
        power: negatives ~ count**power.
        epochs: passes over the pairs.
        batch_size: pairs per step.
        learning_rate: Adam learning rate.
        seed: seed of the initialisation, shuffling and negative draws.
    """

    dim: int = 32
    window: int = 3
    negatives: int = 5
    power: float = 0.75
    epochs: int = 5
    batch_size: int = 4096
    learning_rate: float = 0.02
    seed: int = 0

    def __post_init__(self):
        for name in ("dim", "window", "negatives", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"item2vec.{name} must be >= 1, got {getattr(self, name)}")


def read_sequences(file_pattern: str) -> list[list[str]]:
    """Each user's positive items in time order, from raw gzipped sequence examples.

    Args:
        file_pattern: glob of BehaviorSequenceGen's train split (gzipped tf.Examples).

    Returns:
        One list of item ids per user (label == 1 events, sorted by (timestamp, item)).
    """
    files = sorted(glob.glob(file_pattern))
    if not files:
        raise FileNotFoundError(f"no files match {file_pattern}")
    events = collections.defaultdict(list)
    for record in tf.data.TFRecordDataset(files, compression_type="GZIP"):
        row = example_codec.decode(record.numpy(), F.SEQUENCE_FEATURES)
        if row.get(F.LABEL) == 1:
            events[row[F.USER_ID]].append((row[F.TIMESTAMP], row[F.ITEM_ID]))
    return [[item for _, item in sorted(evs)] for _, evs in sorted(events.items())]


def skipgram_pairs(sequences: list[np.ndarray], window: int) -> tuple[np.ndarray, np.ndarray]:
    """All (target, context) index pairs within `window` positions of each other.

    Args:
        sequences: int arrays of item indices.
        window: maximum distance.

    Returns:
        (targets int64 [P], contexts int64 [P]), both directions included.
    """
    targets, contexts = [], []
    for seq in sequences:
        for offset in range(1, window + 1):
            if len(seq) <= offset:
                break
            targets += [seq[:-offset], seq[offset:]]
            contexts += [seq[offset:], seq[:-offset]]
    if not targets:
        raise ValueError("no sequence has two items: nothing to train item2vec on")
    return np.concatenate(targets).astype(np.int64), np.concatenate(contexts).astype(np.int64)


def _epoch_fn(target_table, context_table, optimizer, neg_probs, num_negatives, seed):
    """A tf.function running one epoch of skip-gram steps over a dataset of pair batches."""
    log_probs = tf.constant(np.log(np.maximum(neg_probs, 1e-30))[np.newaxis, :], tf.float32)
    variables = [target_table, context_table]

    def step(targets, contexts, step_seed):
        size = tf.shape(targets)[0]
        draws = tf.random.stateless_categorical(
            log_probs, size * num_negatives, seed=tf.stack([seed, step_seed]), dtype=tf.int64
        )
        negatives = tf.reshape(draws, [size, num_negatives])
        with tf.GradientTape() as tape:
            t = tf.gather(target_table, targets)  # [b, d]
            pos = tf.reduce_sum(t * tf.gather(context_table, contexts), axis=1)  # [b]
            neg = tf.einsum("bd,bkd->bk", t, tf.gather(context_table, negatives))  # [b, k]
            # -log sigmoid(pos) - sum log sigmoid(-neg), in softplus form.
            loss = tf.reduce_mean(tf.nn.softplus(-pos) + tf.reduce_sum(tf.nn.softplus(neg), 1))
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
        return loss

    @tf.function
    def run_epoch(dataset, first_step):
        n = tf.constant(0, tf.int64)
        total = tf.constant(0.0)
        for targets, contexts in dataset:
            total += step(targets, contexts, first_step + n)
            n += 1
        return total / tf.cast(tf.maximum(n, 1), tf.float32), n

    return run_epoch


def train_item2vec(sequences: list[list[str]], config: Item2VecConfig | None = None) -> dict:
    """Trains skip-gram item vectors.

    Args:
        sequences: per-user item ids in time order.
        config: hyperparameters.

    Returns:
        {item_id: float32 vector [dim]} for every item in the sequences.
    """
    import tf_keras  # Keras 2 (TF_USE_LEGACY_KERAS=1)

    cfg = config or Item2VecConfig()
    counts = collections.Counter(item for seq in sequences for item in seq)
    items = sorted(counts)
    index = {item: i for i, item in enumerate(items)}
    encoded = [np.array([index[i] for i in seq], dtype=np.int64) for seq in sequences]
    targets, contexts = skipgram_pairs(encoded, cfg.window)
    rng = np.random.default_rng(cfg.seed)
    init = rng.uniform(-0.5 / cfg.dim, 0.5 / cfg.dim, (len(items), cfg.dim))
    target_table = tf.Variable(init.astype(np.float32))
    context_table = tf.Variable(np.zeros((len(items), cfg.dim), np.float32))
    neg_probs = samplers.unigram_probs([counts[i] for i in items], cfg.power)
    optimizer = tf_keras.optimizers.Adam(cfg.learning_rate)
    run_epoch = _epoch_fn(
        target_table,
        context_table,
        optimizer,
        neg_probs,
        cfg.negatives,
        tf.constant(cfg.seed, tf.int64),
    )
    steps = tf.constant(0, tf.int64)
    for _ in range(cfg.epochs):
        order = rng.permutation(len(targets))
        pairs = tf.data.Dataset.from_tensor_slices((targets[order], contexts[order]))
        _, n = run_epoch(pairs.batch(cfg.batch_size), steps)
        steps += n
    vectors = target_table.numpy()
    return {item: vectors[i] for item, i in index.items()}


def pretrain(file_pattern: str, config: Item2VecConfig | None = None) -> dict:
    """item2vec on raw train sequence examples: {item_id: vector}."""
    return train_item2vec(read_sequences(file_pattern), config)


def save_pretrained(path: str, vectors: dict) -> None:
    """Writes {id: vector} as `id<TAB>v1 v2 ...` lines."""
    with tf.io.gfile.GFile(path, "w") as f:
        for item, vec in vectors.items():
            f.write(f"{item}\t{' '.join(repr(float(v)) for v in np.ravel(vec))}\n")


def _parse_line(path: str, lineno: int, line: str) -> tuple[str, np.ndarray]:
    where = f"{path}, line {lineno}"
    item, tab, values = line.partition("\t")
    if not tab or not item.strip():
        raise ValueError(f"{where}: expected 'id<TAB>v1 v2 ...', got {line[:80]!r}")
    try:
        vec = np.array([float(v) for v in values.split()], dtype=np.float32)
    except ValueError as e:
        raise ValueError(f"{where} (id {item!r}): a value is not a number: {e}") from None
    if vec.size == 0 or not np.all(np.isfinite(vec)):
        raise ValueError(f"{where} (id {item!r}): the vector is empty or not finite")
    return item, vec


def load_pretrained(path: str, expected_dim: int | None = None) -> dict:
    """Reads a file written by `save_pretrained` (or by the user).

    Args:
        path: the file.
        expected_dim: if set, every vector must have this dimension (e.g. the
            width of the table it initialises).

    Raises:
        ValueError: naming the file and line for a malformed row, a
            non-numeric value, a duplicate id, or a dimension differing from
            expected_dim or (without it) from the first vector's.
    """
    vectors: dict[str, np.ndarray] = {}
    first = None
    with tf.io.gfile.GFile(path, "r") as f:
        for lineno, raw in enumerate(f, start=1):
            line = raw.rstrip("\r\n")
            if not line.strip() or line.startswith("#"):
                continue
            item, vec = _parse_line(path, lineno, line)
            if expected_dim is not None and vec.size != expected_dim:
                raise ValueError(
                    f"{path}, line {lineno} (id {item!r}): dimension {vec.size}, "
                    f"expected {expected_dim}"
                )
            if first is None:
                first = (lineno, vec.size)
            elif vec.size != first[1]:
                raise ValueError(
                    f"{path}, line {lineno} (id {item!r}): dimension {vec.size}, expected "
                    f"{first[1]} (the dimension of line {first[0]})"
                )
            if item in vectors:
                raise ValueError(f"{path}, line {lineno}: duplicate id {item!r}")
            vectors[item] = vec
    if not vectors:
        raise ValueError(f"{path}: no vectors found")
    return vectors


def init_matrix(
    vectors: dict, vocabulary, dim: int, seed: int = 0, *, num_rows: int | None = None
) -> tuple[np.ndarray, int]:
    """An embedding-table initialiser aligned with a vocabulary.

    Args:
        vectors: {id: vector [dim]}.
        vocabulary: ids of rows 0..len-1 (str or bytes, e.g. a tf.Transform vocabulary).
        dim: table width; every vector must have it.
        seed: seed of the random rows.
        num_rows: table rows (>= len(vocabulary)); the extra rows (OOV buckets)
            are random. Defaults to len(vocabulary).

    Returns:
        (matrix float32 [num_rows, dim], number of vocabulary ids found in vectors).
        Rows of unknown ids are uniform in [-0.05, 0.05] (Keras' default).
    """
    num_rows = len(vocabulary) if num_rows is None else num_rows
    if num_rows < len(vocabulary):
        raise ValueError(f"num_rows ({num_rows}) < vocabulary size ({len(vocabulary)})")
    matrix = np.random.default_rng(seed).uniform(-0.05, 0.05, (num_rows, dim)).astype(np.float32)
    covered = 0
    for row, item in enumerate(vocabulary):
        key = item.decode() if isinstance(item, bytes) else item
        vec = vectors.get(key)
        if vec is None:
            continue
        if np.size(vec) != dim:
            raise ValueError(
                f"pretrained vector of {key!r} has dimension {np.size(vec)}, not {dim}"
            )
        matrix[row] = vec
        covered += 1
    return matrix, covered
