"""StrictExampleValidator: ExampleValidator whose anomalies stop the pipeline."""

from tfx.components import ExampleValidator
from tfx.dsl.components.base import executor_spec

from components.strict_example_validator import executor


class StrictExampleValidator(ExampleValidator):
    """Same inputs and outputs as ExampleValidator; fails its run on any anomaly."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(executor.Executor)
