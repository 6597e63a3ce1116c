import os

# Same quiet TensorFlow as the Makefile, for a bare `pytest` run too.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
# No MPLBACKEND here: kernels started by the tests inherit the environment, and under Agg `plt.show()` in a
# notebook silently draws nothing. This process itself never shows a figure.
