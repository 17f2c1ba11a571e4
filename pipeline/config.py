"""Frozen config dataclasses. Invalid config fails here, naming the field."""

from __future__ import annotations

import dataclasses
import glob
import os
from collections.abc import Mapping

from components.behavior_sequence_gen.sequences import SequenceConfig
from components.recommender_assembler.config import AssemblyConfig
from components.retrieval_evaluator.metrics import BlessingConfig
from components.table_gen import formats
from models.ranking.config import RankingConfig
from models.retrieval.config import RetrievalConfig
from models.retrieval.hyperparameters import SearchSpace
from models.search.params import IndexConfig
from schemas import features as F

SYNTHETIC = "synthetic"  # generated CSV tables, in spans
CSV, ML_100K, ML_1M = formats.CSV, formats.ML_100K, formats.ML_1M
SOURCES = (SYNTHETIC, *formats.FORMATS)
SPAN_PATTERNS = {t: f"{t}/span-{{SPAN}}/*.csv" for t in (F.INTERACTIONS, F.ITEMS, F.USERS)}
FLAT_PATTERNS = {t: f"{t}*.csv" for t in (F.INTERACTIONS, F.ITEMS, F.USERS)}
LOCAL_WORKERS = 2  # the local runner's worker processes: one per core of the 2-core target


def multiprocessing_beam_args(workers: int) -> tuple[str, ...]:
    """Beam args for the DirectRunner on `workers` local processes."""
    return ("--direct_running_mode=multi_processing", f"--direct_num_workers={workers}")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the three raw tables come from.

    Attributes:
        source: SYNTHETIC, CSV, ML_100K or ML_1M (the file format).
        path: the directory holding the tables.
        column_mapping: per table, {canonical column: column in the file}.
        delimiter: the CSV delimiter.
        interaction_span: the span of interactions to read; None reads the
            latest span (or the only files, without spans). ExampleGen reads one
            span per run; later runs add the newer spans.
    """

    source: str = SYNTHETIC
    path: str = ""
    column_mapping: Mapping[str, Mapping[str, str]] = dataclasses.field(default_factory=dict)
    delimiter: str = ","
    interaction_span: int | None = None

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"data.source must be one of {SOURCES}, got {self.source!r}")
        if not self.path:
            raise ValueError("data.path is empty: give the directory holding the tables")
        if "://" not in self.path and not os.path.isdir(self.path):
            raise ValueError(f"data.path {self.path!r} is not a directory")
        for table, mapping in self.column_mapping.items():
            if table not in F.TABLES:
                raise ValueError(
                    f"data.column_mapping: unknown table {table!r}; "
                    f"tables are {sorted(F.TABLES)}"
                )
            known = {c.name for c in F.TABLES[table]}
            for name in mapping:
                if name not in known:
                    raise ValueError(
                        f"data.column_mapping[{table!r}]: unknown column {name!r}; "
                        f"columns are {sorted(known)}"
                    )
        if self.interaction_span is not None and self.interaction_span < 0:
            raise ValueError(f"data.interaction_span must be >= 0, got {self.interaction_span}")

    @property
    def fmt(self) -> str:
        """The file format the table readers use."""
        return CSV if self.source == SYNTHETIC else self.source

    def patterns(self) -> dict[str, str]:
        """File pattern per table, relative to `path`; the users table is optional."""
        if self.source in (ML_100K, ML_1M):
            names = formats.DEFAULT_FILES[self.source]
        elif self._has_spans():
            names = SPAN_PATTERNS
        else:
            names = FLAT_PATTERNS
        return {
            t: p for t, p in names.items() if t != F.USERS or "://" in self.path or self._exists(p)
        }

    def _has_spans(self) -> bool:
        return "://" in self.path or bool(
            glob.glob(os.path.join(self.path, F.INTERACTIONS, "span-*"))
        )

    def _exists(self, pattern: str) -> bool:
        return bool(glob.glob(os.path.join(self.path, pattern.replace("{SPAN}", "*"))))


@dataclasses.dataclass(frozen=True)
class VertexTraining:
    """Both Trainers as Vertex AI CustomJobs (TFX's google_cloud_ai_platform Trainer
    executor), for a KFP / Vertex AI Pipelines compile. Compile-time only: the job's
    shape is part of the compiled IR.

    Attributes:
        project: the GCP project the jobs run in.
        region: the Vertex AI region, e.g. "us-central1".
        image: the container each replica runs (the pipeline image: deploy/Dockerfile).
        machine_type: every replica's machine, e.g. "n1-standard-16".
        workers: replicas in all: 1 trains on one machine (tf.distribute "mirrored",
            every local GPU); N > 1 runs a chief and N - 1 workers under
            MultiWorkerMirroredStrategy (Vertex AI sets each replica's TF_CONFIG).
        accelerator_type: e.g. "NVIDIA_TESLA_T4", or "" for none.
        accelerator_count: accelerators per replica (with accelerator_type).
    """

    project: str
    region: str
    image: str
    machine_type: str = "n1-standard-8"
    workers: int = 1
    accelerator_type: str = ""
    accelerator_count: int = 0

    def __post_init__(self):
        for name in ("project", "region", "image", "machine_type"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value or any(c.isspace() for c in value):
                raise ValueError(f"vertex_training.{name} must be a non-empty word, got {value!r}")
        if isinstance(self.workers, bool) or not isinstance(self.workers, int) or self.workers < 1:
            raise ValueError(f"vertex_training.workers must be an int >= 1, got {self.workers!r}")
        if bool(self.accelerator_type) != (self.accelerator_count > 0):
            raise ValueError(
                "vertex_training.accelerator_type and accelerator_count go together, got "
                f"{self.accelerator_type!r} x {self.accelerator_count!r}"
            )

    @property
    def strategy(self) -> str:
        """The trainers' tf.distribute strategy on this job shape."""
        return "multi_worker" if self.workers > 1 else "mirrored"


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """Everything `create_pipeline` needs.

    Attributes:
        data: the raw tables.
        sequences: BehaviorSequenceGen's config.
        retrieval: the two-tower model's config (the Trainer's custom_config).
        retrieval_blessing: RetrievalEvaluator's thresholds.
        ranking: the DIN ranker's config (the Trainer's custom_config).
        ranking_min_auc: the ranker Evaluator's absolute AUC floor.
        ranking_auc_tolerance: how far below the last blessed ranker's AUC a new
            one may be and still be blessed.
        train_steps: caps each trainer's steps; 0 trains the configs' epochs.
        pipeline_root: where artifacts go.
        metadata_path: the SQLite MLMD file (local runners).
        name: the pipeline name.
        beam_pipeline_args: passed to every Beam-based component.
        enable_cache: reuse outputs of unchanged components.
        index: ScannIndexBuilder's settings (ANN parameters, recall threshold).
        assembly: RecommenderAssembler's settings (K, N, variants, canary).
        serving_dir: where the Pusher writes `<model_name>/<version>/` ("" =
            `serving` next to pipeline_root).
        model_name: the served model's name.
        keep_versions: pushed versions kept per model.
        transform_statistics: let Transform compute pre- and post-transform statistics
            and anomalies (TFDV; TFX's default). Off by default: StatisticsGen and the
            StrictExampleValidator already cover the same examples, and on ML-100K they
            cost Transform 91 and 94 s against 68 and 73 s without (Transform alone, two
            runs each, session 7).
        transform_materialize: let Transform write transformed examples, which the
            trainers and the Tuner then read. Off by default (TFX's `materialize=False`):
            they read BehaviorSequenceGen's raw examples and apply Transform's graph in
            their input pipeline (models/common/data.py), which removes Transform's
            second Beam pass over the training split (decode, transform, encode, write:
            B6 in the README). Turn it on to inspect the transformed examples.
        sequence_beam_args: BehaviorSequenceGen's own Beam args, after
            beam_pipeline_args. The local runner sets multi-processing here: the
            component runs alone, and it is the one data stage that may gain from a
            second process (ML-100K: 39, 46, 49 and 66 s in four runs vs 57 s in one
            process, a small and noisy gain; ExampleGens, StatisticsGen and Transform
            gained nothing or lost to the Beam workers' start-up).
        tuning: None (the default): no Tuner. A SearchSpace: TFX's Tuner runs a KerasTuner
            search over it (models/retrieval/tuner.py) and the retrieval Trainer trains
            with its best_hyperparameters.
        vertex_training: None (the default): the Trainers run in the pipeline's own
            container. A VertexTraining: each runs as a Vertex AI CustomJob of that shape
            (KFP / Vertex AI Pipelines compiles; pipeline/wiring.py), its strategy set
            to the shape's.
        item_vocabulary_size: Transform keeps the most frequent N training items; the
            others hash into the OOV buckets after them, and the run's summary counts
            them (items and positive events). None: every item.
    """

    data: DataConfig
    pipeline_root: str
    metadata_path: str = ""
    sequences: SequenceConfig = SequenceConfig()
    retrieval: RetrievalConfig = RetrievalConfig()
    retrieval_blessing: BlessingConfig = BlessingConfig()
    ranking: RankingConfig = RankingConfig()
    ranking_min_auc: float = 0.55
    ranking_auc_tolerance: float = 0.01
    train_steps: int = 0
    name: str = "recsys"
    beam_pipeline_args: tuple[str, ...] = ()
    enable_cache: bool = True
    index: IndexConfig = IndexConfig()
    assembly: AssemblyConfig = AssemblyConfig()
    serving_dir: str = ""
    model_name: str = "recommender"
    keep_versions: int = 5
    transform_statistics: bool = False
    transform_materialize: bool = False
    sequence_beam_args: tuple[str, ...] = ()
    tuning: SearchSpace | None = None
    vertex_training: VertexTraining | None = None
    item_vocabulary_size: int | None = None

    @property
    def push_dir(self) -> str:
        """The Pusher's destination root."""
        root = os.path.dirname(os.path.normpath(self.pipeline_root))
        return self.serving_dir or os.path.join(root, "serving")

    def __post_init__(self):
        if self.train_steps < 0:
            raise ValueError(f"train_steps must be >= 0, got {self.train_steps}")
        if not self.pipeline_root:
            raise ValueError("pipeline_root is empty")
        size = self.item_vocabulary_size
        if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 1):
            raise ValueError(f"item_vocabulary_size must be an int >= 1 or None, got {size!r}")
        if self.keep_versions < 1:
            raise ValueError(f"keep_versions must be >= 1, got {self.keep_versions}")
        if not self.model_name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"model_name {self.model_name!r} must be letters, digits, '-' or '_'")
        if not self.name.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"name {self.name!r} must be letters, digits, '-' or '_'")
        # one update_mode per run (and KFP parameter)
        if self.ranking.mode != self.retrieval.updates.mode:
            raise ValueError(
                f"ranking.mode {self.ranking.mode!r} must equal retrieval.updates.mode "
                f"{self.retrieval.updates.mode!r}: a run updates both models the same way"
            )
        if self.tuning is not None:
            if not isinstance(self.tuning, SearchSpace):
                raise ValueError(f"tuning must be a SearchSpace or None, got {self.tuning!r}")
            self.tuning.check(self.retrieval)


@dataclasses.dataclass(frozen=True)
class KubeflowConfig:
    """What only the Kubeflow Pipelines v2 / Vertex AI compile needs (pipeline/kubeflow_v2_runner).

    The pipeline root and the data root come from PipelineConfig (`pipeline_root`,
    `data.path`) and must be URIs the cluster reads (gs://, s3://, minio://, ...).

    Attributes:
        image: the pipeline image (deploy/Dockerfile) every executor runs.
        code_root: where the image holds this repository (on its PYTHONPATH); any
            path inside the local checkout (e.g. schemas/schema.pbtxt) is compiled
            to the same relative path under it.
        output: the IR file to write: a PipelineJob JSON (".json").
    """

    image: str = "recsys-tfx:latest"
    code_root: str = "/opt/recsys"
    output: str = ".work/kfp/recommender_pipeline.json"

    def __post_init__(self):
        if not self.image or any(c.isspace() for c in self.image):
            raise ValueError(f"kubeflow.image {self.image!r} must be a non-empty image reference")
        if not self.code_root.startswith("/"):
            raise ValueError(f"kubeflow.code_root {self.code_root!r} must be an absolute path")
        if not self.output.endswith(".json"):
            raise ValueError(f"kubeflow.output {self.output!r} must end with .json")
