"""The commands: one module per command, each with ``main(argv=None) -> int``.

Installed as console scripts (``osc-tf-train``, ``osc-tf-evaluate``, ``osc-tf-export``,
``osc-tf-prepare-data``, ``osc-tf-sweep``, ``osc-tf-import-original``); also
``python -m osc_tf.cli.<command>`` (``python -m osc_tf.train`` for training) and
the thin ``scripts/<command>.py`` of a checkout. A module imports TensorFlow and
the library only inside ``main``, after ``common.start`` has set the process up.
"""
