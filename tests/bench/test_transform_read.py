"""bench/transform_read.py on the tiny run: its tf.data pass reads every training example of
both kinds, and a root without the data stages' outputs is refused."""

import re

import pytest
import tensorflow as tf

from bench import transform_read


def test_the_tfdata_phase_reads_every_example_raw_and_materialized(tiny_data, capsys):
    assert transform_read.main([tiny_data.config.pipeline_root, "--phases", "tfdata"]) == 0
    passes = re.findall(r"tfdata pass \((\w+)\): (\d+) examples", capsys.readouterr().out)
    records = sum(
        1 for _ in tf.data.TFRecordDataset(tf.io.gfile.glob(tiny_data.raw("train")), "GZIP")
    )
    assert passes == [("raw", str(records)), ("materialized", str(records))]


def test_a_root_without_the_data_stages_is_refused(tmp_path):
    with pytest.raises(SystemExit):
        transform_read.main([str(tmp_path), "--phases", "tfdata"])
