"""scripts/prepare_data.py: builds, summarises, refuses to overwrite, reports errors."""

import importlib.util
import pathlib

import pytest

from osc_tf.data import multi_object, synthetic, tfds_builder

_PATH = pathlib.Path(__file__).resolve().parents[2] / "scripts" / "prepare_data.py"
_SPEC = importlib.util.spec_from_file_location("prepare_data", _PATH)
prepare_data = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(prepare_data)


def test_build_refuse_overwrite(tmp_path, capsys):
    args = ["--dataset", "synthetic", "--num_examples", "20", "--height", "24", "--width", "32"]
    args += ["--data_dir", str(tmp_path)]
    assert prepare_data.main(args) == 0
    out = capsys.readouterr().out
    assert "synthetic_n20_24x32_s0" in out
    assert "train" in out and " 14 examples" in out and " 3 examples" in out
    assert prepare_data.main(args) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert prepare_data.main(args + ["--overwrite"]) == 0
    assert " 14 examples" in capsys.readouterr().out


def test_a_failed_overwrite_keeps_the_complete_dataset(tmp_path, capsys):
    scenes = synthetic.scenes(20, config=synthetic.SceneConfig(240, 320))  # CLEVR's size
    native = tmp_path / "clevr_with_masks_train.tfrecords"
    multi_object.write(native, scenes, "clevr_with_masks")
    args = ["--dataset", "clevr_with_masks", "--manual_dir", str(tmp_path)]
    args += ["--data_dir", str(tmp_path / "tfds")]
    assert prepare_data.main(args) == 0
    data = native.read_bytes()
    native.write_bytes(data[: len(data) // 2])  # the source got truncated since
    assert prepare_data.main(args + ["--overwrite"]) == 1
    assert str(native) in capsys.readouterr().err
    builder = tfds_builder.builder("clevr_with_masks", data_dir=tmp_path / "tfds")
    assert builder.is_prepared()
    assert len(list(builder.as_dataset(split="train"))) == 14  # the old dataset, intact


def test_missing_native_file_is_a_clean_error(tmp_path, capsys):
    args = ["--dataset", "objects_room", "--variant", "six_objects", "--manual_dir", str(tmp_path)]
    (tmp_path / "unrelated.txt").write_text("x")
    assert prepare_data.main(args + ["--data_dir", str(tmp_path / "tfds")]) == 1
    assert "objects_room_test_six_objects.tfrecords" in capsys.readouterr().err


def test_bad_arguments_exit_with_usage():
    with pytest.raises(SystemExit):
        prepare_data.main(["--dataset", "imagenet"])
