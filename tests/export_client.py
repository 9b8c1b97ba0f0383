"""A SavedModel client that imports only TensorFlow (run by tests/test_export.py).

    python tests/export_client.py EXPORT_DIR IMAGES.npy NUM_SLOTS OUT.npz

Writes every output of ``embed`` and ``objects`` (prefixed ``embed/`` and
``objects/``), and ``modules``: whether osc_tf got imported (it must not be needed;
``import tensorflow`` itself imports keras on TF 2.21).
"""

import sys

import numpy as np
import tensorflow as tf

export_dir, images_path, num_slots, out_path = sys.argv[1:]
model = tf.saved_model.load(export_dir)
images = tf.constant(np.load(images_path))
outputs = {f"embed/{k}": v.numpy() for k, v in model.embed(images).items()}
objects = model.objects(images, num_slots=tf.constant(int(num_slots)))
outputs |= {f"objects/{k}": v.numpy() for k, v in objects.items()}
loaded = [name for name in sys.modules if name.split(".")[0] == "osc_tf"]
np.savez(out_path, modules=np.array(",".join(loaded)), **outputs)
