"""Training neural networks in Keras 3 and PyTorch, side by side.

Importing this package is cheap (no TensorFlow, no torch) and, as a side effect, keeps TensorFlow's C++ start-up
lines out of notebook outputs. That only works if ``course`` is imported *before* TensorFlow, which is why every
notebook of the course starts with ``import course``.
"""
import os as _os

# TensorFlow prints its oneDNN and CPU-feature notices to fd 2 before Python sees them; they vary per run (PIDs,
# timestamps) and would show as stderr boxes in the book and break nbval. Both variables are needed (see DESIGN.md).
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
_os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"
