"""RankingEvaluator: TFX's Evaluator (same inputs and outputs) plus `ranking_min_auc`."""

from __future__ import annotations

from tfx.components.evaluator import component as evaluator_component
from tfx.dsl.components.base import executor_spec
from tfx.orchestration import data_types

from components.ranking_evaluator import executor


class RankingEvaluator(evaluator_component.Evaluator):
    """TFX's Evaluator whose AUC floor may be a RuntimeParameter (see executor.py).

    TFX's Evaluator builds its own EvaluatorSpec, so `ranking_min_auc` is an extra
    exec property (both the local runners and the KFP v2 compiler pass it through).
    """

    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(self, ranking_min_auc=None, **kwargs):
        """Wires the component.

        Args:
            ranking_min_auc: a float in [0, 1], a float RuntimeParameter, or None (keep
                eval_config's own floor).
            **kwargs: TFX Evaluator's arguments.

        Raises:
            TypeError: ranking_min_auc is neither a number nor a float RuntimeParameter.
        """
        super().__init__(**kwargs)
        if isinstance(ranking_min_auc, data_types.RuntimeParameter):
            if ranking_min_auc.ptype is not float:
                raise TypeError(f"{executor.RANKING_MIN_AUC}: a float RuntimeParameter expected")
        elif ranking_min_auc is not None:
            ranking_min_auc = float(ranking_min_auc)
        if ranking_min_auc is not None:
            self.exec_properties[executor.RANKING_MIN_AUC] = ranking_min_auc
