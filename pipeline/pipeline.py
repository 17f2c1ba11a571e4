"""create_pipeline(config): the one factory every runner uses (DESIGN §4)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from tfx import v1 as tfx
from tfx.proto import range_config_pb2, transform_pb2
from tfx.types.channel import OutputChannel

from components.behavior_sequence_gen.component import BehaviorSequenceGen
from components.hard_negative_miner.component import HardNegativeMiner
from components.ranking_evaluator.component import RankingEvaluator
from components.ranking_trainer.component import RankingTrainer
from components.recommender_assembler.component import RecommenderAssembler
from components.retrieval_evaluator.component import RetrievalEvaluator
from components.retrieval_trainer.component import RetrievalTrainer
from components.scann_index_builder.component import ScannIndexBuilder
from components.strict_example_validator.component import StrictExampleValidator
from components.table_gen.component import TableExampleGen
from components.versioned_pusher.component import VersionedPusher
from models.preprocessing import ITEM_VOCABULARY_SIZE
from models.ranking.evaluation import evaluator_kwargs
from models.retrieval.config import CUSTOM_CONFIG_KEY as RETRIEVAL_KEY
from models.retrieval.hyperparameters import TUNING_KEY
from pipeline import kfp_params as P
from pipeline import wiring as W
from pipeline.config import PipelineConfig
from schemas import features as F
from schemas.schema import schema_file

PREPROCESSING_FN = "models.preprocessing.preprocessing_fn"
RETRIEVAL_RUN_FN = "models.retrieval.trainer.run_fn"
RETRIEVAL_TRAINER, RETRIEVAL_EVALUATOR = "retrieval_trainer", "retrieval_evaluator"
RANKING_RUN_FN = "models.ranking.trainer.run_fn"
RANKING_TRAINER, RANKING_EVALUATOR = "ranking_trainer", "ranking_evaluator"
MINER = "HardNegativeMiner"
RETRIEVAL_TUNER, RETRIEVAL_TUNER_FN = "retrieval_tuner", "models.retrieval.tuner.tuner_fn"
BASELINE_RESOLVER, BASELINE_LOADER, BASELINE_PUBLISHER = W.RESOLVER, W.LOADER, W.PUBLISHER
INDEX_BUILDER, ASSEMBLER, PUSHER = "ScannIndexBuilder", "RecommenderAssembler", "Pusher"


def _span(span: int | None):
    if span is None:
        return None
    return range_config_pb2.RangeConfig(
        static_range=range_config_pb2.StaticRange(start_span_number=span, end_span_number=span)
    )


def _upstream_closure(components: list, gates: list, until: str) -> list:
    """`until` and every component it depends on, in order: by output channel, or as the
    downstream of an (upstream, downstream) pair in `gates`.

    A Resolver's plain Channel (e.g. the latest blessed model) is an MLMD query,
    not an edge, so it does not pull its producer in.
    """
    by_id = {c.id: c for c in components}
    if until not in by_id:
        raise ValueError(f"until={until!r} is not a component; components are {sorted(by_id)}")
    needs = {
        c.id: {
            ch.producer_component_id for ch in c.inputs.values() if isinstance(ch, OutputChannel)
        }
        for c in components
    }
    for upstream, downstream in gates:
        needs[downstream.id].add(upstream.id)
    keep, todo = set(), [until]
    while todo:
        node = todo.pop()
        if node in by_id and node not in keep:
            keep.add(node)
            todo.extend(needs[node])
    return [c for c in components if c.id in keep]


def _data_stages(config: PipelineConfig, values: Mapping) -> dict:
    """ExampleGens -> BehaviorSequenceGen -> statistics, schema, validation -> Transform."""
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
    for gen in gens.values():
        W.set_property(gen, "input_base", values[P.DATA_ROOT])
    sequences = BehaviorSequenceGen(
        interactions=gens[F.INTERACTIONS].outputs["examples"],
        items=gens[F.ITEMS].outputs["examples"],
        users=gens[F.USERS].outputs["examples"] if F.USERS in gens else None,
        config=config.sequences,
    )
    if config.sequence_beam_args:
        sequences.with_beam_pipeline_args(list(config.sequence_beam_args))
    statistics = tfx.components.StatisticsGen(examples=sequences.outputs["examples"])
    # The curated schema, its history features shaped for the run's history length.
    schema_dir = os.path.join(config.pipeline_root, "schema")
    path = schema_file(config.sequences.history_length, schema_dir)
    schema = tfx.components.ImportSchemaGen(schema_file=path)
    validator = StrictExampleValidator(
        statistics=statistics.outputs["statistics"], schema=schema.outputs["schema"]
    )
    transform = tfx.components.Transform(
        examples=sequences.outputs["examples"],
        schema=schema.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN,
        splits_config=transform_pb2.SplitsConfig(analyze=["train"], transform=["train", "eval"]),
        disable_statistics=not config.transform_statistics,
        custom_config={ITEM_VOCABULARY_SIZE: config.item_vocabulary_size},
        materialize=config.transform_materialize,
    )
    return {
        **{g.id: g for g in gens.values()},
        "sequences": sequences,
        "statistics": statistics,
        "schema": schema,
        "validator": validator,
        "transform": transform,
    }


def _training_examples(config: PipelineConfig, stages: dict):
    """The examples the trainers and the Tuner read: Transform's transformed examples when
    it materializes them, else BehaviorSequenceGen's raw ones, which the trainers
    transform with the transform graph as they read them (models/common/data.py)."""
    if config.transform_materialize:
        return stages["transform"].outputs["transformed_examples"]
    return stages["sequences"].outputs["examples"]


def _retrieval_tuner(config: PipelineConfig, stages: dict):
    """TFX's Tuner over config.tuning (a KerasTuner search, each trial capped at
    train_steps), or None when tuning is off."""
    if config.tuning is None:
        return None
    transform = stages["transform"]
    return tfx.components.Tuner(
        tuner_fn=RETRIEVAL_TUNER_FN,
        examples=_training_examples(config, stages),
        transform_graph=transform.outputs["transform_graph"],
        schema=stages["schema"].outputs["schema"],
        train_args=tfx.proto.TrainArgs(num_steps=config.train_steps),
        eval_args=tfx.proto.EvalArgs(num_steps=0),
        custom_config={
            RETRIEVAL_KEY: config.retrieval.to_dict(),
            TUNING_KEY: config.tuning.to_dict(),
        },
    ).with_id(RETRIEVAL_TUNER)


def _retrieval_stages(config: PipelineConfig, stages: dict, values: Mapping) -> list:
    """Hard negatives mined with the baselines, the optional Tuner, the two-tower trainer
    (warm-started from the retrieval baseline; trained with the Tuner's best hyperparameters
    when tuning) and its evaluator (compared with the baseline)."""
    sequences, transform, loader = stages["sequences"], stages["transform"], stages[BASELINE_LOADER]
    miner = HardNegativeMiner(
        examples=sequences.outputs["examples"],
        catalog=sequences.outputs["catalog"],
        retrieval_model=loader.outputs["retrieval_model"],
        ranking_model=loader.outputs["ranking_model"],
    ).with_id(MINER)
    tuner = _retrieval_tuner(config, stages)
    trainer = RetrievalTrainer(
        examples=_training_examples(config, stages),
        transform_graph=transform.outputs["transform_graph"],
        schema=stages["schema"].outputs["schema"],
        base_model=loader.outputs["retrieval_model"],
        hard_negatives=miner.outputs["hard_negatives"],
        hyperparameters=tuner.outputs["best_hyperparameters"] if tuner else None,
        run_fn=RETRIEVAL_RUN_FN,
        train_args=values[P.TRAIN_ARGS],
        eval_args=values[P.EVAL_ARGS],
        custom_config=W.trainer_custom_configs(config)[0],
        update_mode=values[P.UPDATE_MODE],
        vertex=config.vertex_training is not None,
    ).with_id(RETRIEVAL_TRAINER)
    evaluator = RetrievalEvaluator(
        model=trainer.outputs["model"],
        examples=sequences.outputs["examples"],
        catalog=sequences.outputs["catalog"],
        baseline_model=loader.outputs["retrieval_model"],
        blessing=config.retrieval_blessing,
    ).with_id(RETRIEVAL_EVALUATOR)
    for key, value in values.items():
        if key.startswith(P.RETRIEVAL_PREFIX):
            W.set_property(evaluator, key[len(P.RETRIEVAL_PREFIX) :], value)
    return [miner, *([tuner] if tuner else []), trainer, evaluator]


def _ranking_stages(config: PipelineConfig, stages: dict, values: Mapping) -> list:
    """DIN trainer (warm-started from the ranking baseline; its id embeddings only in an
    incremental update) and TFMA's Evaluator."""
    transform, loader = stages["transform"], stages[BASELINE_LOADER]
    trainer = RankingTrainer(
        run_fn=RANKING_RUN_FN,
        examples=_training_examples(config, stages),
        transform_graph=transform.outputs["transform_graph"],
        schema=stages["schema"].outputs["schema"],
        base_model=loader.outputs["ranking_model"],
        train_args=values[P.TRAIN_ARGS],
        eval_args=values[P.EVAL_ARGS],
        custom_config=W.trainer_custom_configs(config)[1],
        update_mode=values[P.UPDATE_MODE],
        vertex=config.vertex_training is not None,
    ).with_id(RANKING_TRAINER)
    evaluator = RankingEvaluator(
        ranking_min_auc=values[P.RANKING_MIN_AUC],
        **evaluator_kwargs(
            examples=stages["sequences"].outputs["examples"],
            model=trainer.outputs["model"],
            baseline_model=loader.outputs["ranking_model"],
            auc_lower_bound=config.ranking_min_auc,
            auc_tolerance=config.ranking_auc_tolerance,
        ),
    ).with_id(RANKING_EVALUATOR)
    return [trainer, evaluator]


def _serving_stages(config: PipelineConfig, stages: dict, retrieval: list, ranking: list) -> list:
    """Index -> combined model + canary -> a Pusher gated on all four blessings."""
    (*_, retrieval_trainer, retrieval_evaluator), (*_, ranking_trainer, ranking_evaluator) = (
        retrieval,
        ranking,
    )
    sequences = stages["sequences"]
    index = ScannIndexBuilder(
        model=retrieval_trainer.outputs["model"],
        examples=sequences.outputs["examples"],
        catalog=sequences.outputs["catalog"],
        config=config.index,
    ).with_id(INDEX_BUILDER)
    assembler = RecommenderAssembler(
        retrieval_model=retrieval_trainer.outputs["model"],
        ranking_model=ranking_trainer.outputs["model"],
        index=index.outputs["index"],
        examples=sequences.outputs["examples"],
        catalog=sequences.outputs["catalog"],
        config=config.assembly,
    ).with_id(ASSEMBLER)
    pusher = VersionedPusher(
        model=assembler.outputs["model"],
        ranking_blessing=ranking_evaluator.outputs["blessing"],
        retrieval_blessing=retrieval_evaluator.outputs["blessing"],
        index_blessing=index.outputs["blessing"],
        canary_blessing=assembler.outputs["blessing"],
        serving_dir=config.push_dir,
        model_name=config.model_name,
        keep_versions=config.keep_versions,
    ).with_id(PUSHER)
    return [index, assembler, pusher]


def create_pipeline(
    config: PipelineConfig, until: str | None = None, parameters: Mapping | None = None
) -> tfx.dsl.Pipeline:
    """Builds the TFX pipeline (DESIGN §4) for every runner.

    Args:
        config: the validated pipeline config.
        until: a component id: build only it and what it depends on (e.g.
            "Transform" for the data stages).
        parameters: {name: RuntimeParameter} when compiling for KFP
            (pipeline/runtime.py); None takes every value from `config`.
    """
    values = W.values(config, parameters)
    stages = _data_stages(config, values)
    resolver, loader = W.baseline_loader()
    stages.update({W.RESOLVER: resolver, W.LOADER: loader})
    retrieval = _retrieval_stages(config, stages, values)
    ranking = _ranking_stages(config, stages, values)
    publisher = W.baseline_publisher(resolver, tuple(retrieval[-2:]), tuple(ranking))
    components = [
        *stages.values(),
        *retrieval,
        *ranking,
        *_serving_stages(config, stages, retrieval, ranking),
        publisher,
    ]
    # Anomalies stop the run before training. The validator does not hold Transform back:
    # StatisticsGen + validation run beside it (ML-100K: 20 s off the critical path), and
    # they are built whenever Transform is (`until`), as its companions.
    validator, by_id = stages["validator"], {c.id: c for c in components}
    gates = [(validator, by_id[RETRIEVAL_TRAINER]), (validator, by_id[RANKING_TRAINER])]
    gates += [(validator, by_id[RETRIEVAL_TUNER])] if RETRIEVAL_TUNER in by_id else []
    companions = [(validator, stages["transform"])]
    if until:
        components = _upstream_closure(components, gates + companions, until)
    for upstream, downstream in gates:
        if upstream in components and downstream in components:
            downstream.add_upstream_node(upstream)
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
