"""The query CLI against the server, through the official stubs."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from schemas import features as F
from serving import client
from tests.serving.conftest import MODEL


def _run(capsys, running, *args) -> tuple[int, str, str]:
    argv = [
        "query",
        "--host",
        "127.0.0.1",
        "--port",
        str(running.port),
        "--model-name",
        MODEL,
        "--model-base-path",
        running.base_path,
        "--user",
        "u1",
        "--age",
        "30",
        *args,
    ]
    code = client.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _in_process(running, signature: str, **extra) -> dict:
    fn = tf.saved_model.load(os.path.join(running.base_path, "2")).signatures[signature]
    inputs = {
        F.USER_ID: np.array([b"u1"], object),
        F.AGE: np.array([30]),
        F.GENDER: np.array([F.UNKNOWN.encode()], object),
        F.OCCUPATION: np.array([F.UNKNOWN.encode()], object),
        F.TIMESTAMP: np.array([5]),
        F.HISTORY_ITEM_IDS: np.array([[b"i1", b"i2"]], object),
        F.HISTORY_GENRES: np.array([[F.UNKNOWN.encode()] * 2], object),
        **extra,
    }
    return {k: v.numpy()[0] for k, v in fn(**inputs).items()}


def test_query_json_with_titles_from_the_pushed_model(serve, capsys):
    running = serve((2,))
    code, out, _ = _run(
        capsys, running, "--history", "i1", "i2", "-k", "3", "--timestamp", "5", "--json"
    )
    assert code == 0
    result = json.loads(out)
    want = _in_process(running, "serving_default")
    assert result["version"] == 2 and result["signature"] == "serving_default"
    assert [i["item_id"] for i in result["items"]] == [x.decode() for x in want["item_ids"][:3]]
    np.testing.assert_allclose([i["score"] for i in result["items"]], want["scores"][:3], 1e-6)
    np.testing.assert_allclose(
        [i["retrieval_score"] for i in result["items"]], want["retrieval_scores"][:3], 1e-6
    )
    assert result["items"][0]["title"] == f"Title of {result['items'][0]['item_id']}"


def test_query_rank_and_retrieve_table(serve, capsys, tmp_path):
    running = serve((2,))
    catalog = tmp_path / "items.tsv"
    catalog.write_text("i5\tFive\tComedy|Drama\ni7\tSeven\n")
    code, out, _ = _run(
        capsys,
        running,
        "--history",
        "i1",
        "i2",
        "--signature",
        "rank",
        "--candidates",
        "i5",
        "i7",
        "i9",
        "--catalog",
        str(catalog),
        "--json",
        "--timestamp",
        "5",
    )
    assert code == 0
    scores = _in_process(running, "rank", item_id=np.array([[b"i5", b"i7", b"i9"]], object))
    order = np.argsort(-scores["scores"], kind="stable")
    items = json.loads(out)["items"]
    assert [i["item_id"] for i in items] == [["i5", "i7", "i9"][n] for n in order]
    assert {i["item_id"]: i["title"] for i in items} == {"i5": "Five", "i7": "Seven", "i9": ""}
    code, out, _ = _run(capsys, running, "--history", "i1", "--signature", "retrieve", "-k", "4")
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].startswith(f"{MODEL} v2 (retrieve) for user u1, history of 1 items")
    assert len(lines) == 2 + 4 and "Title of" in lines[2]


def test_query_errors(serve, capsys):
    running = serve((2,))
    code, _, err = _run(capsys, running, "--model-name", "nope", "--history", "i1")
    assert code == 1 and "NOT_FOUND" in err


def test_build_request_follows_the_signature_def():
    from tensorflow.core.protobuf import meta_graph_pb2

    sig = meta_graph_pb2.SignatureDef()
    for key, dtype, rank in [
        (F.USER_ID, tf.string, 1),
        (F.AGE, tf.int64, 1),
        (F.HISTORY_ITEM_IDS, tf.string, 2),
        ("candidates", tf.string, 2),
    ]:
        info = sig.inputs[key]
        info.dtype = dtype.as_datatype_enum
        info.tensor_shape.dim.extend([info.tensor_shape.Dim(size=-1)] * rank)
    args = client.parse_args(
        [
            "query",
            "--user",
            "7",
            "--history",
            "a",
            "b",
            "--age",
            "31",
            "--signature",
            "rank",
            "--candidates",
            "x",
            "y",
            "z",
        ]
    )
    request = client.build_request(sig, MODEL, "rank", client.input_values(args, {}))
    got = {k: tf.make_ndarray(v).tolist() for k, v in request.inputs.items()}
    assert got == {
        F.USER_ID: [b"7"],
        F.AGE: [31],
        F.HISTORY_ITEM_IDS: [[b"a", b"b"]],
        "candidates": [[b"x", b"y", b"z"]],
    }
    outputs = {"scores": np.array([[0.1, 0.9, 0.5]], np.float32)}
    items = client.ranked_items(outputs, ["x", "y", "z"], 2, {"y": ("Why", "Drama")})
    assert items == [
        {"item_id": "y", "title": "Why", "score": pytest.approx(0.9)},
        {"item_id": "z", "title": "", "score": pytest.approx(0.5)},
    ]
    padded = {"item_ids": np.array([[b"q", b""]], object), "scores": np.array([[0.3, 0.0]])}
    assert [i["item_id"] for i in client.ranked_items(padded, [], 5, {})] == ["q"]
