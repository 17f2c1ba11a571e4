"""pipeline/kfp_local: parameters, the ExecutorInput it builds, a failing task."""

import os

import pytest
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

from pipeline import kfp_local

MODEL = {"instanceSchema": "title: tfx.Model\ntype: object\n"}


def test_parameters_defaults_then_job_values_then_overrides():
    job = {
        "pipelineSpec": {
            "root": {
                "inputDefinitions": {
                    "parameters": {
                        "a": {"defaultValue": 1.0},
                        "b": {"defaultValue": "x"},
                        "c": {"defaultValue": "full"},
                    }
                }
            }
        },
        "runtimeConfig": {"parameterValues": {"b": "y"}},
    }
    assert kfp_local.pipeline_parameters(job, {"c": "incremental"}) == {
        "a": 1.0,
        "b": "y",
        "c": "incremental",
    }
    job["pipelineSpec"]["root"]["inputDefinitions"]["parameters"]["d"] = {}
    with pytest.raises(ValueError, match=r"without a value: \['d'\]"):
        kfp_local.pipeline_parameters(job)


def test_executor_input_is_what_kfp_launcher_gives(tmp_path):
    component = {"outputDefinitions": {"artifacts": {"model": {"artifactType": MODEL}}}}
    baseline = {"name": "r1/t/model", "uri": "/m", "metadata": {"x": 1.0}, "type": MODEL, "id": 7}
    inputs = {"base_model": [baseline], "absent": []}
    payload, outputs = kfp_local.executor_input(
        str(tmp_path / "task"), "r2", "trainer", component, inputs, {"steps": 3.0}
    )
    parsed = pipeline_spec_pb2.ExecutorInput()
    json_format.ParseDict(payload, parsed)  # a valid ExecutorInput proto
    assert parsed.inputs.parameter_values["steps"].number_value == 3.0
    assert list(parsed.inputs.artifacts) == ["base_model"]  # an empty input is left out
    assert parsed.inputs.artifacts["base_model"].artifacts[0].uri == "/m"
    (out,) = outputs["model"]
    assert out["uri"] == str(tmp_path / "task" / "model") and os.path.isdir(out["uri"])
    assert parsed.outputs.output_file == str(tmp_path / "task" / "executor_output.json")


def test_a_failing_task_names_itself_and_its_log(tmp_path):
    log = str(tmp_path / "log.txt")
    command = ["python", "-c", "import sys; print('boom'); sys.exit(3)"]
    with pytest.raises(RuntimeError, match=r"task T failed \(exit 3\)(.|\n)*boom"):
        kfp_local._subprocess(command, [], {}, log, "T")


def test_a_python_module_task_runs_forked_with_its_args_and_logs(tmp_path):
    """`python -m MODULE` tasks run in a child of a server that imported TF once."""
    log = str(tmp_path / "log.txt")
    kfp_local._subprocess(["python", "-m", "calendar"], ["2026", "{{$}}"], 1, log, "T")
    with open(log) as f:
        assert "January 2026" in f.read()  # `{{$}}` became the payload, 1
    with pytest.raises(RuntimeError, match=r"task U failed \(exit 1\)(.|\n)*No module named"):
        kfp_local._subprocess(["python", "-m", "no_such_module_here"], [], {}, log, "U")


def test_forked_tasks_from_several_threads_all_report_their_exit_code(tmp_path):
    """multiprocessing's Popen.poll is not thread-safe: unguarded, ~2% of these read exit
    code 255 (a status pipe emptied by another thread's start())."""
    from concurrent import futures

    def task(i):
        log = str(tmp_path / f"{i}.log")
        kfp_local._subprocess(["python", "-m", "calendar"], ["2026"], {}, log, f"t{i}")

    with futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(task, range(120)))  # raises the first failure
