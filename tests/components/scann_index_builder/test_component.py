"""ScannIndexBuilder wiring, and one run through TFX (LocalDagRunner) on tiny_data's
raw examples and catalog with a small SavedModel exposing the two embedding signatures."""

import json
import os

import numpy as np
import tensorflow as tf
from ml_metadata import metadata_store
from tfx import types
from tfx import v1 as tfx
from tfx.components.evaluator import constants
from tfx.types import artifact_utils, standard_artifacts

from components.scann_index_builder import component
from models.common import examples as R
from models.search import index as I
from models.search.params import IndexConfig
from schemas import features as F
from schemas import serving

DIM = 8


class _HashedModel(tf.Module):
    """Embeddings from random tables indexed by hashed user / item ids."""

    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(0)
        self.users = tf.Variable(rng.normal(size=(1000, DIM)).astype(np.float32))
        self.items = tf.Variable(rng.normal(size=(1000, DIM)).astype(np.float32))

    @tf.function(input_signature=[serving.QUERY_SPEC])
    def query_embedding(self, inputs):
        rows = tf.strings.to_hash_bucket_fast(inputs[F.USER_ID], 1000)
        return {serving.EMBEDDING_KEY: tf.gather(self.users, rows)}

    @tf.function(input_signature=[serving.CANDIDATE_SPEC])
    def candidate_embedding(self, inputs):
        rows = tf.strings.to_hash_bucket_fast(inputs[F.ITEM_ID], 1000)
        return {serving.EMBEDDING_KEY: tf.gather(self.items, rows)}


def test_component_wiring_and_properties():
    builder = component.ScannIndexBuilder(
        model=types.Channel(type=standard_artifacts.Model),
        examples=types.Channel(type=standard_artifacts.Examples),
        catalog=types.Channel(type=standard_artifacts.Examples),
        config=IndexConfig(recall_threshold=0.9, num_leaves=50),
    )
    props = builder.exec_properties
    assert props["recall_threshold"] == 0.9 and props["num_leaves"] == 50
    assert props["k"] == 10 and props["exact_below"] == 10_000 and props["eval_split"] == "eval"
    assert "reorder" not in props  # None: chosen from the catalog size
    assert IndexConfig.from_properties(props) == IndexConfig(recall_threshold=0.9, num_leaves=50)
    assert builder.outputs["index"].type == component.ItemIndex
    assert builder.outputs["blessing"].type == standard_artifacts.ModelBlessing
    assert set(builder.inputs) == {"model", "examples", "catalog"}


def _importer(name, uri, artifact_type, splits=None):
    properties = {"split_names": artifact_utils.encode_split_names(splits)} if splits else {}
    return tfx.dsl.Importer(
        source_uri=uri, artifact_type=artifact_type, properties=properties
    ).with_id(name)


def _latest(store, type_name):
    return max(store.get_artifacts_by_type(type_name), key=lambda a: a.id)


def test_runs_in_a_tfx_pipeline_on_tiny_data(tiny_data, tmp_path):
    module = _HashedModel()
    model_uri = str(tmp_path / "model")
    signatures = {
        serving.QUERY_SIGNATURE: module.query_embedding,
        serving.CANDIDATE_SIGNATURE: module.candidate_embedding,
    }
    tf.saved_model.save(module, os.path.join(model_uri, "Format-Serving"), signatures=signatures)
    model = _importer("model", model_uri, standard_artifacts.Model)
    examples_type = standard_artifacts.Examples
    examples = _importer("examples", tiny_data.examples, examples_type, ["train", "eval"])
    catalog = _importer("catalog", tiny_data.catalog, examples_type, ["catalog"])
    builder = component.ScannIndexBuilder(
        model=model.outputs["result"],
        examples=examples.outputs["result"],
        catalog=catalog.outputs["result"],
    )
    metadata = tfx.orchestration.metadata.sqlite_metadata_connection_config(
        str(tmp_path / "mlmd.sqlite")
    )
    pipeline = tfx.dsl.Pipeline(
        pipeline_name="scann_index_builder_test",
        pipeline_root=str(tmp_path / "root"),
        components=[model, examples, catalog, builder],
        metadata_connection_config=metadata,
    )
    tfx.orchestration.LocalDagRunner().run(pipeline)

    store = metadata_store.MetadataStore(metadata)
    index_artifact = _latest(store, component.ItemIndex.TYPE_NAME)
    index = I.load_index(index_artifact.uri)
    catalog_ids = R.read_columns(tiny_data.raw("catalog"), F.CATALOG_FEATURES, [F.ITEM_ID])
    num_items = len(catalog_ids[F.ITEM_ID])
    assert len(index.item_ids) == num_items < 10_000 and index.embeddings.shape == (num_items, DIM)
    assert index.params.exact and index_artifact.custom_properties["exact"].int_value == 1
    with open(os.path.join(I.index_dir(index_artifact.uri), I.METRICS_FILE)) as f:
        metrics = json.load(f)
    assert metrics["exact_fallback"] and "exact search" in metrics["search"]
    assert metrics["recall@10"] == 1.0 and metrics["num_queries"] > 0 and metrics["blessed"]
    blessing = _latest(store, "ModelBlessing")
    assert blessing.custom_properties[constants.ARTIFACT_PROPERTY_BLESSED_KEY].int_value == 1
    assert os.path.exists(os.path.join(blessing.uri, constants.BLESSED_FILE_NAME))
    # the index answers like exact search over the model's item embeddings
    searcher = I.portable_searcher(index, 5)
    indices, scores = searcher.search(tf.constant(index.embeddings[:3]))
    expected = np.argsort(-(index.embeddings[:3] @ index.embeddings.T), axis=1)[:, :5]
    np.testing.assert_array_equal(indices.numpy(), expected)
