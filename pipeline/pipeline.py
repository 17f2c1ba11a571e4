"""create_pipeline(config): the one factory every runner uses (DESIGN §4)."""

from __future__ import annotations

from tfx import v1 as tfx
from tfx.proto import range_config_pb2, transform_pb2

from components.behavior_sequence_gen.component import BehaviorSequenceGen
from components.strict_example_validator.component import StrictExampleValidator
from components.table_gen.component import TableExampleGen
from pipeline.config import PipelineConfig
from pipeline.schema import SCHEMA_PATH
from schemas import features as F

PREPROCESSING_FN = "models.preprocessing.preprocessing_fn"


def _span(span: int | None):
    if span is None:
        return None
    return range_config_pb2.RangeConfig(
        static_range=range_config_pb2.StaticRange(start_span_number=span, end_span_number=span)
    )


def _upstream_closure(components: list, until: str) -> list:
    """`until` and every component it depends on, in the original order."""
    by_id = {c.id: c for c in components}
    if until not in by_id:
        raise ValueError(f"until={until!r} is not a component; components are {sorted(by_id)}")
    keep, todo = set(), [by_id[until]]
    while todo:
        node = todo.pop()
        if node.id not in keep:
            keep.add(node.id)
            todo.extend(node.upstream_nodes)
    return [c for c in components if c.id in keep]


def create_pipeline(config: PipelineConfig, until: str | None = None) -> tfx.dsl.Pipeline:
    """Builds the TFX pipeline (DESIGN §4).

    Args:
        config: the validated pipeline config.
        until: a component id: build only it and what it depends on (e.g.
            "Transform" for the data stages).
    """
    data = config.data
    gens = {
        table: TableExampleGen(
            table,
            input_base=data.path,
            pattern=pattern,
            fmt=data.fmt,
            column_mapping=dict(data.column_mapping.get(table, {})),
            delimiter=data.delimiter,
            range_config=_span(data.interaction_span) if table == F.INTERACTIONS else None,
        )
        for table, pattern in data.patterns().items()
    }
    sequences = BehaviorSequenceGen(
        interactions=gens[F.INTERACTIONS].outputs["examples"],
        items=gens[F.ITEMS].outputs["examples"],
        users=gens[F.USERS].outputs["examples"] if F.USERS in gens else None,
        config=config.sequences,
    )
    examples = sequences.outputs["examples"]
    statistics = tfx.components.StatisticsGen(examples=examples)
    schema = tfx.components.ImportSchemaGen(schema_file=SCHEMA_PATH)
    validator = StrictExampleValidator(
        statistics=statistics.outputs["statistics"], schema=schema.outputs["schema"]
    )
    transform = tfx.components.Transform(
        examples=examples,
        schema=schema.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
        splits_config=transform_pb2.SplitsConfig(analyze=["train"], transform=["train", "eval"]),
    )
    transform.add_upstream_node(validator)  # anomalies stop the pipeline before Transform
    components = [*gens.values(), sequences, statistics, schema, validator, transform]

    def build(components):
        return tfx.dsl.Pipeline(
            pipeline_name=config.name,
            pipeline_root=config.pipeline_root,
            components=components,
            enable_cache=config.enable_cache,
            metadata_connection_config=(
                tfx.orchestration.metadata.sqlite_metadata_connection_config(config.metadata_path)
                if config.metadata_path
                else None
            ),
            beam_pipeline_args=list(config.beam_pipeline_args),
        )

    pipeline = build(components)  # also links every node to its upstream nodes
    return build(_upstream_closure(pipeline.components, until)) if until else pipeline
