"""tf.data pipelines for training, validation and test: ``MultiObjectData``.

    data = MultiObjectData(dataset="synthetic")        # built on first use if missing
    data.train(batch_size=64, seed=0)       # {"images": float32 [2B, S, S, 3]}, infinite
    data.validation(batch_size=64)          # same layout, fixed views, finite
    data.test(batch_size=64)                # image, masks, visibility, vqa, image_uint8

Two-view batches stack the views on the batch axis: rows 0..B-1 are view 0 of
images 0..B-1, rows B..2B-1 view 1 of the same images. Under ``tf.distribute`` pass
the ``tf.distribute.InputContext``: the train and validation pipelines of every
worker walk the same global stream of images and keep every n-th one (n input
pipelines, ``tf.data.Dataset.shard`` before decoding), batching
``input_context.get_per_replica_batch_size(batch_size)``. The replicas' batches of
a step are then exactly the global batch one process sees at that step, whatever
the number of machines and devices (a run may resume on another topology); each
worker reads every record of the split, still encoded, and decodes its share.

Test batches (finite, last batch may be short unless ``drop_remainder``):

    image        float32 [B, S, S, 3]  ``preprocess_for_inference`` of the image
    image_uint8  uint8   [B, S, S, 3]  the same crop before normalisation (figures)
    masks        bool    [B, E, S, S]  entity masks, centre-cropped, nearest resize
    visibility   bool    [B, E]        entity present in the crop (and, where the
                                       dataset says so, visible); entities
                                       0..num_background-1 are background (1 for
                                       CLEVR-like data, 4 for objects_room)
    vqa          float32 [B, 96]       only for CLEVR-like data (``has_vqa``):
                                       the visible non-background entities

``test_mask_resize`` and ``test_visibility`` switch the masks and the visibility
to the original study's test preprocessing (gin/eval/original.gin): masks resized
bilinearly as 0/1 images and kept wherever the result is not zero (each entity
grows by up to a pixel, so neighbouring masks overlap along their borders), and
the dataset's own visibility of the full image (an object outside the centre
crop is still visible; the VQA targets follow the same visibility).
"""

from __future__ import annotations

import functools
import math
import os

import tensorflow as tf
import tensorflow_datasets as tfds

from osc_tf.data import augment as augment_lib
from osc_tf.data import tfds_builder

VQA_SHAPE = (2, 8, 2, 3)  # sizes, colours, materials, shapes
VQA_DIM = 96
_SPLITS = ("train", "validation", "test")
TEST_MASK_RESIZE = ("nearest", "bilinear_nonzero")
TEST_VISIBILITY = ("crop", "image")
_ORDER_CYCLE = 16  # epoch e is visited in the order of epoch e mod 16


def preprocess_for_inference(images: tf.Tensor, crop_size: int) -> tf.Tensor:
    """uint8 [B, H, W, C] -> float32 [B, S, S, 3]: centre square crop, resize, normalise.

    Bilinear resize without antialiasing (``tf.image.resize``'s default, as the
    original's test preprocessing); any H, W (dynamic shapes are fine, for export).
    """
    return augment_lib.normalize(_centre_crop(_rgb(images), crop_size) / 255.0)


def _rgb(images: tf.Tensor) -> tf.Tensor:
    """[..., C] with C = 1 or 3 -> [..., 3]."""
    return tf.image.grayscale_to_rgb(images) if images.shape[-1] == 1 else images


def _centre_crop(images: tf.Tensor, crop_size: int, method: str = "bilinear") -> tf.Tensor:
    """[B, H, W, C] -> float32 [B, S, S, C]: the centre square, resized."""
    shape = tf.shape(images)
    side = tf.minimum(shape[1], shape[2])
    square = tf.image.crop_to_bounding_box(
        images, (shape[1] - side) // 2, (shape[2] - side) // 2, side, side
    )
    return tf.image.resize(tf.cast(square, tf.float32), [crop_size, crop_size], method=method)


def vqa_targets(size, color, material, shape, visible) -> tf.Tensor:
    """Is there a visible object with each (size, colour, material, shape)?

    Args:
        size, color, material, shape: 1-based codes [..., E] (0 = background/absent).
        visible: bool [..., E], False for the background and absent entities.

    Returns:
        float32 [..., 96]; index ``((size*8 + color)*2 + material)*3 + shape`` with
        0-based codes (row-major over sizes 2, colours 8, materials 2, shapes 3).
    """
    codes = [tf.cast(c, tf.int32) - 1 for c in (size, color, material, shape)]
    index = codes[0]
    for code, n in zip(codes[1:], VQA_SHAPE[1:], strict=True):
        index = index * n + code
    valid = visible
    for code, n in zip(codes, VQA_SHAPE, strict=True):
        valid = valid & (code >= 0) & (code < n)
    one_hot = tf.one_hot(tf.where(valid, index, -1), VQA_DIM)  # [..., E, 96]
    return tf.reduce_max(one_hot, axis=-2)


class MultiObjectData:
    """One dataset (variant) as train / validation / test pipelines.

    Args:
        dataset: ``"synthetic"`` or a DeepMind dataset (``multi_object.DATASETS``).
        variant: the variant of multi_dsprites / objects_room.
        data_dir: TFDS data directory (None: TFDS's default, ``$TFDS_DATA_DIR`` or
            ``~/tensorflow_datasets``).
        augment: the two-view augmentation (default ``TwoViewAugment()``).
        crop_size: S, side of the square crops fed to the model.
        max_samples: cap on examples per split (int for every split, or a dict such
            as ``{"train": 64}``) for debug / overfit runs.
        num_examples: size of the prepared dataset: synthetic scenes to generate
            (None: 10,000) or the first N native records (None: all).
        image_size: synthetic scenes' (H, W) (None: 120x160).
        synthetic_seed: seed of the synthetic scene stream.
        shuffle_buffer: training shuffle buffer (examples); None: 10 global batches,
            the original's ``min(10, batches per epoch) · batch size``.
        validation_seed: base of the fixed per-image validation seeds.
        build_synthetic: build the synthetic dataset when it is missing.
        test_mask_resize: how test masks go to the crop size: ``"nearest"``, or
            ``"bilinear_nonzero"`` (bilinear resize of the 0/1 masks, every
            non-zero pixel kept: the original's test preprocessing).
        test_visibility: which entities of a test image are visible (objects
            to score, VQA answers): ``"crop"`` (present in the centre crop and,
            where the dataset says so, visible) or ``"image"`` (the dataset's
            visibility of the full image, the original's; for a dataset
            without one, a pixel anywhere in the full image).
        cache_mib: keep the decoded training images in memory after the first
            epoch when they take at most this many MiB (per process; 0: never),
            so later epochs skip the PNG decoding. The stream is the same either
            way. The quickstart's 7,000 scenes take 384 MiB; CLEVR's 70,000, 15 GiB.
    """

    def __init__(
        self,
        dataset: str = "synthetic",
        variant: str | None = None,
        data_dir: str | os.PathLike | None = None,
        augment: augment_lib.TwoViewAugment | None = None,
        crop_size: int = 128,
        max_samples: int | dict[str, int] | None = None,
        num_examples: int | None = None,
        image_size: tuple[int, int] | None = None,
        synthetic_seed: int = 0,
        shuffle_buffer: int | None = None,
        validation_seed: int = 0,
        build_synthetic: bool = True,
        test_mask_resize: str = "nearest",
        test_visibility: str = "crop",
        cache_mib: float = 1024,
    ):
        if crop_size < 1:
            raise ValueError(f"MultiObjectData.crop_size = {crop_size}: expected an integer >= 1")
        for name, value, choices in (
            ("test_mask_resize", test_mask_resize, TEST_MASK_RESIZE),
            ("test_visibility", test_visibility, TEST_VISIBILITY),
        ):
            if value not in choices:
                raise ValueError(f"MultiObjectData.{name} must be one of {choices}, got {value!r}")
        self.dataset = dataset
        self.variant = variant
        self.data_dir = data_dir
        self.augment = augment or augment_lib.TwoViewAugment()
        self.crop_size = crop_size
        self.max_samples = max_samples
        self.num_examples = num_examples
        self.image_size = image_size
        self.synthetic_seed = synthetic_seed
        self.shuffle_buffer = shuffle_buffer
        self.validation_seed = validation_seed
        self.build_synthetic = build_synthetic
        self.test_mask_resize = test_mask_resize
        self.test_visibility = test_visibility
        if cache_mib < 0:
            raise ValueError(f"MultiObjectData.cache_mib = {cache_mib}: expected >= 0")
        self.cache_mib = cache_mib
        height, width = image_size if image_size else (None, None)
        self.builder = tfds_builder.builder(
            dataset,
            variant,
            data_dir=data_dir,
            num_examples=num_examples,
            height=height,
            width=width,
            seed=synthetic_seed,
        )
        self.spec = self.builder.builder_config.spec
        self._prepared = False

    @property
    def num_entities(self) -> int:
        """E, masks per image (background included)."""
        return self.spec.num_entities

    @property
    def num_background(self) -> int:
        """Leading entities that are background."""
        return self.spec.num_background

    @property
    def has_vqa(self) -> bool:
        """Whether the test split has the 96 CLEVR attribute targets."""
        names = {f.name for f in self.spec.features}
        return {"size", "color", "material", "shape"} <= names

    def prepare(self) -> None:
        """Make sure the prepared dataset exists (builds synthetic data if allowed)."""
        if self._prepared or self.builder.is_prepared():
            self._prepared = True
            return
        config = self.builder.builder_config
        if config.dataset == tfds_builder.SYNTHETIC and self.build_synthetic:
            try:
                tfds_builder.prepare(self.builder)
            except OSError:  # another process (e.g. another worker) finished it first
                if not self.builder.is_prepared():
                    raise
            self._prepared = True
            return
        command = f"osc-tf-prepare-data --dataset {config.dataset}"
        if config.dataset == tfds_builder.SYNTHETIC:
            command += f" --num_examples {config.num_examples} --height {config.height}"
            command += f" --width {config.width} --seed {config.seed}"
            fetch = " Build it with:"
        else:
            if config.variant:
                command += f" --variant {config.variant}"
            if config.num_examples:
                command += f" --num_examples {config.num_examples}"
            command += " --manual_dir DIR"
            fetch = (
                f" Put {self.spec.file_name} (gs://multi-object-datasets/{config.dataset}/) "
                "in a folder DIR and run:"
            )
        if self.data_dir is not None:
            command += f" --data_dir {self.data_dir}"
        raise FileNotFoundError(
            f"{config.name} is not prepared in {self.builder.data_dir_root}.{fetch} {command}"
        )

    def num_examples_in(self, split: str) -> int:
        """Examples the pipelines read from ``split`` (after ``max_samples``)."""
        self.prepare()
        total = self.builder.info.splits[split].num_examples
        cap = self._cap(split)
        return total if cap is None else min(total, cap)

    def decoded_train_mib(self) -> float:
        """MiB of the decoded training images (inf if their shape varies)."""
        feature = self.builder.info.features["image"]
        if any(d is None for d in feature.shape):
            return math.inf
        size = math.prod(feature.shape) * tf.as_dtype(feature.dtype).size
        return self.num_examples_in("train") * size / 2**20

    def _cap(self, split: str) -> int | None:
        if isinstance(self.max_samples, dict):
            unknown = set(self.max_samples) - set(_SPLITS)
            if unknown:
                raise ValueError(f"max_samples keys must be in {_SPLITS}, got {unknown}")
            return self.max_samples.get(split)
        return self.max_samples

    def _read(self, split, features, input_context, encoded=()) -> tf.data.Dataset:
        """Records of ``split`` in record order; ``encoded`` features stay undecoded."""
        self.prepare()
        cap = self._cap(split)
        name = split if cap is None else f"{split}[:{cap}]"
        if input_context is not None and input_context.num_input_pipelines > 1:
            name = tfds.even_splits(name, n=input_context.num_input_pipelines)[
                input_context.input_pipeline_id
            ]
        skip = {k: tfds.decode.SkipDecoding() for k in encoded}
        return self.builder.as_dataset(
            split=name,
            shuffle_files=False,
            read_config=tfds.ReadConfig(try_autocache=False, enable_ordering_guard=False),
            decoders=tfds.decode.PartialDecoding({k: True for k in features}, decoders=skip),
        )

    def _two_views(self, ds, batch_size, drop_remainder) -> tf.data.Dataset:
        """(image, seed int [2]) elements -> batches ``{"images": [2B, S, S, 3]}``."""
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        ds = ds.map(
            lambda images, seeds: {"images": self.augment(images, seeds, self.crop_size)},
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        return ds.prefetch(tf.data.AUTOTUNE)

    def train(
        self, batch_size: int, seed: int = 0, input_context=None, start_step: int = 0
    ) -> tf.data.Dataset:
        """Infinite shuffled two-view batches ``{"images": float32 [2B, S, S, 3]}``.

        ``batch_size`` is global; with ``input_context`` each pipeline yields its
        per-replica share: images ``k·n + pipeline id`` of the global stream (n
        pipelines), so a step's global batch is the same on any number of machines.
        Epoch e visits the split's records in the order of a shuffle seeded by
        (seed, e mod 16) — still encoded, so the buffer holds PNG bytes — and image
        number i of the global stream gets the augmentation seed (seed, i). The
        stream is a pure function of the seed, so ``start_step`` (a resumed run)
        starts at exactly the batch an uninterrupted run sees at that step, without
        reading the skipped epochs.
        """
        per_replica, pipelines, pipeline_id = batch_size, 1, 0
        if input_context is not None:
            per_replica = input_context.get_per_replica_batch_size(batch_size)
            pipelines = input_context.num_input_pipelines
            pipeline_id = input_context.input_pipeline_id
        records = self._read("train", ("image",), None, encoded=("image",))
        num = int(records.cardinality())
        if num < 1:
            raise ValueError(f"the train split of {self.builder.builder_config.name} is empty")
        buffer = min(self.shuffle_buffer or 10 * batch_size, num)
        first_epoch, offset = divmod(start_step * batch_size, num)
        decode = self.builder.info.features["image"].decode_example
        if self.decoded_train_mib() <= self.cache_mib:
            # decoded once, in record order; every epoch's shuffle then reads memory
            records = records.map(
                lambda ex: {"image": decode(ex["image"])}, num_parallel_calls=tf.data.AUTOTUNE
            ).cache()
            decode = tf.identity

        def order(e: int) -> tf.data.Dataset:
            # A Python-int seed: tf.data rejects tensor seeds when the global seed is 0.
            return records.shuffle(
                buffer, seed=seed * 1_000_003 + e, reshuffle_each_iteration=False
            )

        cycle = functools.reduce(
            tf.data.Dataset.concatenate, [order(e) for e in range(_ORDER_CYCLE)]
        ).repeat()
        rest_of_cycle = [order(e) for e in range(first_epoch % _ORDER_CYCLE, _ORDER_CYCLE)]
        ds = functools.reduce(tf.data.Dataset.concatenate, rest_of_cycle + [cycle])
        ds = ds.skip(offset).enumerate(start=start_step * batch_size)
        if pipelines > 1:
            ds = ds.shard(pipelines, pipeline_id)
        stream = seed * 1_000_003
        ds = ds.map(
            lambda i, ex: (decode(ex["image"]), tf.stack([tf.constant(stream, tf.int64), i])),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        return self._two_views(ds, per_replica, drop_remainder=True)

    def validation(
        self, batch_size: int, input_context=None, drop_remainder: bool = False
    ) -> tf.data.Dataset:
        """Finite two-view batches; image r gets seed (validation_seed, r), r its record.

        With ``input_context`` each pipeline keeps every n-th image of the split;
        ``drop_remainder`` then first drops the images past the last full global
        batch, so every pipeline yields the same number of batches.
        """
        per_replica, pipelines = batch_size, 1
        if input_context is not None:
            per_replica = input_context.get_per_replica_batch_size(batch_size)
            pipelines = input_context.num_input_pipelines
        ds = self._read("validation", ("image", "record_index"), None)
        if pipelines > 1:
            if drop_remainder:
                ds = ds.take(int(ds.cardinality()) // batch_size * batch_size)
            ds = ds.shard(pipelines, input_context.input_pipeline_id)
        ds = ds.map(
            lambda ex: (
                ex["image"],
                tf.stack([tf.constant(self.validation_seed, tf.int64), ex["record_index"]]),
            )
        )
        return self._two_views(ds, per_replica, drop_remainder)

    def test(
        self,
        batch_size: int,
        input_context=None,
        drop_remainder: bool = False,
        split: str = "test",
    ) -> tf.data.Dataset:
        """Finite batches of centre crops with masks, visibility and VQA targets.

        ``split`` may name another split to evaluate on (same layout).
        """
        if split not in _SPLITS:
            raise ValueError(f"split must be one of {_SPLITS}, got {split!r}")
        if input_context is not None:
            batch_size = input_context.get_per_replica_batch_size(batch_size)
        features = [f.name for f in self.spec.features if f.name != "mask"]
        features += ["segmentation", "mask_stack"]
        ds = self._read(split, features, input_context)
        ds = ds.map(self.test_example, num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.batch(batch_size, drop_remainder=drop_remainder)
        return ds.prefetch(tf.data.AUTOTUNE)

    def test_example(self, example: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """One decoded prepared example -> one test example (see the module docstring)."""
        example = tfds_builder.official(example, self.num_entities)
        s = self.crop_size
        crop = _centre_crop(_rgb(example["image"])[None], s)[0]  # [S, S, 3]
        full_masks = example["mask"]  # uint8 [E, H, W, 1], 0/255
        if self.test_mask_resize == "nearest":
            masks = _centre_crop(full_masks, s, method="nearest")[..., 0] > 127  # [E, S, S]
        else:  # "bilinear_nonzero": any weight on a mask pixel keeps the pixel
            masks = _centre_crop(full_masks, s, method="bilinear")[..., 0] > 0  # [E, S, S]
        if self.test_visibility == "crop":
            visibility = tf.reduce_any(masks, axis=[1, 2])  # [E]
            if "visibility" in example:
                visibility &= tf.cast(example["visibility"], tf.bool)
        elif "visibility" in example:  # "image": the dataset's own flags
            visibility = tf.cast(example["visibility"], tf.bool)  # [E]
        else:
            visibility = tf.reduce_any(full_masks > 127, axis=[1, 2, 3])  # [E]
        out = {
            "image": augment_lib.normalize(crop / 255.0),
            "image_uint8": tf.cast(tf.round(tf.clip_by_value(crop, 0.0, 255.0)), tf.uint8),
            "masks": masks,
            "visibility": visibility,
        }
        if self.has_vqa:
            foreground = visibility & (tf.range(self.num_entities) >= self.num_background)
            out["vqa"] = vqa_targets(
                example["size"],
                example["color"],
                example["material"],
                example["shape"],
                foreground,
            )
        return out
