"""The one test harness every osc_tf Keras layer goes through.

``check_layer`` asserts, for one layer configuration:

1. ``get_config`` holds the constructor arguments and ``from_config`` rebuilds
   an equal config;
2. the expected number of trainable / non-trainable weights (and parameters);
3. an eager call gives finite outputs of the expected shapes;
4. a symbolic call (batch ``None``) gives the same shapes with batch ``None``;
5. a layer rebuilt from the config with the same weights gives the same outputs;
6. the forward pass under ``tf.function(jit_compile=True)`` (XLA), traced with
   batch ``None`` (no static batch size anywhere), matches eager;
7. one (eager) ``fit()`` step changes every trainable weight and gives a finite loss;
8. a functional model saved to ``.keras`` and loaded back gives identical outputs.
"""

import os

import keras
import numpy as np
import tensorflow as tf
from keras import tree


def _shapes(structure) -> list[tuple]:
    """Shapes of all tensors in flattening order (dict keys sorted)."""
    return [tuple(t.shape) for t in tree.flatten(structure)]


def _expected_shapes(expected) -> list[tuple]:
    """A shape tuple, a list of them, or a dict of them, in flattening order."""
    if isinstance(expected, dict):
        return [tuple(expected[key]) for key in sorted(expected)]
    if isinstance(expected, tuple) and all(isinstance(d, int) for d in expected):
        return [expected]
    return [tuple(shape) for shape in expected]


def _numpy(structure):
    return tree.map_structure(lambda t: np.asarray(keras.ops.convert_to_numpy(t)), structure)


def _assert_close(actual, expected, **tolerance):
    for a, e in zip(tree.flatten(_numpy(actual)), tree.flatten(_numpy(expected)), strict=True):
        np.testing.assert_allclose(a, e, **tolerance)


def check_layer(
    layer_cls,
    init_kwargs: dict,
    inputs: tuple,
    tmp_path,
    *,
    call_kwargs: dict | None = None,
    expected_output_shapes=None,
    expected_num_trainable_weights: int,
    expected_num_non_trainable_weights: int = 0,
    expected_num_params: int | None = None,
    train_output=None,
    run_training: bool = True,
    xla_atol: float = 1e-5,
):
    """Runs the checks above; returns the built layer and its eager outputs.

    Args:
        layer_cls: the layer class.
        init_kwargs: constructor arguments.
        inputs: tuple of float32 numpy arrays, one per positional call argument,
            all with the same batch size B >= 1.
        tmp_path: a pytest ``tmp_path`` for the ``.keras`` file.
        call_kwargs: extra non-tensor call arguments (e.g. ``num_slots``).
        expected_output_shapes: nested structure of eager output shapes.
        expected_num_trainable_weights: number of trainable variables.
        expected_num_non_trainable_weights: number of non-trainable variables.
        expected_num_params: total number of scalars in all weights.
        train_output: key or index of the output trained in the fit step
            (default: the whole output if it is a tensor, else index 0).
        run_training: False for layers without trainable weights.
        xla_atol: tolerance between XLA and eager outputs.
    """
    call_kwargs = call_kwargs or {}
    inputs = tuple(np.asarray(x, dtype="float32") for x in inputs)

    # 1. Config holds the constructor arguments and round-trips.
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    for key, value in init_kwargs.items():
        assert config[key] == (tuple(value) if isinstance(value, list) else value), key
    assert layer_cls.from_config(config).get_config() == config

    # 3. Eager call.
    outputs = layer(*inputs, **call_kwargs)
    for array in tree.flatten(_numpy(outputs)):
        assert np.all(np.isfinite(array))
    if expected_output_shapes is not None:
        assert _shapes(outputs) == _expected_shapes(expected_output_shapes)

    # 2. Weight counts.
    assert len(layer.trainable_weights) == expected_num_trainable_weights
    assert len(layer.non_trainable_weights) == expected_num_non_trainable_weights
    if expected_num_params is not None:
        assert layer.count_params() == expected_num_params

    # 4. Symbolic call with an unknown batch size.
    symbolic_inputs = [keras.Input(shape=x.shape[1:], batch_size=None) for x in inputs]
    symbolic = layer(*symbolic_inputs, **call_kwargs)
    assert _shapes(symbolic) == [(None, *s[1:]) for s in _shapes(outputs)]

    # 5. A layer from the config with the same weights computes the same function.
    clone = layer_cls.from_config(config)
    clone(*inputs, **call_kwargs)
    clone.set_weights(layer.get_weights())
    _assert_close(clone(*inputs, **call_kwargs), outputs, rtol=0, atol=0)

    # 6. XLA, traced once with batch None (no static batch size), matches eager.
    signature = [tf.TensorSpec((None, *x.shape[1:]), tf.float32) for x in inputs]
    xla = tf.function(
        lambda *xs: layer(*xs, training=False, **call_kwargs),
        input_signature=signature,
        jit_compile=True,
    )
    assert _shapes(xla.get_concrete_function().structured_outputs)[0][0] is None
    _assert_close(xla(*inputs), outputs, rtol=0, atol=xla_atol)

    # 7. One fit() step updates every trainable weight.
    model = keras.Model(symbolic_inputs, symbolic)
    if run_training:
        if train_output is None:
            train_output = 0 if isinstance(symbolic, (tuple, list, dict)) else None
        target = symbolic if train_output is None else symbolic[train_output]
        train_model = keras.Model(symbolic_inputs, target)
        # Eager keeps the step cheap; graph and XLA tracing are covered above.
        train_model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", run_eagerly=True)
        before = [np.array(w) for w in layer.trainable_weights]
        y = np.ones(_shapes(outputs if train_output is None else outputs[train_output])[0])
        history = train_model.fit(list(inputs), y, batch_size=len(inputs[0]), epochs=1, verbose=0)
        assert np.isfinite(history.history["loss"][0])
        unchanged = [
            w.path
            for w, b in zip(layer.trainable_weights, before, strict=True)
            if np.array_equal(np.array(w), b)
        ]
        assert not unchanged, f"fit() left these weights unchanged: {unchanged}"
        outputs = layer(*inputs, **call_kwargs)

    # 8. .keras save -> load -> identical outputs.
    path = os.path.join(tmp_path, f"{layer_cls.__name__}.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    _assert_close(loaded(list(inputs)), model(list(inputs)), rtol=0, atol=0)
    return layer, outputs
