"""osc_tf: self-supervised global and object-centric representations in Keras 3 / TensorFlow.

Importing it changes nothing in the process (no environment variables, no
matplotlib backend, no TensorFlow import). osc_tf runs on Keras' TensorFlow
backend, Keras' default: a process configured for another backend sets
``KERAS_BACKEND=tensorflow`` before importing Keras (the commands do).
"""

__version__ = "0.1.0"


def load_model(workdir: str, checkpoint: str | None = None):
    """The ``ObjectCentricModel`` of a workdir, with the weights of a checkpoint.

    For notebooks: ``model = osc_tf.load_model("runs/a")`` rebuilds the model from
    ``runs/a/operative_config.gin`` and restores the newest checkpoint (or
    ``checkpoint``: a prefix such as ``runs/a/checkpoints/ckpt-5000``). Works the
    same for training runs and for the original's weights imported with
    ``scripts/import_original.py``. ``osc_tf.training.load`` also returns the data,
    seed and step. Parses the workdir's gin configuration (gin's global state).
    """
    from osc_tf.training import load  # TensorFlow is imported here, not by `import osc_tf`

    return load(workdir, checkpoint)["model"]
