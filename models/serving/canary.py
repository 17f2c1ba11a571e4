"""The canary: golden requests against the exported model, in a fresh process.

`golden_requests` builds requests from eval queries plus the edge cases a server meets
(an unknown user, an empty history, unknown history items, a history longer than the
model's window). The parent computes the expected answers with `reference.recommend`,
writes them to an .npz and runs `python -m models.serving.canary` on it: that process
loads only the exported SavedModels (with ScaNN's ops registered if needed, after every
portable model is checked), answers every request, compares, times single requests, and
writes a verdict JSON per model. One process checks all variants: TF starts once.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

from models.common.memory import release_memory
from schemas import features as F
from schemas import serving as C

_KEYS = tuple(C.REQUEST_SPEC)
SCORE_ATOL = 1e-4


def golden_requests(queries: dict, catalog_ids, count: int = 16, seed: int = 0) -> dict:
    """A batch of requests: `count` eval queries plus four edge cases (arrays [B], [B, W])."""
    total = len(queries[F.USER_ID])
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(total, size=min(count, total), replace=False))
    records = [{k: queries[k][r] for k in _KEYS} for r in rows]
    some = [str(i) for i in np.asarray(catalog_ids)[: 2 * F.HISTORY_LENGTH + 5]]
    for user, history in (
        ("__canary_unknown_user__", some[:3]),
        ("__canary_empty_history__", []),
        ("__canary_unknown_items__", ["__no_such_item_1__", "__no_such_item_2__"]),
        ("__canary_long_history__", some),
    ):
        records.append(
            {
                F.USER_ID: user,
                F.AGE: F.MISSING_INT,
                F.GENDER: F.UNKNOWN,
                F.OCCUPATION: F.UNKNOWN,
                F.TIMESTAMP: 0,
                F.HISTORY_ITEM_IDS: history,
            }
        )
    return stack(records)


def stack(records: list[dict]) -> dict:
    """Request dicts -> batch arrays: strings as bytes objects, histories padded [B, W]."""
    histories = [
        [_as_text(h) for h in r[F.HISTORY_ITEM_IDS] if _as_text(h) != b""] for r in records
    ]
    width = max([len(h) for h in histories] + [1])
    out = {F.HISTORY_ITEM_IDS: np.array([h + [b""] * (width - len(h)) for h in histories], object)}
    for key, spec in C.REQUEST_SPEC.items():
        if key != F.HISTORY_ITEM_IDS:
            values = [r[key] for r in records]
            out[key] = (
                np.array([_as_text(v) for v in values], dtype=object)
                if spec.dtype.name == "string"
                else np.array(values, dtype=np.int64)
            )
    return out


def _as_text(value) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def compare(answer: dict, expected: dict, exact: bool, min_overlap: float) -> list[str]:
    """Problems of `answer` against `expected` (both C outputs, [B, K]); [] when they agree.

    Exact search must give the same final and ranker scores in the same order and the
    same items up to ties in the final score; approximate search must share >= min_overlap
    of each row's items on average.
    """
    problems = []
    ids, want = answer[C.ITEM_IDS], expected[C.ITEM_IDS]
    if ids.shape != want.shape:
        return [f"item_ids shape {ids.shape}, expected {want.shape}"]
    overlaps = []
    for b in range(len(ids)):
        got = {x for x in ids[b] if x != b""}
        ref = {x for x in want[b] if x != b""}
        overlaps.append(len(got & ref) / max(len(ref), 1))
        if len(got) != len(ref):
            problems.append(f"request {b}: {len(got)} items returned, expected {len(ref)}")
        elif exact:
            for key in (C.FINAL_SCORES, C.SCORES):
                if not np.allclose(answer[key][b], expected[key][b], atol=SCORE_ATOL):
                    problems.append(
                        f"request {b}: {key} {answer[key][b][:3]}... expected "
                        f"{expected[key][b][:3]}..."
                    )
            final = expected[C.FINAL_SCORES][b]
            cut = final[len(ref) - 1] if ref else 0.0
            firm = {x for x, s in zip(want[b], final, strict=False) if s > cut + SCORE_ATOL}
            if not firm <= got:
                problems.append(f"request {b}: missing {sorted(firm - got)[:3]}")
    if not exact and overlaps and float(np.mean(overlaps)) < min_overlap:
        problems.append(
            f"mean overlap with the exact two-stage answer {np.mean(overlaps):.3f} < {min_overlap}"
        )
    return problems


def save_golden(path: str, requests: dict, expected: dict, exact: bool) -> None:
    """Writes requests and expected answers to an .npz the checking process reads."""
    arrays = {f"request/{k}": np.asarray(v) for k, v in requests.items()}
    arrays.update({f"expected/{k}": np.asarray(v) for k, v in expected.items()})
    np.savez(path, exact=np.array(exact), **arrays)


def check(model_dir: str, golden: str, budget_ms: float, min_overlap: float, repeats: int) -> dict:
    """Runs in the fresh process: load, answer, compare, time; returns the verdict."""
    import tensorflow as tf

    with open(os.path.join(model_dir, C.ASSETS_EXTRA, C.EXPORT_INFO)) as f:
        info = json.load(f)
    if info["variant"] == C.SCANN:
        import scann  # noqa: F401  (registers the ScaNN ops the graph uses)
    data = np.load(golden, allow_pickle=True)
    requests = {k.split("/", 1)[1]: data[k] for k in data.files if k.startswith("request/")}
    expected = {k.split("/", 1)[1]: data[k] for k in data.files if k.startswith("expected/")}
    start = time.perf_counter()
    serve = tf.saved_model.load(model_dir).signatures[C.SERVING_DEFAULT]
    load_s = time.perf_counter() - start

    def call(batch):
        inputs = {k: tf.constant(v, C.REQUEST_SPEC[k].dtype) for k, v in batch.items()}
        return {k: v.numpy() for k, v in serve(**inputs).items()}

    problems = compare(call(requests), expected, bool(data["exact"]), min_overlap)
    size = len(requests[F.USER_ID])
    times = []
    for _ in range(repeats):
        for b in range(size):
            one = {k: v[b : b + 1] for k, v in requests.items()}
            tick = time.perf_counter()
            call(one)
            times.append((time.perf_counter() - tick) * 1e3)
    p50, p99 = float(np.percentile(times, 50)), float(np.percentile(times, 99))
    if p50 > budget_ms:
        problems.append(f"single-request p50 {p50:.1f} ms over the budget of {budget_ms} ms")
    return {
        "passed": not problems,
        "problems": problems,
        "requests": size,
        "p50_ms": round(p50, 2),
        "p99_ms": round(p99, 2),
        "budget_ms": budget_ms,
        "load_s": round(load_s, 2),
        "variant": info["variant"],
    }


def run_all_in_fresh_process(
    jobs: list[tuple[str, str, str]], budget_ms: float, min_overlap: float, repeats=3
) -> list[dict]:
    """Checks several exported models in one new Python process (one TF start-up).

    Args:
        jobs: (model_dir, golden .npz, verdict .json) per model.

    Returns:
        One verdict per job, in order; a job whose verdict is missing (the process crashed)
        failed, with the process's last lines as its problem.

    Models without ScaNN ops are checked before any ScaNN model, so the ScaNN import of
    one can never hide a portable model's dependency on ScaNN's ops.
    """
    cmd = [sys.executable, "-m", "models.serving.canary"]
    for model_dir, golden, verdict in jobs:
        cmd += ["--model", model_dir, "--golden", golden, "--out", verdict]
    cmd += ["--budget-ms", str(budget_ms), "--min-overlap", str(min_overlap)]
    cmd += ["--repeats", str(repeats)]
    for _, _, verdict in jobs:
        if os.path.exists(verdict):
            os.remove(verdict)  # a stale verdict must not pass for this run's
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ))
    verdicts = []
    for _, _, verdict in jobs:
        if os.path.exists(verdict):
            with open(verdict) as f:
                verdicts.append(json.load(f))
            continue
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        problem = f"canary process failed (exit {proc.returncode}): {' | '.join(tail)}"
        verdicts.append({"passed": False, "problems": [problem]})
    return verdicts


def _variant(model_dir: str) -> str:
    """The exported variant ("" if unreadable: `check` then reports why)."""
    try:
        with open(os.path.join(model_dir, C.ASSETS_EXTRA, C.EXPORT_INFO)) as f:
            return json.load(f)["variant"]
    except (OSError, ValueError, KeyError):
        return ""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Canary check of exported combined models.")
    parser.add_argument("--model", required=True, action="append", help="repeat per model")
    parser.add_argument("--golden", required=True, action="append", help="one per --model")
    parser.add_argument("--out", required=True, action="append", help="one per --model")
    parser.add_argument("--budget-ms", type=float, default=100.0)
    parser.add_argument("--min-overlap", type=float, default=0.8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if not len(args.model) == len(args.golden) == len(args.out):
        parser.error(
            f"{len(args.model)} --model, {len(args.golden)} --golden and {len(args.out)} --out: "
            "give one --golden and one --out per --model"
        )
    jobs = zip(args.model, args.golden, args.out, strict=True)
    jobs = sorted(jobs, key=lambda job: _variant(job[0]) == C.SCANN)
    for model_dir, golden, out in jobs:
        try:
            verdict = check(model_dir, golden, args.budget_ms, args.min_overlap, args.repeats)
        except Exception as error:  # noqa: BLE001 - the verdict names it; the others still run
            verdict = {"passed": False, "problems": [f"{type(error).__name__}: {error}"]}
        with open(out + ".tmp", "w") as f:
            json.dump(verdict, f, indent=2)
        os.replace(out + ".tmp", out)
        release_memory()  # the next model loads into the pages this one freed
    return 0


if __name__ == "__main__":
    sys.exit(main())
