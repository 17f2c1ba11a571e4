"""HardNegativeMiner and RetrievalTrainer run by LocalDagRunner on a real run's blessed models.

One pipeline run on tiny synthetic data blesses a retriever and a ranker; a second,
small pipeline in the same MLMD resolves them with the latest-blessed Resolvers
(as the real pipeline does), mines, and trains the two-tower with the mined file.
"""

import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf
from tfx import v1 as tfx
from tfx.dsl.components.common.resolver import Resolver
from tfx.dsl.input_resolution.strategies.latest_blessed_model_strategy import (
    LatestBlessedModelStrategy,
)
from tfx.types import standard_artifacts
from tfx.types.channel import Channel

from components.hard_negative_miner import mining
from components.hard_negative_miner.component import HardNegativeMiner, HardNegatives
from components.retrieval_trainer.component import RetrievalTrainer
from models.common import example_codec
from models.ranking.export import SCORE_CANDIDATES, SCORES
from models.retrieval.config import CUSTOM_CONFIG_KEY
from models.retrieval.trainer import SUMMARY_FILE
from schemas import features as F

pytestmark = pytest.mark.e2e
CFG = mining.MiningConfig(top_n=30, top_k=5, max_per_user=10)


def _latest(root, *parts):
    return max(glob.glob(os.path.join(root, *parts, "*")), key=lambda p: int(os.path.basename(p)))


def _resolver(trainer_id, evaluator_id, resolver_id):
    return Resolver(
        strategy_class=LatestBlessedModelStrategy,
        model=Channel(type=standard_artifacts.Model, producer_component_id=trainer_id),
        model_blessing=Channel(
            type=standard_artifacts.ModelBlessing, producer_component_id=evaluator_id
        ),
    ).with_id(resolver_id)


def _importer(name, uri, artifact_type, splits=None):
    props = {"split_names": json.dumps(splits)} if splits else None
    return tfx.dsl.Importer(source_uri=uri, artifact_type=artifact_type, properties=props).with_id(
        name
    )


def _run(config, name, with_trainer):
    """Importers + latest-blessed Resolvers -> miner (-> RetrievalTrainer) under `name`."""
    root = config.pipeline_root
    seq = "BehaviorSequenceGen"
    examples = _importer(
        "examples", _latest(root, seq, "examples"), standard_artifacts.Examples, ["train", "eval"]
    )
    catalog = _importer(
        "catalog", _latest(root, seq, "catalog"), standard_artifacts.Examples, ["catalog"]
    )
    retrieval = _resolver("retrieval_trainer", "retrieval_evaluator", "latest_blessed_retrieval")
    ranking = _resolver("ranking_trainer", "ranking_evaluator", "latest_blessed_ranking")
    miner = HardNegativeMiner(
        examples=examples.outputs["result"],
        catalog=catalog.outputs["result"],
        retrieval_model=retrieval.outputs["model"],
        ranking_model=ranking.outputs["model"],
        config=CFG,
    ).with_id("hard_negative_miner")
    components = [examples, catalog, retrieval, ranking, miner]
    if with_trainer:
        graph = _importer(
            "graph",
            _latest(root, "Transform", "transform_graph"),
            standard_artifacts.TransformGraph,
        )
        trainer = RetrievalTrainer(
            examples=examples.outputs["result"],  # raw: the trainer transforms them
            transform_graph=graph.outputs["result"],
            hard_negatives=miner.outputs["hard_negatives"],
            train_args=tfx.proto.TrainArgs(num_steps=4),
            eval_args=tfx.proto.EvalArgs(num_steps=1),
            custom_config={CUSTOM_CONFIG_KEY: config.retrieval.to_dict()},
        ).with_id("retrieval_trainer_mined")
        components += [graph, trainer]
    tfx.orchestration.LocalDagRunner().run(
        tfx.dsl.Pipeline(
            pipeline_name=name,
            pipeline_root=root,
            components=components,
            enable_cache=False,
            metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
                config.metadata_path
            ),
        )
    )


@pytest.fixture(scope="module")
def mined(run):
    config, first = run  # the shared whole-pipeline run (tests/conftest.py)
    assert first["retrieval"]["blessed"] and first["ranking"]["blessed"]
    _run(config, config.name, with_trainer=True)  # same pipeline: the Resolvers find them
    return config, _latest(config.pipeline_root, "hard_negative_miner", "hard_negatives")


def _rows(pattern, dtypes):
    records = tf.data.TFRecordDataset(glob.glob(pattern), compression_type="GZIP")
    return [example_codec.decode(r.numpy(), dtypes) for r in records]


def _read_tsv(path):
    out = {}
    for line in open(path):
        user, _, items = line.rstrip("\n").partition("\t")
        assert user not in out, f"user {user} twice"
        out[user] = items.split(" ")
    return out


def _user_inputs(row):
    keys = (F.USER_ID, F.AGE, F.GENDER, F.OCCUPATION, F.TIMESTAMP) + F.FIXED_LENGTH_LISTS
    return {k: [row[k]] for k in keys}


def _call(signature, inputs):
    specs = signature.structured_input_signature[1]
    return signature(**{k: tf.constant(inputs[k], s.dtype) for k, s in specs.items()})


def _ranker_scores(ranker, row, items, catalog):
    """The blessed ranker's scores [len(items)] for one user's latest train example."""
    inputs = _user_inputs(row) | {
        F.ITEM_ID: [items],
        F.PRIMARY_GENRE: [[catalog[i][F.PRIMARY_GENRE] for i in items]],
        F.YEAR: [[catalog[i][F.YEAR] for i in items]],
    }
    return _call(ranker.signatures[SCORE_CANDIDATES], inputs)[SCORES].numpy()[0]


def _item_vectors(model, model_dir, catalog):
    """{item: embedding}: the exported item_embeddings.npz, the candidate tower for the rest."""
    npz = np.load(os.path.join(model_dir, "item_embeddings.npz"))
    vectors = dict(zip([str(i) for i in npz["ids"]], npz["embeddings"], strict=True))
    for item, row in catalog.items():
        if item not in vectors:
            inputs = {k: [row[k]] for k in (F.ITEM_ID, F.GENRES, F.PRIMARY_GENRE, F.YEAR)}
            out = _call(model.signatures["candidate_embedding"], inputs)["embedding"].numpy()
            vectors[item] = out[0]
    return vectors


def test_mined_file_holds_only_unseen_catalog_items_outside_the_rankers_top_k(mined):
    config, out = mined
    root = config.pipeline_root
    negatives = _read_tsv(os.path.join(out, mining.TSV_FILE))
    report = json.load(open(os.path.join(out, mining.REPORT_FILE)))
    seq = _latest(root, "BehaviorSequenceGen", "examples")
    catalog = {
        r[F.ITEM_ID]: r
        for r in _rows(
            os.path.join(_latest(root, "BehaviorSequenceGen", "catalog"), "Split-catalog", "*"),
            F.CATALOG_FEATURES,
        )
    }
    seen, latest = {}, {}
    for split in ("train", "eval"):
        for row in _rows(os.path.join(seq, f"Split-{split}", "*"), F.SEQUENCE_FEATURES):
            items = seen.setdefault(row[F.USER_ID], set())
            items.update(row[F.HISTORY_ITEM_IDS])
            items.update([row[F.ITEM_ID]] if row[F.LABEL] == 1 else [])
            best = latest.get(row[F.USER_ID])
            if split == "train" and (best is None or row[F.TIMESTAMP] > best[F.TIMESTAMP]):
                latest[row[F.USER_ID]] = row
    assert report["status"] == "mined" and report["users_mined"] == len(latest)
    assert report["negatives"] == sum(len(v) for v in negatives.values())
    assert len(negatives) >= 0.9 * len(latest)  # 150 items, top 30, top 5 kept: nearly all
    # The models the Resolvers gave the miner (other tests may have trained newer ones).
    ranker = tf.saved_model.load(os.path.join(report["ranking_model"], "Format-Serving"))
    retriever_dir = report["retrieval_model"]
    retriever = tf.saved_model.load(os.path.join(retriever_dir, "Format-Serving"))
    vectors = _item_vectors(retriever, retriever_dir, catalog)
    for user, items in negatives.items():
        assert user in latest
        assert 1 <= len(items) <= CFG.max_per_user and len(set(items)) == len(items)
        assert set(items) <= set(catalog), user
        assert not set(items) & seen[user], user
        # Retrieved: among the user's top N unseen items, in retrieval order (tolerance:
        # float noise between batch sizes).
        unseen = [i for i in catalog if i not in seen[user]]
        query = _call(retriever.signatures["query_embedding"], _user_inputs(latest[user]))
        query = query["embedding"].numpy()[0]
        by_retrieval = {i: float(vectors[i] @ query) for i in unseen}
        ranked = sorted(by_retrieval, key=by_retrieval.get, reverse=True)
        cutoff = by_retrieval[ranked[CFG.top_n - 1]]
        mined_scores = [by_retrieval[i] for i in items]
        assert min(mined_scores) >= cutoff - 1e-4, user
        assert all(
            a >= b - 1e-4 for a, b in zip(mined_scores, mined_scores[1:], strict=False)
        ), user
        # Outside the ranker's top K: at least K other retrieved items score as high.
        retrieved = [i for i in ranked if by_retrieval[i] >= cutoff - 1e-4 and i not in items]
        kept = _ranker_scores(ranker, latest[user], retrieved, catalog)
        for score in _ranker_scores(ranker, latest[user], items, catalog):
            assert np.sum(kept >= score - 1e-5) >= CFG.top_k, user


def test_the_artifact_carries_the_report_in_mlmd(mined):
    from tfx.orchestration import metadata

    with metadata.Metadata(
        tfx.orchestration.metadata.sqlite_metadata_connection_config(mined[0].metadata_path)
    ) as m:
        artifacts = m.store.get_artifacts_by_type(HardNegatives.TYPE_NAME)
    # This run's artifact: the store is shared with other tests' pipeline runs (the e2e
    # pipeline's miner writes "mined" HardNegatives there too when it ran first).
    (artifact,) = [a for a in artifacts if os.path.normpath(a.uri) == os.path.normpath(mined[1])]
    assert artifact.custom_properties["status"].string_value == "mined"
    props = artifact.custom_properties
    report = json.load(open(os.path.join(artifact.uri, mining.REPORT_FILE)))
    assert props["negatives"].int_value == report["negatives"] > 0
    assert props["users_mined"].int_value == report["users_mined"]


def test_retrieval_trainer_received_the_mined_file(mined):
    config, out = mined
    root = config.pipeline_root
    tsv = os.path.join(out, mining.TSV_FILE)
    run_dir = _latest(root, "retrieval_trainer_mined", "model_run")
    recorded = json.load(open(os.path.join(run_dir, SUMMARY_FILE)))
    assert recorded["config"]["updates"]["mined_negatives_path"] == tsv
    model = _latest(root, "retrieval_trainer_mined", "model")
    assert os.path.exists(os.path.join(model, "Format-Serving", "saved_model.pb"))


def test_first_run_without_blessed_models_writes_an_empty_file(mined):
    """Another pipeline name: its Resolvers find no blessed model; the inputs are empty."""
    config, _ = mined
    _run(config, "fresh-pipeline", with_trainer=False)
    out = _latest(config.pipeline_root, "hard_negative_miner", "hard_negatives")
    assert open(os.path.join(out, mining.TSV_FILE)).read() == ""
    report = json.load(open(os.path.join(out, mining.REPORT_FILE)))
    assert report["status"] == "no blessed retrieval and ranking model yet: empty file"
