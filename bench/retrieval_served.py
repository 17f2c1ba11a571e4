"""B1 rows `served` and `served_scann`: the combined SavedModel, two-tower top-100 -> DIN rerank.

Per split, a DIN ranker is trained with `models.ranking.trainer.run_fn` (RankingConfig
defaults) on the same transformed training files as the two-tower; the two-tower's
candidate embeddings of the catalog become an index (`choose_params`, `build_index`);
`models.serving.export.export_variant` writes the combined model (k = n = 100). Each
model's `serving_default` is queried in batches with the split's raw query features; its
`item_ids` [B, 100] are the 100 retrieved items reordered by the ranker, with the
request's history removed. B1's exclusion set (every item the user interacted with before
the target) is larger than the request's history, so excluded items (never the target)
are dropped from the returned list too, as the other rows exclude them before ranking.
"""

from __future__ import annotations

import os
import time

import numpy as np

from bench import retrieval_data as D
from bench import retrieval_systems as S
from schemas import features as F
from schemas import serving as C

BATCH = 128


class ServedModels:
    """Trains (once per split) the DIN ranker and exports the combined variants.

    Args:
        transform_graph: Transform's graph dir.
        root: the pipeline root (for the catalog and the transformed eval examples).
        work_dir: where the ranker and the exports go; the two-tower of split `s` must be
            at `<work_dir>/two_tower-<s>/model/Format-Serving` (`retrieval_systems.two_tower`).
    """

    def __init__(
        self,
        transform_graph: str,
        root: str,
        work_dir: str,
        seed: int = 0,
        ranking=None,
        sequences=None,
        log_q_weight: float | None = None,
    ):
        self.graph, self.root, self.work_dir = transform_graph, root, work_dir
        self.seed = seed
        self.ranking = dict(ranking or {})  # RankingConfig overrides (default: none)
        self.ranker: dict[str, tuple[str, dict]] = {}
        self.correction = correction(sequences, log_q_weight)

    def retrieval_dir(self, split: S.Split) -> str:
        path = S.two_tower_dir(self.work_dir, split.name)
        if not os.path.exists(os.path.join(path, "saved_model.pb")):
            raise FileNotFoundError(f"no two-tower SavedModel at {path}: run two_tower first")
        return path

    def ranking_dir(self, split: S.Split) -> tuple[str, dict]:
        """Trains DIN with run_fn on the split's ranker files (once); (its dir, summary)."""
        if split.name in self.ranker:
            return self.ranker[split.name]
        import json

        import tensorflow as tf
        from tfx.components.trainer.fn_args_utils import FnArgs

        from models.ranking import trainer
        from models.ranking.config import CUSTOM_CONFIG_KEY

        root = os.path.join(self.work_dir, f"din-{split.name}")
        tf.io.gfile.rmtree(root) if tf.io.gfile.exists(root) else None
        if not (split.ranker_train_files and split.ranker_eval_files):
            raise ValueError(f"{split.name} split: no ranker training or eval files")
        args = FnArgs(
            train_files=[split.ranker_train_files],
            eval_files=[split.ranker_eval_files],
            transform_output=self.graph,
            serving_model_dir=os.path.join(root, "model", "Format-Serving"),
            model_run_dir=os.path.join(root, "model_run"),
            base_model=None,
            custom_config={CUSTOM_CONFIG_KEY: self.ranking_config().to_dict()},
        )
        print(
            f"    training the DIN ranker ({split.name} split, RankingConfig defaults"
            f"{' + ' + json.dumps(self.ranking) if self.ranking else ''}, seed {self.seed})",
            flush=True,
        )
        start = time.perf_counter()
        trainer.run_fn(args)
        with open(os.path.join(args.model_run_dir, trainer.SUMMARY_FILE)) as f:
            summary = json.load(f)
        info = {"din_trainer_wall_s": time.perf_counter() - start, "din_eval": summary["eval"]}
        info["din_seed"] = self.seed
        self.ranker[split.name] = (args.serving_model_dir, info)
        return self.ranker[split.name]

    def ranking_config(self):
        """RankingConfig defaults with this run's seed and overrides (a bad field names itself)."""
        from models.ranking.config import RankingConfig

        return RankingConfig.from_dict(
            {**RankingConfig(seed=self.seed).to_dict(), **self.ranking, "seed": self.seed}
        )

    def export(self, split: S.Split, variant: str) -> tuple[str, dict]:
        """Builds the index and writes the combined model of `variant`; (its dir, extras)."""
        import tensorflow as tf

        from components.recommender_assembler.executor import read_catalog
        from models.common import examples as X
        from models.search import index as index_lib
        from models.search.params import IndexConfig, choose_params
        from models.serving.export import export_variant

        retrieval_dir = self.retrieval_dir(split)
        ranking_dir, info = self.ranking_dir(split)
        loaded = tf.saved_model.load(retrieval_dir)
        items = X.embed(loaded.signatures[C.CANDIDATE_SIGNATURE], split.data.candidates, 256)
        ids = split.data.candidates[F.ITEM_ID]
        # served_scann forces ScaNN on a small catalog (exact_below=0) so the row measures it.
        config = IndexConfig(exact_below=0) if variant == "scann" else None
        params = choose_params(len(ids), config)
        index = index_lib.build_index(ids, items, params)
        catalog = read_catalog(D.examples_artifact(D.Artifacts.locate(self.root).catalog))
        out = os.path.join(self.work_dir, f"served-{split.name}-{variant}")
        tf.io.gfile.rmtree(out) if tf.io.gfile.exists(out) else None
        export_variant(
            retrieval_dir,
            ranking_dir,
            index,
            catalog,
            out,
            variant,
            k=100,
            n=100,
            correction=self.correction,
        )
        extras = {**info, "variant": variant, "index_params": params.to_dict()}
        extras["negative_correction"] = self.correction.describe() if self.correction else None
        return out, extras | {"index_metrics": index.metrics}


def correction(sequences=None, log_q_weight: float | None = None):
    """The served score's log q(item) term as the pipeline's assembler sets it: the
    AssemblyConfig default weight (or `log_q_weight`) and the negative sampler of
    `sequences` (a SequenceConfig; None: its defaults). None when off."""
    from components.behavior_sequence_gen.sequences import SequenceConfig
    from components.recommender_assembler.config import AssemblyConfig
    from models.serving.export import negative_correction

    sequences = sequences or SequenceConfig()
    weight = AssemblyConfig().log_q_weight if log_q_weight is None else log_q_weight
    power, ratio = sequences.negative_power, sequences.negative_ratio
    return negative_correction(weight, power, ratio, "SequenceConfig")


def served(models: ServedModels, variant: str) -> S.System:
    """The B1 system of one combined-model variant ("portable" or "scann")."""

    def fn(split: S.Split) -> tuple[list[list[bytes]], dict]:
        import tensorflow as tf

        if variant == "scann":
            import scann  # noqa: F401  (registers ScaNN's ops before loading)

        export_dir, extras = models.export(split, variant)
        signature = tf.saved_model.load(export_dir).signatures[C.SERVING_DEFAULT]
        start = time.perf_counter()
        returned = query_model(signature, split.data.queries)
        query_s = time.perf_counter() - start
        kept = drop_excluded(returned, split)
        dropped = sum(len(r) for r in returned) - sum(len(r) for r in kept)
        extras |= {"query_s": query_s, "batch": BATCH}
        extras["excluded_dropped_per_query"] = dropped / max(1, len(kept))
        return kept, extras

    return S.from_item_ids(fn)


def query_model(signature, queries: dict, batch: int = BATCH) -> list[list[bytes]]:
    """Calls serving_default on query features (C.REQUEST_SPEC) in batches.

    Returns:
        per query, the returned item ids (padding removed), best first.
    """
    pad = F.PAD.encode() if isinstance(F.PAD, str) else F.PAD
    ids = call_batched(signature, queries, (C.ITEM_IDS,), batch)[C.ITEM_IDS]
    return [[i for i in row if i != pad] for row in ids]


def call_batched(signature, queries: dict, outputs, batch: int = BATCH) -> dict:
    """{output: array [Q, ...]} of serving_default called on query features in batches.

    Raises:
        ValueError: the queries lack a request input (C.REQUEST_SPEC), naming it.
    """
    missing = sorted(set(C.REQUEST_SPEC) - set(queries))
    if missing:
        raise ValueError(f"the queries lack request inputs {missing}")
    import tensorflow as tf

    size = len(queries[F.USER_ID])
    parts: dict[str, list] = {key: [] for key in outputs}
    for start in range(0, size, batch):
        inputs = {
            name: tf.constant(queries[name][start : start + batch], spec.dtype)
            for name, spec in C.REQUEST_SPEC.items()
        }
        result = signature(**inputs)
        for key in outputs:
            parts[key].append(result[key].numpy())
        print(f"      queried {min(size, start + batch):,}/{size:,}", end="\r", flush=True)
    print(flush=True)
    return {key: np.concatenate(p) for key, p in parts.items()}


def drop_excluded(returned: list[list[bytes]], split: S.Split) -> list[list[bytes]]:
    """Removes each query's B1 exclusions (catalog indices; never its target) from its list."""
    ids = np.asarray(split.item_ids, dtype=object)
    kept = []
    for q, row in enumerate(returned):
        target = split.data.targets[q]
        excluded = {ids[i].encode() for i in split.data.exclude[q] if i != target}
        kept.append([i for i in row if (i if isinstance(i, bytes) else i.encode()) not in excluded])
    return kept
