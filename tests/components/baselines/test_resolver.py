"""The baseline record's resolver on TFX's LocalDagRunner with a real MLMD SQLite store:
a first run resolves nothing without failing; the next run gets the newest record."""

import os

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2
from tfx import v1 as tfx
from tfx.types import standard_artifacts
from tfx.types.channel import Channel

from components import baseline_inputs as B
from components.baselines.component import RECORD_TYPE, BaselineLoader, BaselinePublisher
from components.baselines.resolver import LatestArtifactResolver
from tests.components.baselines.test_baselines import saved_model

PIPELINE, PUBLISHER = "resolver_test", "BaselinePublisher"
MODEL, BLESSING = standard_artifacts.Model, standard_artifacts.ModelBlessing


def _pipeline(root, make_resolver):
    """Resolver -> BaselineLoader; BaselinePublisher of imported models and blessings."""
    record = Channel(type=RECORD_TYPE, producer_component_id=PUBLISHER, output_key="record")
    resolver = make_resolver(record).with_id("latest_baseline_record")
    loader = BaselineLoader(record=resolver.outputs["record"]).with_id("BaselineLoader")
    imports = {
        f"{family}_{what}": tfx.dsl.Importer(
            source_uri=os.path.join(root, "inputs", f"{family}_{what}"), artifact_type=kind
        ).with_id(f"import_{family}_{what}")
        for family in ("retrieval", "ranking")
        for what, kind in (("model", MODEL), ("blessing", BLESSING))
    }
    publisher = BaselinePublisher(
        **{k: v.outputs["result"] for k, v in imports.items()}, previous=resolver.outputs["record"]
    ).with_id(PUBLISHER)
    publisher.add_upstream_node(loader)  # the record read before the next one is written
    return tfx.dsl.Pipeline(
        pipeline_name=PIPELINE,
        pipeline_root=os.path.join(root, "pipeline"),
        components=[resolver, loader, *imports.values(), publisher],
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            os.path.join(root, "metadata.sqlite")
        ),
    )


def _inputs(root):
    for family, signatures in B.FAMILY_SIGNATURES.items():
        saved_model(os.path.join(root, "inputs", f"{family}_model"), signatures)
        blessing = os.path.join(root, "inputs", f"{family}_blessing")
        os.makedirs(blessing)
        open(os.path.join(blessing, "BLESSED"), "w").close()


def _store(root):
    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = os.path.join(root, "metadata.sqlite")
    return metadata_store.MetadataStore(config)


def _executions(store, node_id):
    context = store.get_context_by_type_and_name("node", f"{PIPELINE}.{node_id}")
    return sorted(store.get_executions_by_context(context.id), key=lambda e: e.id)


def _artifacts(store, execution, key, kind=metadata_store_pb2.Event.OUTPUT):
    events = [
        e
        for e in store.get_events_by_execution_ids([execution.id])
        if e.type == kind and e.path.steps[0].key == key
    ]
    return store.get_artifacts_by_id([e.artifact_id for e in events])


def _status(store, family):
    (model,) = _artifacts(store, _executions(store, "BaselineLoader")[-1], f"{family}_model")
    return model.custom_properties[B.STATUS_PROPERTY].string_value


def test_first_run_resolves_nothing_and_the_second_the_first_runs_record(tmp_path):
    root = str(tmp_path)
    _inputs(root)
    pipeline = lambda: _pipeline(root, lambda record: LatestArtifactResolver(record=record))  # noqa: E731
    tfx.orchestration.LocalDagRunner().run(pipeline())
    store = _store(root)
    (first,) = _executions(store, "latest_baseline_record")
    assert first.last_known_state != metadata_store_pb2.Execution.FAILED
    assert _status(store, "retrieval") == "no baseline: no baseline record yet (first run)"
    (record,) = _artifacts(store, _executions(store, "BaselinePublisher")[-1], "record")

    tfx.orchestration.LocalDagRunner().run(pipeline())
    second = _executions(store, "latest_baseline_record")[-1]
    assert second.last_known_state != metadata_store_pb2.Execution.FAILED
    loader = _executions(store, "BaselineLoader")[-1]
    given = _artifacts(store, loader, "record", metadata_store_pb2.Event.INPUT)
    assert [a.id for a in given] == [record.id]
    for family in B.FAMILY_SIGNATURES:
        model_uri = os.path.join(root, "inputs", f"{family}_model")
        assert _status(store, family).startswith(f"{family} baseline: {model_uri} (")


def test_tfx_latest_artifact_strategy_fails_the_first_run_resolver(tmp_path):
    """What LatestArtifactResolver fixes: TFX's own strategy returns None on an empty
    channel, and the local runner records a FAILED resolver execution."""
    root = str(tmp_path)
    _inputs(root)
    strategy = tfx.dsl.experimental.LatestArtifactStrategy
    tfx.orchestration.LocalDagRunner().run(
        _pipeline(root, lambda record: tfx.dsl.Resolver(strategy_class=strategy, record=record))
    )
    (first,) = _executions(_store(root), "latest_baseline_record")
    assert first.last_known_state == metadata_store_pb2.Execution.FAILED


def test_kfp_compiler_sees_tfxs_resolver_and_strategy():
    """The KFP v2 compiler accepts exactly LatestArtifactStrategy (test_kfp_ir.py checks
    the compiled query); the local runners dispatch on the node type."""
    from tfx.dsl.components.common import resolver as tfx_resolver

    node = LatestArtifactResolver(record=Channel(type=RECORD_TYPE))
    strategy = node.exec_properties[tfx_resolver.RESOLVER_STRATEGY_CLASS]
    assert strategy is tfx.dsl.experimental.LatestArtifactStrategy
    assert node.type == tfx.dsl.Resolver.get_class_type()
