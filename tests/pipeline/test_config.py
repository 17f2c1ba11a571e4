"""Config validation names the field; data sources resolve their file patterns."""

import os

import pytest

from models.retrieval.config import SampledSoftmax
from pipeline import cli
from pipeline import config as C
from schemas import features as F

ML100K = "/work/shared/data/ml-100k"


def write(path, text=""):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_bad_config_names_the_field(tmp_path):
    with pytest.raises(ValueError, match="data.source"):
        C.DataConfig(source="parquet", path=str(tmp_path))
    with pytest.raises(ValueError, match="data.path"):
        C.DataConfig(source=C.CSV, path=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match=r"data.column_mapping\['interactions'\]: unknown column"):
        C.DataConfig(
            source=C.CSV, path=str(tmp_path), column_mapping={F.INTERACTIONS: {"customer": "user"}}
        )
    with pytest.raises(ValueError, match="unknown table 'orders'"):
        C.DataConfig(source=C.CSV, path=str(tmp_path), column_mapping={"orders": {}})
    with pytest.raises(ValueError, match="interaction_span"):
        C.DataConfig(source=C.CSV, path=str(tmp_path), interaction_span=-1)
    with pytest.raises(ValueError, match="pipeline_root"):
        C.PipelineConfig(data=C.DataConfig(source=C.CSV, path=str(tmp_path)), pipeline_root="")


def test_patterns_with_and_without_spans(tmp_path):
    write(tmp_path / "flat/interactions.csv")
    write(tmp_path / "flat/items.csv")
    flat = C.DataConfig(source=C.CSV, path=str(tmp_path / "flat"))
    assert flat.patterns() == {F.INTERACTIONS: "interactions*.csv", F.ITEMS: "items*.csv"}
    for table in F.TABLES:
        write(tmp_path / f"spans/{table}/span-0/{table}.csv")
    spans = C.DataConfig(source=C.SYNTHETIC, path=str(tmp_path / "spans"))
    assert spans.patterns()[F.USERS] == "users/span-{SPAN}/*.csv" and spans.fmt == C.CSV


def test_movielens_patterns(tmp_path):
    assert C.DataConfig(source=C.ML_1M, path=str(tmp_path)).patterns() == {
        F.INTERACTIONS: "ratings.dat",
        F.ITEMS: "movies.dat",
    }  # no users.dat here


def test_cli_builds_a_config(tmp_path):
    argv = [
        "run",
        "--data",
        f"csv:{tmp_path}",
        "--work-dir",
        str(tmp_path / "w"),
        "--implicit",
        "--split",
        "time_cutoff",
        "--cutoff",
        "100",
        "--span",
        "2",
        "--update",
        "incremental",
        "--retrieval-loss",
        "sampled_softmax",
        "--column-mapping",
        '{"interactions": {"user_id": "customer"}}',
    ]
    config = cli.build_config(cli._parser().parse_args(argv))
    assert config.sequences.rating_threshold is None and config.sequences.cutoff_timestamp == 100
    assert config.data.interaction_span == 2
    assert config.retrieval.updates.mode == "incremental"
    assert isinstance(config.retrieval.loss, SampledSoftmax)
    assert config.ranking.mode == "incremental"
    assert config.data.column_mapping == {F.INTERACTIONS: {F.USER_ID: "customer"}}
    assert config.pipeline_root.startswith(str(tmp_path / "w"))


@pytest.mark.parametrize(
    "data, message",
    [
        ("movielens-100k", "give the directory"),
        ("parquet:/x", "must be one of"),
        ("synthetic:huge", "sizes are"),
        ("csv:/does/not/exist", "is not a directory"),
    ],
)
def test_cli_rejects_bad_data(tmp_path, capsys, data, message):
    assert cli.main(["run", "--data", data, "--work-dir", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_cli_rejects_time_cutoff_without_cutoff(tmp_path, capsys):
    assert (
        cli.main(
            [
                "run",
                "--data",
                f"csv:{tmp_path}",
                "--split",
                "time_cutoff",
                "--work-dir",
                str(tmp_path),
            ]
        )
        == 2
    )
    assert "cutoff_timestamp" in capsys.readouterr().err


def test_cli_rejects_zero_workers(tmp_path, capsys):
    argv = ["run", "--data", "synthetic:tiny", "--work-dir", str(tmp_path), "--workers", "0"]
    assert cli.main(argv) == 2
    assert "--workers 0" in capsys.readouterr().err
    assert not os.path.exists(os.path.join(tmp_path, "runs"))  # nothing started
