"""gin/data/*.gin select each dataset through the registered MultiObjectData."""

import pathlib

import gin
import pytest

import osc_tf.configurables  # noqa: F401  (registers the gin names)
from osc_tf.data import augment, pipelines

GIN = pathlib.Path(__file__).resolve().parents[2] / "osc_tf" / "gin" / "data"
EXPECTED = {
    "synthetic": ("synthetic", None, 128, "synthetic"),
    "clevr_with_masks": ("clevr_with_masks", None, 128, "clevr_with_masks"),
    "multi_dsprites": (
        "multi_dsprites",
        "colored_on_grayscale",
        64,
        "multi_dsprites_colored_on_grayscale",
    ),
    "tetrominoes": ("tetrominoes", None, 32, "tetrominoes"),
    "objects_room": ("objects_room", "train", 64, "objects_room_train"),
}


@pytest.fixture(autouse=True)
def _clean_gin():
    gin.clear_config()
    yield
    gin.clear_config()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_gin_file_selects_the_dataset(name, tmp_path):
    text = (GIN / f"{name}.gin").read_text()
    assert text.startswith("# ") and "Requires:" in text and "Commonly overridden:" in text
    gin.parse_config_files_and_bindings([str(GIN / f"{name}.gin")], [])
    data = gin.get_configurable("MultiObjectData")(data_dir=str(tmp_path))
    assert isinstance(data, pipelines.MultiObjectData)
    assert (data.dataset, data.variant, data.crop_size) == EXPECTED[name][:3]
    assert data.builder.builder_config.name == EXPECTED[name][3]
    assert isinstance(data.augment, augment.TwoViewAugment)


def test_bindings_reach_the_augmentation_and_the_caps(tmp_path):
    gin.parse_config_files_and_bindings(
        [str(GIN / "synthetic.gin")],
        [
            "TwoViewAugment.scale = (0.5, 1.0)",
            "TwoViewAugment.hue = 0.0",
            'MultiObjectData.max_samples = {"train": 64}',
            "MultiObjectData.num_examples = 200",
        ],
    )
    data = gin.get_configurable("MultiObjectData")(data_dir=str(tmp_path))
    assert data.augment.scale == (0.5, 1.0) and data.augment.hue == 0.0
    assert data._cap("train") == 64 and data._cap("test") is None
    assert data.builder.builder_config.name == "synthetic_n200_120x160_s0"
