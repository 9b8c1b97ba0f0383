"""One TFDS builder for the multi-object datasets and the synthetic scenes.

Configs (``MultiObject.BUILDER_CONFIGS``): ``clevr_with_masks``,
``multi_dsprites_{binarized,colored_on_grayscale,colored_on_colored}``,
``tetrominoes``, ``objects_room_{train,six_objects,empty_room,identical_color}`` and
``synthetic`` (10,000 scenes of 120x160, seed 0). Other sizes are custom configs
made by ``make_config``; their name encodes the size (``synthetic_n200_64x80_s3``,
``clevr_with_masks_n1000``), so datasets of different sizes never share a directory.

DeepMind configs read the official file from the manual directory (directly or in a
``<dataset>/`` sub-directory). Splits follow the records' order: CLEVR records
0-69,999 train, 70,000-84,999 validation, 85,000-99,999 test (as the original
study); other datasets, shorter files and synthetic streams 70/15/15 %.

Each example is stored compactly (``osc_tf.data.compact``): PNG image, a label map
when it reproduces the masks exactly (else the full mask stack), attributes, bool
visibility and ``record_index`` (position in the native file / synthetic stream).
``official(example, spec)`` decodes the masks back to the official layout.

A build writes into a temporary directory that TFDS renames only on success, so a
failed or interrupted build never leaves a dataset that loads.
"""

from __future__ import annotations

import dataclasses
import os
import shutil

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from osc_tf.data import compact, multi_object, synthetic

SYNTHETIC = "synthetic"
SYNTHETIC_NUM_EXAMPLES = 10_000
CLEVR_SPLITS = {"train": (0, 70_000), "validation": (70_000, 85_000), "test": (85_000, 100_000)}


@dataclasses.dataclass(eq=False)
class MultiObjectConfig(tfds.core.BuilderConfig):
    """A dataset (variant) and its size.

    Args:
        dataset: ``"synthetic"`` or a member of ``multi_object.DATASETS``.
        variant: the variant for multi_dsprites / objects_room.
        num_examples: records used: the first N of the native file (None: all), or
            the number of synthetic scenes (None: 10,000).
        height, width, seed: synthetic scenes only.
    """

    dataset: str = SYNTHETIC
    variant: str | None = None
    num_examples: int | None = None
    height: int = synthetic.SceneConfig.height
    width: int = synthetic.SceneConfig.width
    seed: int = 0

    @property
    def spec(self) -> multi_object.DatasetSpec:
        if self.dataset == SYNTHETIC:
            return synthetic_spec(self.height, self.width)
        return multi_object.get_spec(self.dataset, self.variant)


def synthetic_spec(height: int, width: int) -> multi_object.DatasetSpec:
    """The clevr_with_masks spec at the synthetic scenes' resolution."""
    clevr = multi_object.get_spec("clevr_with_masks")
    resized = {
        "image": (height, width, 3),
        "mask": (clevr.num_entities, height, width, 1),
    }
    features = tuple(
        dataclasses.replace(f, shape=resized.get(f.name, f.shape)) for f in clevr.features
    )
    return dataclasses.replace(clevr, dataset=SYNTHETIC, file_name="", features=features)


def make_config(
    dataset: str = SYNTHETIC,
    variant: str | None = None,
    num_examples: int | None = None,
    *,
    height: int | None = None,
    width: int | None = None,
    seed: int = 0,
) -> MultiObjectConfig:
    """The config for a dataset and size (a named config when the size is default)."""
    if dataset == SYNTHETIC:
        if variant is not None:
            raise ValueError(f"synthetic has no variants, got variant={variant!r}")
        h = height or synthetic.SceneConfig.height
        w = width or synthetic.SceneConfig.width
        n = num_examples or SYNTHETIC_NUM_EXAMPLES
        synthetic.SceneConfig(h, w)  # validates the size
        default = (n, h, w, seed) == (SYNTHETIC_NUM_EXAMPLES, 120, 160, 0)
        name = SYNTHETIC if default else f"{SYNTHETIC}_n{n}_{h}x{w}_s{seed}"
        description = f"{n} synthetic CLEVR-like scenes of {h}x{w}, seed {seed}"
        return MultiObjectConfig(
            name=name, description=description, num_examples=n, height=h, width=w, seed=seed
        )
    if height is not None or width is not None:
        raise ValueError("height/width apply to synthetic scenes only")
    spec = multi_object.get_spec(dataset, variant)
    name = spec.name if num_examples is None else f"{spec.name}_n{num_examples}"
    what = "all records" if num_examples is None else f"the first {num_examples} records"
    return MultiObjectConfig(
        name=name,
        description=f"{spec.name}: {what} of {spec.file_name}",
        dataset=dataset,
        variant=variant,
        num_examples=num_examples,
    )


def split_bounds(dataset: str, num_records: int) -> dict[str, tuple[int, int]]:
    """Record ranges [start, stop) of the train / validation / test splits."""
    if dataset == "clevr_with_masks" and num_records >= CLEVR_SPLITS["test"][1]:
        return dict(CLEVR_SPLITS)
    train = num_records * 70 // 100
    validation = train + num_records * 15 // 100
    return {
        "train": (0, train),
        "validation": (train, validation),
        "test": (validation, num_records),
    }


def _features(spec: multi_object.DatasetSpec) -> tfds.features.FeaturesDict:
    h, w, c = spec.image_shape
    features = {
        "image": tfds.features.Image(shape=(h, w, c), encoding_format="png"),
        "segmentation": tfds.features.Image(shape=(h, w, 1), encoding_format="png"),
        "mask_stack": tfds.features.Tensor(shape=(None, h, w, 1), dtype=np.uint8, encoding="zlib"),
        "record_index": tfds.features.Scalar(dtype=np.int64),
    }
    for f in spec.features:
        if f.name in ("image", "mask"):
            continue
        dtype = np.bool_ if f.name == "visibility" else np.dtype(f.dtype)
        features[f.name] = tfds.features.Tensor(shape=f.shape, dtype=dtype)
    return tfds.features.FeaturesDict(features)


def official(example: dict[str, tf.Tensor], num_entities: int) -> dict[str, tf.Tensor]:
    """A decoded prepared example -> ``mask`` uint8 [E, H, W, 1] (0/255) as officially.

    Works on single examples (not batches), eagerly and inside ``Dataset.map``.
    """
    out = dict(example)
    stack = out.pop("mask_stack")  # [0 or E, H, W, 1]
    labels = tf.cast(out.pop("segmentation")[..., 0], tf.int32)  # [H, W]
    from_labels = tf.one_hot(labels, num_entities, on_value=255, off_value=0, dtype=tf.uint8)
    from_labels = tf.transpose(from_labels, [2, 0, 1])[..., None]  # [E, H, W, 1]
    out["mask"] = tf.cond(tf.shape(stack)[0] > 0, lambda: stack, lambda: from_labels)
    return out


class MultiObject(tfds.core.GeneratorBasedBuilder):
    """DeepMind's multi-object datasets and synthetic CLEVR-like scenes."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    BUILDER_CONFIGS = [make_config()] + [make_config(d, v) for d, v in multi_object.SPECS]
    DEFAULT_CONFIG_NAME = SYNTHETIC
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Download the official files (gsutil -m cp -r gs://multi-object-datasets .) and "
        "pass the folder as manual_dir. Expected file names: "
        + ", ".join(s.file_name for s in multi_object.SPECS.values())
    )

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=_features(self.builder_config.spec),
            description=self.builder_config.description,
            disable_shuffling=True,  # splits keep the record order; training shuffles
        )

    def _split_generators(self, dl_manager):
        config = self.builder_config
        if config.dataset == SYNTHETIC:
            bounds = split_bounds(SYNTHETIC, config.num_examples)
            return {k: self._generate_synthetic(*b) for k, b in bounds.items()}
        try:
            manual_dir = dl_manager.manual_dir
        except AssertionError as e:  # TFDS: missing or empty manual dir
            raise FileNotFoundError(
                f"{config.name} needs {config.spec.file_name!r} in the manual dir: {e}"
            ) from None
        path = multi_object.find_native_file(manual_dir, config.dataset, config.variant)
        num_records = multi_object.count_records(path, limit=config.num_examples)
        bounds = split_bounds(config.dataset, num_records)
        return {k: self._generate_native(path, *b) for k, b in bounds.items()}

    def _generate_examples(self, **kwargs):  # required by TFDS; splits use the two below
        raise NotImplementedError

    def _generate_native(self, path: str, start: int, stop: int):
        config = self.builder_config
        ds = multi_object.read(path, config.dataset, config.variant, start=start, stop=stop)
        for index, example in enumerate(multi_object.as_numpy(path, ds), start=start):
            stored = compact.compact(example)
            stored["record_index"] = index
            yield index, stored

    def _generate_synthetic(self, start: int, stop: int):
        config = self.builder_config
        scene_config = synthetic.SceneConfig(config.height, config.width)
        for index in range(start, stop):
            stored = compact.compact(synthetic.scene(index, config.seed, scene_config))
            stored["record_index"] = index
            yield index, stored


def builder(
    dataset: str = SYNTHETIC,
    variant: str | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    num_examples: int | None = None,
    height: int | None = None,
    width: int | None = None,
    seed: int = 0,
) -> MultiObject:
    """The builder of one dataset/size in ``data_dir`` (None: TFDS's default dir)."""
    config = make_config(dataset, variant, num_examples, height=height, width=width, seed=seed)
    data_dir = None if data_dir is None else os.fspath(os.path.expanduser(data_dir))
    named = config.name in MultiObject.builder_configs  # TFDS wants the name then
    return MultiObject(config=config.name if named else config, data_dir=data_dir)


def prepare(
    builder_: MultiObject,
    manual_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> None:
    """Build the dataset unless complete; ``overwrite`` rebuilds a complete one.

    TFDS writes into an ``incomplete.*`` folder renamed only when the build
    succeeds. On ``overwrite`` the complete dataset is moved aside first and put
    back if the rebuild fails, so a failed rebuild never loses a good dataset.
    """
    config = tfds.download.DownloadConfig(
        manual_dir=None if manual_dir is None else os.fspath(os.path.expanduser(manual_dir)),
        download_mode=tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS,
    )
    target = os.fspath(builder_.data_dir)
    previous = target + ".previous"
    if overwrite and builder_.is_prepared():
        shutil.rmtree(previous, ignore_errors=True)
        os.replace(target, previous)
    try:
        builder_.download_and_prepare(download_config=config)
    except BaseException:
        if os.path.isdir(previous):
            shutil.rmtree(target, ignore_errors=True)
            os.replace(previous, target)
        raise
    shutil.rmtree(previous, ignore_errors=True)


def summary(builder_: MultiObject) -> str:
    """Examples and bytes per split of a prepared dataset, one line each."""
    lines = [f"{builder_.builder_config.name} in {builder_.data_dir}"]
    for name in ("train", "validation", "test"):
        split = builder_.info.splits[name]
        lines.append(
            f"  {name:<10} {split.num_examples:>9,d} examples {split.num_bytes:>15,d} bytes"
        )
    return "\n".join(lines)
