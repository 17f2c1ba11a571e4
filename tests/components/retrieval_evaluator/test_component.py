"""RetrievalEvaluator wiring: channels, execution properties and outputs."""

from tfx import types
from tfx.types import standard_artifacts

from components.retrieval_evaluator import component
from components.retrieval_evaluator import metrics as M


def test_component_wiring_and_properties():
    evaluator = component.RetrievalEvaluator(
        model=types.Channel(type=standard_artifacts.Model),
        examples=types.Channel(type=standard_artifacts.Examples),
        catalog=types.Channel(type=standard_artifacts.Examples),
        baseline_model=types.Channel(type=standard_artifacts.Model),
        blessing=M.BlessingConfig(min_hr_at_10=0.05, max_regression=0.1),
    )
    props = evaluator.exec_properties
    assert props["min_hr_at_10"] == 0.05 and props["max_regression"] == 0.1
    assert props["min_ndcg_at_10"] == 0.0
    assert props["eval_split"] == "eval" and props["exclude_split"] == "train"
    assert set(evaluator.outputs) == {"evaluation", "blessing"}
    assert evaluator.outputs["blessing"].type == standard_artifacts.ModelBlessing
    assert set(evaluator.inputs) == {"model", "examples", "catalog", "baseline_model"}
