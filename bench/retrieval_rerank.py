"""How the served model should turn its two scores into one order, on the B1 *validation* split.

The served model returns, for each of the two-tower's top-100 candidates, the DIN ranker's
probability p and the retrieval score r (query . item). Its order today is the final score
log(p) + r / temperature (AssemblyConfig.retrieval_weight's default). This harness trains
the two-tower once and a DIN ranker per `--ranking` variant (RankingConfig overrides),
exports the combined model, queries it once per variant, and ranks each query's
candidates by every rule of `RULES` offline: the ranker's log-probability or its logit,
plus w * r / temperature, plus a * log q(i), where q is the ranker's negative-sampling
distribution (count ** 0.75, BehaviorSequenceGen's default): a classifier trained against
negatives drawn from q learns log P(i | user) - log q(i), so + log q(i) undoes that bias.

    python -m bench.retrieval_rerank --dataset synthetic \\
        --ranking 'default={}' --ranking 'reg={"epochs": 2, "mba_lambda": 0.1}'

A variant may train DIN against negatives from the retrieval stage (issue 18 lever 4):
`"retrieved_negatives_path": "RETRIEVED"` stands for a TSV of each validation user's
two-tower top 100 (the user's training items excluded), which this harness writes.

    python -m bench.retrieval_rerank --dataset ml-100k --ranking 'default={}' \
        --ranking 'retrieved50={"retrieved_negatives_path": "RETRIEVED"}'

It never reads the test split. Figures go to stdout and, with --out, to JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

import numpy as np

WEIGHTS = (0.0, 1.0, 2.0, 4.0)  # w: multiples of 1 / temperature on the retrieval score
LOG_Q = (0.0, 1.0)  # a: weight of log q(i)
NEGATIVE_POWER = 0.75  # SequenceConfig.negative_power's default
RETRIEVED = "RETRIEVED"  # a variant's stand-in for the harness's retrieved-items TSV


@dataclasses.dataclass(frozen=True)
class Candidates:
    """The served model's candidates of Q queries, C per query.

    Attributes:
        items: [Q, C] catalog indices, -1 where the slot is empty or the item is one of the
            query's B1 exclusions (never its target).
        probs: [Q, C] ranker probabilities.
        retrieval: [Q, C] retrieval scores (query . item).
        final: [Q, C] the served model's own final scores (None: not read).
    """

    items: np.ndarray
    probs: np.ndarray
    retrieval: np.ndarray
    final: np.ndarray | None = None


def rule_name(ranker: str, w: float, a: float) -> str:
    return f"{ranker}+{w:g}r/T+{a:g}logq"


def rank_by_rules(
    cands: Candidates,
    temperature: float,
    log_q: np.ndarray,
    weights=WEIGHTS,
    log_qs=LOG_Q,
    prior: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """{rule: top lists [Q, C] (catalog indices, -1 last)} of every rule.

    A rule scores a candidate s = ranker + w * r / temperature + a * log_q[item], with
    ranker = log(p) ("logp") or log(p / (1 - p)) ("logit"); plus the retrieval order
    alone ("retrieval"), the ranker alone ("ranker_logp") and, when the candidates carry
    them, the served model's own final scores ("served"). Ties keep the served order.
    With `prior` ([V] per catalog index: the retrieval model's popularity prior, part of
    r), the logp rules are repeated with r - prior[item], named "...+w(r-prior)/T...":
    the prior then chooses the candidates but leaves the final order.
    """
    p = np.clip(cands.probs.astype(np.float64), 1e-30, 1 - 1e-12)
    ranker = {"logp": np.log(p), "logit": np.log(p) - np.log1p(-p)}
    valid = cands.items >= 0
    q = log_q[np.maximum(cands.items, 0)]
    r = cands.retrieval.astype(np.float64) / temperature
    scores = {"retrieval": r, "ranker_logp": ranker["logp"]}
    if cands.final is not None:
        scores["served"] = cands.final.astype(np.float64)
    for name, base in ranker.items():
        for w in weights:
            for a in log_qs:
                scores[rule_name(name, w, a)] = base + w * r + a * q
    if prior is not None:
        bare = r - prior[np.maximum(cands.items, 0)] / temperature
        for w in weights:
            for a in log_qs:
                rule = rule_name("logp", w, a).replace("r/T", "(r-prior)/T")
                scores[rule] = ranker["logp"] + w * bare + a * q
    out = {}
    for name, s in scores.items():
        order = np.argsort(-np.where(valid, s, -np.inf), axis=1, kind="stable")
        top = np.take_along_axis(cands.items, order, axis=1)
        out[name] = np.where(np.take_along_axis(valid, order, axis=1), top, -1)
    return out


def retrieval_prior(retrieval_dir: str, item_ids) -> np.ndarray | None:
    """The retrieval model's popularity prior beta * log(1 + n) per catalog index [V]
    (its item embeddings' last column times the query's beta / s), or None without one."""
    from models.retrieval import export

    value = export.prior_query_value(retrieval_dir)
    if value is None:
        return None
    npz = np.load(export.item_embeddings_path(retrieval_dir))
    column = dict(zip(npz["ids"].tolist(), npz["embeddings"][:, -1].tolist(), strict=True))
    return np.array([column.get(str(i), 0.0) for i in item_ids], np.float64) * value


def negative_log_q(counts: np.ndarray, power: float = NEGATIVE_POWER) -> np.ndarray:
    """log of the ranker's negative-sampling distribution count ** power (unseen: floor)."""
    weights = np.maximum(np.asarray(counts, np.float64), 1e-9) ** power
    return np.log(weights / weights.sum())


def served_candidates(signature, split, batch: int = 128) -> Candidates:
    """Queries serving_default with the split's requests; every returned candidate's scores."""
    from bench.retrieval_served import call_batched
    from schemas import serving as C

    keys = (C.ITEM_IDS, C.SCORES, C.RETRIEVAL_SCORES, C.FINAL_SCORES)
    out = call_batched(signature, split.data.queries, keys, batch)
    ids, probs, retrieval, final = (out[k] for k in keys)
    index = {item: i for i, item in enumerate(split.item_ids)}
    items = np.full(ids.shape, -1, np.int64)
    for q, row in enumerate(ids):
        excluded = set(split.data.exclude[q]) - {split.data.targets[q]}
        for c, raw in enumerate(row):
            item = index.get(raw.decode() if isinstance(raw, bytes) else raw, -1)
            items[q, c] = -1 if item in excluded else item
    return Candidates(items=items, probs=probs, retrieval=retrieval, final=final)


def main(argv=None) -> int:
    from bench import retrieval as B
    from bench import retrieval_served as V
    from bench import retrieval_systems as S
    from models.retrieval.config import RetrievalConfig

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    B.add_validation_args(p, "synthetic")
    p.add_argument("--ranking", action="append", default=[], help='name={"k": v, ...}')
    p.add_argument("--seed", type=int, default=0, help="the trainers' seed (B1's --seeds)")
    p.add_argument("--retrieval", default="{}", help='RetrievalConfig overrides, {"k": v}')
    p.add_argument("--weights", type=_floats, default=WEIGHTS, help="w grid, e.g. 0.5,1,2")
    p.add_argument("--log-q", type=_floats, default=LOG_Q, help="a grid, e.g. 0,0.5,1")
    p.add_argument("--out", help="also write the results as JSON here")
    args = p.parse_args(argv)
    variants = {}
    for spec in args.ranking or ["default={}"]:
        name, _, overrides = spec.partition("=")
        variants[name] = json.loads(overrides or "{}")
    config = RetrievalConfig().with_overrides(seed=args.seed, **json.loads(args.retrieval))
    data = B.validation_split(args)
    validation, graph, out_dir = data.split, data.graph, data.out_dir
    work = os.path.join(out_dir, f"rerank-{os.getpid()}-seed-{args.seed}")
    top, _ = S.two_tower(config, graph, work)(validation)
    retrieved = write_retrieved(top, validation, os.path.join(work, "retrieved.tsv"))
    x, _ = validation.interactions(False)
    log_q = negative_log_q(np.asarray(x.sum(axis=0)).ravel())
    results = {"two_tower_exact": _metrics(top, validation)}
    prior = retrieval_prior(S.two_tower_dir(work, validation.name), validation.item_ids)
    for name, overrides in variants.items():
        import tensorflow as tf

        from schemas import serving as C

        print(f"=== ranker {name}: {overrides}", flush=True)
        ranking = {k: (retrieved if v == RETRIEVED else v) for k, v in overrides.items()}
        models = V.ServedModels(
            graph,
            data.root,
            work,
            seed=config.training.seed,
            ranking=ranking,
            sequences=data.sequences,
        )
        export_dir, extras = models.export(validation, "portable")
        signature = tf.saved_model.load(export_dir).signatures[C.SERVING_DEFAULT]
        cands = served_candidates(signature, validation)
        rules = rank_by_rules(
            cands, config.tower.temperature, log_q, args.weights, args.log_q, prior
        )
        results[name] = {
            "overrides": overrides,
            "din_eval": extras["din_eval"],
            "rules": {rule: _metrics(t, validation) for rule, t in rules.items()},
        }
    print(f"\nvalidation split of {args.dataset} ({len(validation.query_users)} queries)")
    print(table(results))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)
    return 0


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 0,0.5,1, got {text!r}") from None


def write_retrieved(top: np.ndarray, split, path: str) -> str:
    """Writes each query user's retrieved items (`top` [Q, K] catalog indices, -1 empty)
    as the HardNegativeMiner's TSV, which `RankingConfig.retrieved_negatives_path`
    reads; returns `path`."""
    from bench import retrieval_systems as S
    from components.hard_negative_miner import mining

    rows = [[int(i) for i in row if i >= 0] for row in top]
    lists = mining.negatives_by_user(S.query_users(split.data), rows, split.item_ids)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    mining.write_atomic(path, mining.format_tsv(lists))
    return path


def _metrics(top: np.ndarray, split) -> dict:
    from bench import retrieval_systems as S

    padded = np.full((len(top), S.TOP_K), -1, np.int64)
    padded[:, : min(S.TOP_K, top.shape[1])] = top[:, : S.TOP_K]
    m = S.evaluate_top(padded, split.data.targets, len(split.item_ids))["metrics"]
    return {k: round(float(m[k]), 4) for k in ("hr@10", "ndcg@10")}


def table(results: dict) -> str:
    base = results["two_tower_exact"]
    lines = [f"two-tower, exact: HR@10 {base['hr@10']:.4f}  NDCG@10 {base['ndcg@10']:.4f}"]
    for name, r in results.items():
        if name == "two_tower_exact":
            continue
        auc = r["din_eval"].get("auc")
        lines.append(f"ranker {name} {json.dumps(r['overrides'])}  eval AUC {auc}")
        for rule, m in r["rules"].items():
            lines.append(f"  {rule:<24} HR@10 {m['hr@10']:.4f}  NDCG@10 {m['ndcg@10']:.4f}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
