"""`python -m pipeline kfp submit|schedule|runs` against a local KFP API server (real socket).

The package here is a small valid PipelineJob (checked with kfp's own protobuf types);
tests/pipeline/test_kubeflow_v2.py submits the real compiled pipeline.
"""

import json
import socket

import pytest
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from pipeline import cli
from pipeline import kfp_params as P
from tests.pipeline.kfp_server import FakeKfpServer

ROOT = "gs://bucket/root"


def _job(name="recsys", task="Trainer"):
    params = {
        P.UPDATE_MODE: ("STRING", "full"),
        P.TRAIN_ARGS: ("STRING", '{"num_steps": 0}'),
        P.DATA_ROOT: ("STRING", "gs://bucket/data"),
        P.RANKING_MIN_AUC: ("NUMBER_DOUBLE", 0.55),
    }
    spec = {
        "pipelineInfo": {"name": name},
        "schemaVersion": "2.1.0",
        "sdkVersion": "tfx-1.16.0",
        "root": {
            "inputDefinitions": {
                "parameters": {
                    k: {"parameterType": t, "defaultValue": v, "isOptional": True}
                    for k, (t, v) in params.items()
                }
            },
            "dag": {"tasks": {task: {"taskInfo": {"name": task}}}},
        },
    }
    job = {"displayName": name, "pipelineSpec": spec, "runtimeConfig": {"gcsOutputDirectory": ROOT}}
    json_format.ParseDict(job, pipeline_spec_pb2.PipelineJob())  # a valid PipelineJob
    return job


@pytest.fixture
def package(tmp_path):
    path = tmp_path / "pipeline.json"
    path.write_text(json.dumps(_job()))
    return str(path)


@pytest.fixture
def server():
    with FakeKfpServer() as s:
        yield s


def _kfp(*argv):
    return cli.main(["kfp", *argv])


def test_submit_uploads_then_runs_with_parameters(server, package, capsys):
    argv = ["submit", "--host", server.url, "--package", package, "--experiment", "nightly"]
    assert _kfp(*argv, "--param", "update=incremental", "--param", "train_steps=500") == 0
    (upload,) = server.calls("POST", "/pipelines/upload")
    assert upload.query["name"] == "recsys"
    assert yaml.safe_load(upload.upload) == _job()["pipelineSpec"]
    (experiment,) = server.calls("POST", "/experiments")
    assert experiment.body["display_name"] == "nightly"
    (run,) = server.calls("POST", "/runs")
    assert run.body["experiment_id"] == experiment_id(server, "nightly")
    version = server.versions[run.body["pipeline_version_reference"]["pipeline_id"]][-1]
    assert (
        run.body["pipeline_version_reference"]["pipeline_version_id"]
        == (version["pipeline_version_id"])
    )
    assert run.body["runtime_config"] == {
        "pipeline_root": ROOT,
        "parameters": {P.UPDATE_MODE: "incremental", P.TRAIN_ARGS: '{"num_steps": 500}'},
    }
    assert "started run run-" in capsys.readouterr().out


def experiment_id(server, name):
    found = [e for e in server.experiments.values() if e["display_name"] == name]
    return found[0]["experiment_id"]


def test_submit_again_reuses_the_version_and_a_changed_spec_adds_one(server, package, tmp_path):
    assert _kfp("submit", "--host", server.url, "--package", package) == 0
    assert _kfp("submit", "--host", server.url, "--package", package) == 0
    assert len(server.calls("POST", "/pipelines/upload")) == 1
    assert not server.calls("POST", "/pipelines/upload_version")
    assert len(server.calls("POST", "/experiments")) == 1  # the second run found it
    changed = tmp_path / "changed.json"
    changed.write_text(json.dumps(_job(task="Pusher")))
    assert _kfp("submit", "--host", server.url, "--package", str(changed)) == 0
    (new,) = server.calls("POST", "/pipelines/upload_version")
    assert new.query["name"].startswith("recsys-") and new.query["pipelineid"] == "pipeline-1"
    runs = server.calls("POST", "/runs")
    assert len(runs) == 3
    assert (
        runs[2].body["pipeline_version_reference"]["pipeline_version_id"]
        != (runs[1].body["pipeline_version_reference"]["pipeline_version_id"])
    )
    assert _kfp("submit", "--host", server.url, "--package", package, "--version-name", "v2") == 0
    assert server.calls("POST", "/pipelines/upload_version")[-1].query["name"] == "v2"


def test_daily_full_and_hourly_incremental_schedules(server, package, capsys):
    base = ["schedule", "--host", server.url, "--package", package, "--experiment", "prod"]
    assert _kfp(*base, "--cron", "0 3 * * *", "--param", "update=full") == 0
    assert _kfp(*base, "--cron", "30 * * * *", "--param", "update=incremental") == 0
    assert len(server.calls("POST", "/pipelines/upload")) == 1
    daily, hourly = (r.body for r in server.calls("POST", "/recurringruns"))
    assert daily["trigger"] == {"cron_schedule": {"cron": "0 0 3 * * *"}}
    assert hourly["trigger"] == {"cron_schedule": {"cron": "0 30 * * * *"}}
    assert daily["runtime_config"]["parameters"] == {P.UPDATE_MODE: "full"}
    assert hourly["runtime_config"]["parameters"] == {P.UPDATE_MODE: "incremental"}
    assert daily["display_name"] == "recsys-full" and hourly["display_name"] == "recsys-incremental"
    for job in (daily, hourly):
        assert job["mode"] == "ENABLE" and job["no_catchup"] is True
        assert job["max_concurrency"] in (1, "1")
        assert job["experiment_id"] == experiment_id(server, "prod")
        assert job["pipeline_version_reference"] == daily["pipeline_version_reference"]
    assert "cron '0 30 * * * *'" in capsys.readouterr().out


def test_runs_lists_recent_runs_and_states(server, package, capsys):
    for mode in ("full", "incremental"):
        argv = ["submit", "--host", server.url, "--package", package, "--run-name", f"r-{mode}"]
        assert _kfp(*argv, "--param", f"update={mode}") == 0
    server.runs[0]["state"] = "SUCCEEDED"
    capsys.readouterr()
    assert _kfp("runs", "--host", server.url, "--experiment", "recsys") == 0
    lines = capsys.readouterr().out.splitlines()
    assert "PENDING" in lines[1] and "r-incremental" in lines[1]  # newest first
    assert "SUCCEEDED" in lines[2] and "r-full" in lines[2]
    assert lines[-1] == "2 run(s)"
    (listing,) = server.calls("GET", "/runs")
    assert listing.query["sort_by"] == "created_at desc"
    assert listing.query["experiment_id"] == experiment_id(server, "recsys")


def _one_line_error(capsys, code, expected):
    out = capsys.readouterr()
    assert code != 0
    assert len(out.err.strip().splitlines()) == 1, out.err
    assert "Traceback" not in out.err and expected in out.err, out.err


def test_server_down_is_one_line(package, capsys):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = _kfp("submit", "--host", f"http://127.0.0.1:{port}", "--package", package)
    _one_line_error(capsys, code, "cannot reach the KFP API server")


def test_auth_errors_are_one_line(package, capsys):
    with FakeKfpServer(token="s3cret") as server:
        _one_line_error(capsys, _kfp("runs", "--host", server.url), "authentication failed")
        assert _kfp("runs", "--host", server.url, "--token", "s3cret") == 0
        server.fail["/runs"] = 403
        code = _kfp("submit", "--host", server.url, "--token", "s3cret", "--package", package)
        _one_line_error(capsys, code, "permission denied")


def test_not_found_is_one_line(server, package, capsys):
    code = _kfp("runs", "--host", server.url + "/wrong-prefix")
    _one_line_error(capsys, code, "not found")
    server.fail["/pipelines/upload"] = 404
    _one_line_error(capsys, _kfp("submit", "--host", server.url, "--package", package), "404")
    _one_line_error(capsys, _kfp("runs", "--host", server.url, "--experiment", "nope"), "nope")


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--param", "learning_rate=1"], "unknown parameter; known: data_root"),
        (["--param", "ranking_min_auc=high"], "not a valid NUMBER_DOUBLE"),
        (["--param", "update"], "expected NAME=VALUE"),
        (["--package", "/nonexistent.json"], "run `make kfp-compile`"),
    ],
)
def test_bad_input_fails_before_any_request(server, package, capsys, extra, expected):
    code = _kfp("submit", "--host", server.url, "--package", package, *extra)
    _one_line_error(capsys, code, expected)
    assert server.requests == []


def test_bad_cron_fails_before_any_request(server, package, capsys):
    code = _kfp("schedule", "--host", server.url, "--package", package, "--cron", "daily")
    _one_line_error(capsys, code, "expected 5 fields")
    assert server.requests == []


def test_kfp_cron_and_parameter_values():
    assert P.kfp_cron("0 3 * * *") == "0 0 3 * * *"
    assert P.kfp_cron("0 */15 * * * MON-FRI") == "0 */15 * * * MON-FRI"
    with pytest.raises(ValueError, match="invalid field"):
        P.kfp_cron("0 3 * * $")
    types = {P.TRAIN_ARGS: "STRING", P.EVAL_ARGS: "STRING", "n": "NUMBER_INTEGER"}
    assert P.parse_params(["train_steps=7", "eval_steps=0", "n=3"], types) == {
        P.TRAIN_ARGS: '{"num_steps": 7}',
        P.EVAL_ARGS: '{"num_steps": 0}',
        "n": 3,
    }
    raw = '{"num_steps": 9, "splits": ["train"]}'
    assert P.parse_params([f"train_args={raw}"], types) == {P.TRAIN_ARGS: raw}
    with pytest.raises(ValueError, match="integer >= 0"):
        P.steps_json(-1)
