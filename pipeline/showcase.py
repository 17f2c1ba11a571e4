"""What the pushed model recommends: top-K with titles for a few users, read from the
served directory itself (the newest version), as a TF Serving client would see it."""

from __future__ import annotations

import os

import numpy as np

from components.versioned_pusher import push
from models.serving import export
from schemas import features as F
from schemas import serving as C

GOLDEN = "canary_portable.npz"  # the assembler's golden requests (real eval users first)


def latest_version_dir(model_base: str) -> str | None:
    """<model_base>/<newest version>, or None when nothing was pushed."""
    versions = push.versions(model_base)
    return os.path.join(model_base, str(versions[-1])) if versions else None


def sample_requests(assembled_uri: str, users: int) -> dict:
    """The first `users` golden requests of the RecommenderAssembler's output."""
    data = np.load(os.path.join(assembled_uri, GOLDEN), allow_pickle=True)
    prefix = "request/"
    return {k[len(prefix) :]: data[k][:users] for k in data.files if k.startswith(prefix)}


def recommend(model_dir: str, requests: dict) -> list[dict]:
    """Calls serving_default of the SavedModel at model_dir; one dict per request."""
    import tensorflow as tf

    serve = tf.saved_model.load(model_dir).signatures[C.SERVING_DEFAULT]
    inputs = {k: tf.constant(requests[k], spec.dtype) for k, spec in C.REQUEST_SPEC.items()}
    out = {k: v.numpy() for k, v in serve(**inputs).items()}
    titles = export.read_titles(model_dir)
    text = lambda v: v.decode() if isinstance(v, bytes) else str(v)
    answers = []
    for row, user in enumerate(requests[F.USER_ID]):
        history = [text(h) for h in requests[F.HISTORY_ITEM_IDS][row] if text(h)]
        items = [
            (text(i), titles.get(text(i), ""), float(f), float(p))
            for i, f, p in zip(
                out[C.ITEM_IDS][row], out[C.FINAL_SCORES][row], out[C.SCORES][row], strict=True
            )
            if text(i)
        ]
        answers.append({"user_id": text(user), "history": history, "items": items})
    return answers


def render(answers: list[dict], model_dir: str, titles_of_history: dict | None = None) -> str:
    """A short text block: per user, the last history items and the ranked top-K."""
    lines = [f"Recommendations from the pushed model {model_dir}:"]
    for answer in answers:
        recent = answer["history"][-3:]
        shown = ", ".join((titles_of_history or {}).get(h, h) for h in recent) or "(none)"
        lines.append(f"  user {answer['user_id']}  (recently: {shown})")
        for rank, (item, title, final, ranker) in enumerate(answer["items"], 1):
            lines.append(
                f"    {rank:2d}. {title or item}  [{item}]  final {final:.2f} (ranker {ranker:.3f})"
            )
    return "\n".join(lines)


def show(model_base: str, assembled_uri: str, users: int = 3) -> str:
    """The rendered top-K of `users` users from the newest pushed version ('' if none)."""
    model_dir = latest_version_dir(model_base)
    if model_dir is None or not os.path.exists(os.path.join(assembled_uri, GOLDEN)):
        return ""
    answers = recommend(model_dir, sample_requests(assembled_uri, users))
    return render(answers, model_dir, export.read_titles(model_dir))
