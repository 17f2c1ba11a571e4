"""A short, readable summary of the latest pipeline run, read from MLMD."""

from __future__ import annotations

import glob
import json
import os

from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline.config import PipelineConfig
from schemas import features as F

STATES = {v: k for k, v in metadata_store_pb2.Execution.State.items()}
SEQUENCE_NODE, TRANSFORM_NODE = "BehaviorSequenceGen", "Transform"
RETRIEVAL_EVALUATOR, RANKING_EVALUATOR = "retrieval_evaluator", "ranking_evaluator"
INDEX_BUILDER, ASSEMBLER, PUSHER = "ScannIndexBuilder", "RecommenderAssembler", "Pusher"
# component -> (summary key, the JSON file its output holds)
SERVING_REPORTS = {
    INDEX_BUILDER: ("index", "index/metrics.json"),
    ASSEMBLER: ("assembly", "assembly.json"),
    PUSHER: ("push", "push.json"),
}
BASELINE_LOADER, BASELINE_KEY = "BaselineLoader", "baseline"  # per-family baseline status
COUNT_KEYS = ("events_read", "users", "catalog_items", "train_examples", "eval_examples")


def _store(config: PipelineConfig) -> metadata_store.MetadataStore:
    conn = metadata_store_pb2.ConnectionConfig()
    conn.sqlite.filename_uri = config.metadata_path
    conn.sqlite.connection_mode = metadata_store_pb2.SqliteMetadataSourceConfig.READONLY
    return metadata_store.MetadataStore(conn)


def _latest_run_executions(store) -> dict[str, metadata_store_pb2.Execution]:
    """Node id -> its execution in the most recent pipeline run."""
    runs = store.get_contexts_by_type("pipeline_run")
    if not runs:
        return {}
    latest = max(runs, key=lambda c: c.create_time_since_epoch)
    run_ids = {e.id for e in store.get_executions_by_context(latest.id)}
    result = {}
    for node in store.get_contexts_by_type("node"):
        for execution in store.get_executions_by_context(node.id):
            if execution.id in run_ids:
                result[node.name.split(".", 1)[-1]] = execution
    return result


def _outputs(store, execution) -> list[metadata_store_pb2.Artifact]:
    events = store.get_events_by_execution_ids([execution.id])
    ids = [e.artifact_id for e in events if e.type == metadata_store_pb2.Event.OUTPUT]
    return store.get_artifacts_by_id(ids)


def collect(config: PipelineConfig) -> dict:
    """Per-component state and seconds, the data counts and drops, vocabulary size."""
    store = _store(config)
    runs = _latest_run_executions(store)
    summary = {"components": {}, "counts": {}, "drops": {}}
    for node, ex in sorted(runs.items(), key=lambda kv: kv[1].create_time_since_epoch):
        seconds = (ex.last_update_time_since_epoch - ex.create_time_since_epoch) / 1000
        summary["components"][node] = {
            "state": STATES[ex.last_known_state],
            "seconds": round(seconds, 1),
        }
    if SEQUENCE_NODE in runs:
        for artifact in _outputs(store, runs[SEQUENCE_NODE]):
            report_path = os.path.join(artifact.uri, "report.json")
            if os.path.exists(report_path):
                report = json.load(open(report_path))
                summary["counts"] = {k: report.get(k, 0) for k in COUNT_KEYS}
                summary["drops"] = {k: v for k, v in report.items() if k not in COUNT_KEYS}
    if TRANSFORM_NODE in runs:
        summary["vocabularies"] = _vocabulary_sizes(store, runs[TRANSFORM_NODE])
    if RETRIEVAL_EVALUATOR in runs:
        for artifact in _outputs(store, runs[RETRIEVAL_EVALUATOR]):
            path = os.path.join(artifact.uri, "metrics.json")
            if os.path.exists(path):
                metrics = json.load(open(path))
                summary["retrieval"] = {
                    "metrics": metrics["model"],
                    "blessed": metrics["blessed"],
                    "reasons": metrics.get("reasons", []),
                    "plot": os.path.join(artifact.uri, "recall_at_k.png"),
                }
    if RANKING_EVALUATOR in runs:
        summary["ranking"] = _ranking_metrics(store, runs[RANKING_EVALUATOR])
    if BASELINE_LOADER in runs:
        summary["baselines"] = sorted(  # a list: the summary is written as JSON
            a.custom_properties[BASELINE_KEY].string_value
            for a in _outputs(store, runs[BASELINE_LOADER])
            if BASELINE_KEY in a.custom_properties
        )
    for node, (key, name) in SERVING_REPORTS.items():
        for artifact in _outputs(store, runs[node]) if node in runs else []:
            path = os.path.join(artifact.uri, name)
            if os.path.exists(path) and key not in summary:
                summary[key] = json.load(open(path)) | {"uri": artifact.uri}
    return summary


def _ranking_metrics(store, execution) -> dict:
    """Overall-slice AUC / LogLoss / GAUC and the blessing of TFMA's Evaluator."""
    import tensorflow_model_analysis as tfma  # heavy: only when the Evaluator ran

    result = {}
    for artifact in _outputs(store, execution):
        if os.path.exists(os.path.join(artifact.uri, "BLESSED")):
            result["blessed"] = True
        elif os.path.exists(os.path.join(artifact.uri, "NOT_BLESSED")):
            result["blessed"] = False
        elif glob.glob(os.path.join(artifact.uri, "metrics*")):
            for metrics in tfma.load_metrics(artifact.uri):
                if not metrics.slice_key.single_slice_keys:  # the overall slice
                    result["metrics"] = _flatten_tfma(metrics)
    return result


def _flatten_tfma(metrics) -> dict:
    out = {}
    for key in metrics.metric_keys_and_values:
        if key.key.model_name and key.key.is_diff:
            continue
        value = key.value
        if value.HasField("double_value"):
            name = key.key.name + ("_baseline" if key.key.model_name == "baseline" else "")
            out[name] = value.double_value.value
    return out


def _vocabulary_sizes(store, execution) -> dict[str, int]:
    import tensorflow_transform as tft  # heavy: only when Transform ran

    from models.common.data import item_oov_report

    for artifact in _outputs(store, execution):
        if os.path.exists(os.path.join(artifact.uri, "transform_fn")):
            out = tft.TFTransformOutput(artifact.uri)
            sizes = {
                name: out.vocabulary_size_by_name(name)
                for name in (F.ITEM_VOCAB, F.USER_VOCAB, F.GENRE_VOCAB)
            }
            return {**sizes, "item_oov": item_oov_report(out)}
    return {}


def render(summary: dict, config: PipelineConfig) -> str:
    """The summary as a few lines of text."""
    lines = [
        f"Pipeline '{config.name}' on {config.data.source} ({config.data.path})",
        "",
        f"  {'component':<34}{'state':<10}{'seconds':>8}",
    ]
    for node, info in summary["components"].items():
        lines.append(f"  {node:<34}{info['state']:<10}{info['seconds']:>8.1f}")
    total = sum(i["seconds"] for i in summary["components"].values())
    lines.append(f"  {'total':<44}{total:>8.1f}")
    c = summary["counts"]
    if c:
        lines += [
            "",
            f"  events read {c['events_read']:,} · users {c['users']:,} · "
            f"catalog items {c['catalog_items']:,}",
            f"  sequence examples: train {c['train_examples']:,} · "
            f"eval {c['eval_examples']:,} (with sampled negatives)",
        ]
        drops = ", ".join(f"{k} {v:,}" for k, v in summary["drops"].items()) or "none"
        lines.append(f"  dropped or noted: {drops}")
    validator = summary["components"].get("StrictExampleValidator", {}).get("state")
    lines.append(f"  anomalies: {'none' if validator in ('COMPLETE', 'CACHED') else 'see above'}")
    if summary.get("vocabularies"):
        v = summary["vocabularies"]
        lines.append(
            f"  vocabularies: items {v[F.ITEM_VOCAB]:,} (+{F.ITEM_OOV_BUCKETS} OOV), "
            f"users {v[F.USER_VOCAB]:,}, genres {v[F.GENRE_VOCAB]:,}"
        )
        oov = v.get("item_oov") or {}
        if oov.get("items_beyond"):
            share = oov["positive_events_beyond"] / max(oov["positive_events"], 1)
            lines.append(
                f"  items beyond the item vocabulary: {oov['items_beyond']:,} items, "
                f"{oov['positive_events_beyond']:,} positive train events ({share:.1%}) "
                f"share its {oov['oov_buckets']} OOV buckets"
            )
    for status in sorted(summary.get("baselines", ())):
        lines.append(f"  baseline: {status}")
    if summary.get("retrieval"):
        r = summary["retrieval"]
        m = r["metrics"]
        verdict = "blessed" if r["blessed"] else "NOT blessed: " + "; ".join(r["reasons"])
        lines.append(
            f"  retrieval (exact search, {m.get('num_queries', '?')} eval users): "
            f"HR@10 {m['hr@10']:.3f} · NDCG@10 {m['ndcg@10']:.3f} · "
            f"HR@100 {m['hr@100']:.3f} · coverage@10 {m['coverage@10']:.3f} · {verdict}"
        )
        lines.append(f"  recall@K curve: {r['plot']}")
    if summary.get("ranking", {}).get("metrics"):
        r = summary["ranking"]
        m = r["metrics"]
        verdict = "blessed" if r.get("blessed") else "NOT blessed (see the Evaluator's output)"
        lines.append(
            f"  ranking (eval examples): AUC {m.get('auc', float('nan')):.3f} · "
            f"LogLoss {m.get('binary_crossentropy', float('nan')):.3f} · "
            f"GAUC {m.get('gauc', float('nan')):.3f} · {verdict}"
        )
    lines += _serving_lines(summary)
    lines.append(f"  artifacts: {config.pipeline_root}")
    return "\n".join(lines)


def _serving_lines(summary: dict) -> list[str]:
    """Index recall and latency, canary verdicts, and the push decision."""
    lines = []
    if summary.get("index"):
        m = summary["index"]
        p50 = m.get("latency", {}).get("scann", {}).get("p50_ms", float("nan"))
        recall = m.get("recall@10", float("nan"))
        lines.append(
            f"  index ({m.get('search', 'ScaNN')}): recall@10 {recall:.3f} · single-query p50 "
            f"{p50:.2f} ms · {'blessed' if m.get('blessed') else 'NOT blessed'}"
        )
    for variant, v in summary.get("assembly", {}).get("variants", {}).items():
        verdict = "passed" if v.get("passed") else "FAILED: " + "; ".join(v.get("problems", []))
        lines.append(
            f"  canary {variant}: {v.get('requests', '?')} golden requests, "
            f"p50 {v.get('p50_ms', float('nan')):.1f} ms (budget {v.get('budget_ms', '?')} ms)"
            f" · {verdict}"
        )
    if summary.get("push"):
        p = summary["push"]
        if p.get("pushed"):
            lines.append(f"  pushed version {p['version']}: {p['destinations']}")
        else:
            lines.append("  NOT pushed: " + "; ".join(p.get("refused_because", [])))
    return lines
