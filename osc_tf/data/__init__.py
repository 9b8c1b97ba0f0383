"""Data: native multi-object records, synthetic scenes, the TFDS builder and tf.data pipelines."""
