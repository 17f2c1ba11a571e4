"""Index files: save/load round trip, atomic writes, validation, and SavedModel reloads
of both searchers in a fresh process (ScaNN: only after `import scann`)."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from bench.index import clustered
from models.search import index as I
from models.search.params import IndexConfig, choose_params


@pytest.fixture(scope="module")
def built():
    items, queries = clustered(3000, dim=16, num_queries=50, seed=5)
    config = IndexConfig(exact_below=0, portable_exact_below=0)
    ids = [f"item{i}".encode() for i in range(len(items))]  # bytes, as read from Examples
    index = I.build_index(ids, items, choose_params(len(items), config))
    index.metrics = {"recall@10": 0.97}
    return index, queries


def test_save_and_load_round_trip(built, tmp_path):
    index, queries = built
    path = I.save_index(index, str(tmp_path))
    assert path == os.path.join(str(tmp_path), I.INDEX_DIR)
    assert sorted(os.listdir(tmp_path)) == [I.INDEX_DIR]  # no temporary directory left
    loaded = I.load_index(str(tmp_path))
    assert loaded.item_ids.tolist() == [f"item{i}" for i in range(3000)]
    np.testing.assert_array_equal(loaded.embeddings, index.embeddings)
    assert loaded.params == index.params and loaded.metrics == {"recall@10": 0.97}
    for name, value in index.scann_assets.items():
        np.testing.assert_array_equal(loaded.scann_assets[name], value, err_msg=name)
    np.testing.assert_array_equal(loaded.partitions.leaf_items, index.partitions.leaf_items)
    assert I.load_index(path).params == index.params  # the index dir itself also works
    for make in (I.scann_searcher, I.portable_searcher):
        before, after = make(index, 10), make(loaded, 10)
        np.testing.assert_array_equal(
            before.search(queries)[0].numpy(), after.search(queries)[0].numpy()
        )
    with pytest.raises(FileExistsError, match="written once"):
        I.save_index(index, str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no index"):
        I.load_index(str(tmp_path / "elsewhere"))


def test_bad_catalogs_are_refused_with_the_reason():
    params = choose_params(3)
    items = np.eye(3, dtype=np.float32)
    with pytest.raises(ValueError, match="not unique"):
        I.build_index(["a", "b", "a"], items, params)
    broken = items.copy()
    broken[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"non-finite embeddings for items \['b'\]"):
        I.build_index(["a", "b", "c"], broken, params)
    with pytest.raises(ValueError, match="params are for 3 items"):
        I.build_index(["a", "b"], items[:2], params)


_RELOAD = textwrap.dedent(
    """
    import sys
    import numpy as np
    import tensorflow as tf

    root, queries = sys.argv[1], np.load(sys.argv[2])
    portable = tf.saved_model.load(root + "/portable")  # stock ops: no scann import
    np.save(root + "/portable_out.npy", portable.index.search(queries)[0].numpy())
    try:
        tf.saved_model.load(root + "/scann")
        sys.exit("the ScaNN model loaded without its ops")
    except Exception as e:
        assert "Scann" in str(e), e
    import scann  # noqa: F401 (registers the ScaNN ops)

    model = tf.saved_model.load(root + "/scann")
    np.save(root + "/scann_out.npy", model.index.search(queries)[0].numpy())
    """
)


def test_saved_searchers_reload_in_a_fresh_process(built, tmp_path):
    index, queries = built
    expected = {}
    for name, make in (("scann", I.scann_searcher), ("portable", I.portable_searcher)):
        module = tf.Module()
        module.index = make(index, 10)
        expected[name] = module.index.search(queries)[0].numpy()
        tf.saved_model.save(module, str(tmp_path / name))
    np.save(tmp_path / "queries.npy", queries)
    script = tmp_path / "reload.py"
    script.write_text(_RELOAD)
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path), str(tmp_path / "queries.npy")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("scann", "portable"):
        np.testing.assert_array_equal(np.load(tmp_path / f"{name}_out.npy"), expected[name])
