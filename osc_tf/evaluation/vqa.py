"""The VQA linear probe and its ranking metrics (scikit-learn's average precision, ROC AUC).

The probe reads frozen features and predicts the 96 binary "is there a (size,
colour, material, shape) object" answers of an image:

- global features ``[B, D]``: one linear layer, ``logits = x W + b``;
- slots ``[B, K, D]``: the same linear layer applied to every slot, then the
  maximum over slots, ``logits[b, q] = max_k (x[b, k] W + b)[q]``. The weights
  are shared across slots: slots are an unordered set, so slot k of one image
  has nothing in common with slot k of another; sharing also makes the probe
  invariant to the slot order (as in the original study's probe).

Training follows the original study: the first ``train_fraction`` (75 %) of the
given samples train, the rest test; binary cross-entropy on the logits with
positives weighted by ``pos_weight`` (14: about 14 negatives per positive in
CLEVR), averaged over all sample×question entries; AdamW (decoupled weight
decay, PyTorch's defaults lr 1e-3, weight decay 1e-2, eps 1e-8), full batch
for ``num_steps`` steps from a seeded initialisation (uniform ±1/√D, like
``torch.nn.Linear``). Deterministic given the seed.

Metrics pool every (test sample, question) entry (micro average), as the
original: AP and ROC AUC unweighted, and with sample weight ``pos_weight`` for
positive entries and 1 for negatives (``*_weighted``). Weighting a whole class
by a constant leaves the ROC curve unchanged, so ``auroc_weighted`` equals
``auroc``; both are reported because the original reported both.
"""

import dataclasses
import functools

import keras
import numpy as np
import tensorflow as tf
from sklearn.metrics import average_precision_score, roc_auc_score


def average_precision(
    targets: np.ndarray, scores: np.ndarray, sample_weight: np.ndarray | None = None
) -> float:
    """scikit-learn's ``average_precision_score`` over every entry (micro); NaN without
    positives (scikit-learn returns 0 there)."""
    targets = np.ravel(targets).astype(bool)
    if not targets.any():
        return float("nan")
    weight = None if sample_weight is None else np.ravel(sample_weight)
    return float(average_precision_score(targets, np.ravel(scores), sample_weight=weight))


def roc_auc(
    targets: np.ndarray, scores: np.ndarray, sample_weight: np.ndarray | None = None
) -> float:
    """scikit-learn's ``roc_auc_score`` over every entry (a positive tied with a negative
    counts one half); NaN without positives or negatives."""
    targets = np.ravel(targets).astype(bool)
    if targets.all() or not targets.any():
        return float("nan")
    weight = None if sample_weight is None else np.ravel(sample_weight)
    return float(roc_auc_score(targets, np.ravel(scores), sample_weight=weight))


def probe_logits(features: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor) -> tf.Tensor:
    """Linear probe: features [B, D] or [B, K, D], kernel [D, Q], bias [Q] -> logits [B, Q]."""
    if features.shape.rank == 2:
        return features @ kernel + bias  # [B, Q]
    per_slot = tf.einsum("bkd,dq->bkq", features, kernel) + bias  # [B, K, Q]
    return tf.reduce_max(per_slot, axis=1)  # [B, Q]


def _probe_loss(x, y, kernel, bias, pos_weight):
    """Mean binary cross-entropy of the probe's logits, positives weighted by pos_weight."""
    logits = probe_logits(x, kernel, bias)
    return tf.reduce_mean(tf.nn.weighted_cross_entropy_with_logits(y, logits, pos_weight))


def _fit(optimizer, loss_fn, variables, num_steps, x_train, y_train, x_test, y_test):
    """Full-batch training loop; returns the train and test loss before each step [num_steps]."""
    train_curve = tf.TensorArray(tf.float32, size=num_steps)
    test_curve = tf.TensorArray(tf.float32, size=num_steps)
    for step in tf.range(num_steps):
        test_curve = test_curve.write(step, loss_fn(x_test, y_test))
        with tf.GradientTape() as tape:
            loss = loss_fn(x_train, y_train)
        train_curve = train_curve.write(step, loss)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables, strict=True))
    return train_curve.stack(), test_curve.stack()


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    """What ``linear_probe`` measured.

    Attributes:
        metrics: plain floats ``ap``, ``ap_weighted``, ``auroc``, ``auroc_weighted``,
            ``loss`` (final test loss), ``train_loss`` (final), ``base_rate``
            (fraction of positive test entries), ``num_train``, ``num_test``.
        train_loss: [num_steps] full-batch training loss before each update.
        test_loss: [num_steps] test loss before each update.
        scores: [num_test, Q] predicted probabilities of the test samples.
        targets: bool [num_test, Q] their answers.
        pos_weight: the positive weight used for the loss and the weighted metrics.
    """

    metrics: dict[str, float]
    train_loss: np.ndarray
    test_loss: np.ndarray
    scores: np.ndarray
    targets: np.ndarray
    pos_weight: float


def linear_probe(
    features: np.ndarray,
    targets: np.ndarray,
    num_steps: int = 1000,
    learning_rate: float = 1e-3,
    weight_decay: float = 1e-2,
    pos_weight: float = 14.0,
    train_fraction: float = 0.75,
    seed: int = 0,
) -> ProbeResult:
    """Trains the VQA linear probe on the first samples and measures it on the rest.

    Args:
        features: [B, D] global features (global-only models) or [B, K, D] slots.
        targets: [B, Q] binary answers (Q = 96 for CLEVR).
        num_steps: full-batch AdamW steps.
        learning_rate: AdamW learning rate.
        weight_decay: AdamW decoupled weight decay.
        pos_weight: weight of positive entries in the loss and the weighted metrics.
        train_fraction: the first ``int(train_fraction · B)`` samples train.
        seed: initialisation seed.

    Returns:
        A ``ProbeResult`` (see there).
    """
    features = tf.constant(np.asarray(features, np.float32))
    targets = tf.constant(np.asarray(targets, np.float32))
    if features.shape.rank not in (2, 3) or targets.shape.rank != 2:
        raise ValueError(
            f"need features [B,D] or [B,K,D] and targets [B,Q], got "
            f"{features.shape} and {targets.shape}"
        )
    num = features.shape[0]
    num_train = int(train_fraction * num)
    if not 0 < num_train < num or targets.shape[0] != num:
        raise ValueError(f"cannot split {num} samples ({targets.shape[0]} targets) at {num_train}")
    dim, questions = features.shape[-1], targets.shape[-1]
    bound = 1.0 / np.sqrt(dim)
    kernel = tf.Variable(tf.random.stateless_uniform([dim, questions], [seed, 0], -bound, bound))
    bias = tf.Variable(tf.random.stateless_uniform([questions], [seed, 1], -bound, bound))
    variables = [kernel, bias]
    optimizer = keras.optimizers.AdamW(
        learning_rate=learning_rate, weight_decay=weight_decay, epsilon=1e-8
    )
    optimizer.build(variables)
    x_train, x_test = features[:num_train], features[num_train:]
    y_train, y_test = targets[:num_train], targets[num_train:]

    loss_fn = functools.partial(_probe_loss, kernel=kernel, bias=bias, pos_weight=pos_weight)
    # A fresh function per probe (its variables differ), traced once.
    train = tf.function(
        functools.partial(
            _fit, optimizer, loss_fn, variables, num_steps, x_train, y_train, x_test, y_test
        )
    )
    train_loss, test_loss = (c.numpy() for c in train())
    scores = tf.sigmoid(probe_logits(x_test, kernel, bias)).numpy()
    answers = y_test.numpy() > 0.5
    weight = np.where(answers, pos_weight, 1.0)
    metrics = {
        "ap": average_precision(answers, scores),
        "ap_weighted": average_precision(answers, scores, weight),
        "auroc": roc_auc(answers, scores),
        "auroc_weighted": roc_auc(answers, scores, weight),
        "loss": float(loss_fn(x_test, y_test)),
        "train_loss": float(loss_fn(x_train, y_train)),
        "base_rate": float(answers.mean()),
        "num_train": float(num_train),
        "num_test": float(num - num_train),
    }
    return ProbeResult(metrics, train_loss, test_loss, scores, answers, float(pos_weight))
