"""Datasets: native DeepMind multi-object records, synthetic scenes, TFDS builder, pipelines."""
