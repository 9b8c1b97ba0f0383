"""osc_tf: self-supervised global and object-centric representations in Keras 3 / TensorFlow."""

import os

# Keras 3 is multi-backend; this project is TensorFlow-native.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"
