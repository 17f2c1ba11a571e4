"""The local MLMD store of pipeline/kfp_local.py, and KFP filter -> MLMD filter query.

KFP / Vertex AI resolver filters look like `schema_title="tfx.File" AND state=LIVE
AND metadata.blessed.number_value=1`; ML Metadata's filter query says `type =
"tfx.File" AND state = LIVE AND custom_properties.blessed.double_value = 1.0`.
Artifacts are stored with their schema title as MLMD type name and their KFP
metadata as custom properties (numbers as doubles, as KFP's number_value).
"""

from __future__ import annotations

import json
import os
import re

import yaml
from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2 as M

_CLAUSES = [  # KFP / Vertex filter clause -> MLMD filter clause
    (re.compile(r'^schema_title="([^"]+)"$'), lambda m: f'type = "{m[1]}"'),
    (re.compile(r"^state=(\w+)$"), lambda m: f"state = {m[1]}"),
    (re.compile(r'^name="([^"]*)"$'), lambda m: f'name = "{m[1]}"'),
    (
        re.compile(r"^metadata\.(\w+)\.number_value=([-0-9.eE]+)$"),
        lambda m: f"custom_properties.{m[1]}.double_value = {float(m[2])}",
    ),
    (
        re.compile(r'^metadata\.(\w+)\.string_value="([^"]*)"$'),
        lambda m: f'custom_properties.{m[1]}.string_value = "{m[2]}"',
    ),
]
_PLACEHOLDER = re.compile(r"\{\{\$\.inputs\.artifacts\['(\w+)'\]\.metadata\['(\w+)'\]\}\}")


def mlmd_filter(kfp_filter: str, inputs: dict | None = None) -> str:
    """A KFP resolver filter ('A AND B ...') as an MLMD filter query.

    `{{$.inputs.artifacts['k'].metadata['m']}}` placeholders are filled from `inputs`
    ({key: [artifact dict]}) first.

    Raises:
        ValueError: a clause this translation does not know (named in the message).
    """

    def fill(m):
        artifacts = (inputs or {}).get(m[1]) or [{}]
        return str(artifacts[0].get("metadata", {}).get(m[2], ""))

    clauses = []
    for clause in _PLACEHOLDER.sub(fill, kfp_filter).split(" AND "):
        for pattern, build in _CLAUSES:
            match = pattern.match(clause.strip())
            if match:
                clauses.append(build(match))
                break
        else:
            raise ValueError(f"resolver filter {kfp_filter!r}: unknown clause {clause!r}")
    return " AND ".join(clauses)


def _to_mlmd(value: M.Value, v) -> None:
    """KFP metadata value -> MLMD Value: numbers as double (KFP's number_value), strings as
    strings, anything else as its JSON text."""
    if isinstance(v, int | float) and not isinstance(v, bool):
        value.double_value = float(v)
    elif isinstance(v, str):
        value.string_value = v
    else:
        value.string_value = json.dumps(v)


def _from_mlmd(value: M.Value):
    kind = value.WhichOneof("value")
    return value.double_value if kind == "double_value" else getattr(value, kind or "string_value")


def schema_title(artifact_type: dict) -> str:
    """The title of an IR artifactType ({schemaTitle} or {instanceSchema: YAML})."""
    if "schemaTitle" in artifact_type:
        return artifact_type["schemaTitle"]
    return yaml.safe_load(artifact_type["instanceSchema"]).get("title", "tfx.Artifact")


def dependencies(tasks: dict) -> dict[str, set[str]]:
    """{task: the tasks it depends on (dependentTasks and its inputs' producers)}.

    Raises:
        ValueError: a dependency on an unknown task.
    """
    needs = {}
    for name, task in tasks.items():
        deps = set(task.get("dependentTasks", []))
        for spec in task.get("inputs", {}).get("artifacts", {}).values():
            deps.add(spec["taskOutputArtifact"]["producerTask"])
        unknown = deps - set(tasks)
        if unknown:
            raise ValueError(f"task {name} depends on unknown tasks {sorted(unknown)}")
        needs[name] = deps
    return needs


def dag_order(tasks: dict) -> list[str]:
    """Task names so that every task comes after the tasks it depends on.

    Raises:
        ValueError: a dependency on an unknown task, or a cycle.
    """
    needs = dependencies(tasks)
    order, done = [], set()
    while len(order) < len(tasks):
        ready = sorted(n for n in tasks if n not in done and needs[n] <= done)
        if not ready:
            raise ValueError(f"the DAG has a cycle among {sorted(set(tasks) - done)}")
        order += ready
        done.update(ready)
    return order


class Store:
    """The local MLMD store: artifacts by schema title, one context per run."""

    def __init__(self, path: str):
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        config = M.ConnectionConfig()
        config.sqlite.filename_uri = path
        config.sqlite.connection_mode = M.SqliteMetadataSourceConfig.READWRITE_OPENCREATE
        self.mlmd = metadata_store.MetadataStore(config)
        self._types: dict[str, int] = {}

    def _type_id(self, kind, name: str) -> int:
        key = f"{kind.__name__}:{name}"
        if key not in self._types:
            put = {
                M.ArtifactType: self.mlmd.put_artifact_type,
                M.ExecutionType: self.mlmd.put_execution_type,
                M.ContextType: self.mlmd.put_context_type,
            }[kind]
            self._types[key] = put(kind(name=name))
        return self._types[key]

    def run_context(self, run_id: str) -> M.Context:
        context = M.Context(type_id=self._type_id(M.ContextType, "kfp_local.run"), name=run_id)
        [context.id] = self.mlmd.put_contexts([context])
        return context

    def newest(self, kfp_filter: str, inputs: dict) -> list[dict]:
        """[the newest artifact matching the filter] or []."""
        options = metadata_store.ListOptions(
            limit=1,
            order_by=metadata_store.OrderByField.ID,
            is_asc=False,
            filter_query=mlmd_filter(kfp_filter, inputs),
        )
        found = self.mlmd.get_artifacts(list_options=options)
        return [self._as_runtime(a) for a in found]

    def _as_runtime(self, artifact: M.Artifact) -> dict:
        [kind] = self.mlmd.get_artifact_types_by_id([artifact.type_id])
        metadata = {k: _from_mlmd(v) for k, v in artifact.custom_properties.items()}
        return {
            "name": artifact.name,
            "uri": artifact.uri,
            "metadata": metadata,
            "type": {"schemaTitle": kind.name},
            "id": artifact.id,
        }

    def record(self, context, task: str, inputs: dict, outputs: dict) -> None:
        """Puts the task's execution, its outputs (LIVE) and the input/output events."""
        pairs = []
        for key, artifacts in inputs.items():
            for a in artifacts:
                event = M.Event(type=M.Event.INPUT)
                event.path.steps.add().key = key
                pairs.append((M.Artifact(id=a["id"]), event))
        for key, artifacts in outputs.items():
            for a in artifacts:
                title = schema_title(a["type"])
                mlmd = M.Artifact(type_id=self._type_id(M.ArtifactType, title), uri=a["uri"])
                mlmd.name, mlmd.state = a["name"], M.Artifact.LIVE
                for k, v in a.get("metadata", {}).items():
                    _to_mlmd(mlmd.custom_properties[k], v)
                event = M.Event(type=M.Event.OUTPUT)
                event.path.steps.add().key = key
                pairs.append((mlmd, event))
        execution = M.Execution(
            type_id=self._type_id(M.ExecutionType, "kfp_local.task"),
            name=f"{context.name}/{task}",
            last_known_state=M.Execution.COMPLETE,
        )
        _, artifact_ids, _ = self.mlmd.put_execution(execution, pairs, [context])
        out = [a for arts in outputs.values() for a in arts]
        for a, artifact_id in zip(out, artifact_ids[len(artifact_ids) - len(out) :], strict=True):
            a["id"] = artifact_id
