"""One small DIN trained by run_fn on tiny_data, shared by the trainer and evaluator tests."""

import pytest

from models.ranking import trainer
from models.ranking.config import CUSTOM_CONFIG_KEY, RankingConfig
from tests.conftest import build_once

# A few full passes over tiny_data's ~2,500 training examples: eval AUC ~0.7.
TINY_CONFIG = RankingConfig(epochs=4, batch_size=64, learning_rate=3e-3)


@pytest.fixture(scope="session")
def ranker_run(tiny_data, tmp_path_factory):
    """Runs run_fn like TFX's Trainer (once per session, see tests/conftest.build_once);
    returns the FnArgs (model under .serving_model_dir)."""

    def fn_args(out):
        return tiny_data.trainer_args(out, {CUSTOM_CONFIG_KEY: TINY_CONFIG.to_dict()})

    out = build_once(tmp_path_factory, "ranker", lambda out: trainer.run_fn(fn_args(out)))
    return fn_args(out)
