import atexit
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Same quiet TensorFlow as the Makefile, for a bare `pytest` run too.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
# The grader keeps the instructor's secret in the user's configuration folder (XDG_CONFIG_HOME): every grader the
# tests run, in this process or as a command, finds a throw-away one instead of the real ~/.config/course.
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="course-tests-config-")
atexit.register(shutil.rmtree, os.environ["XDG_CONFIG_HOME"], True)
# No MPLBACKEND here: kernels started by the tests inherit the environment, and under Agg `plt.show()` in a
# notebook silently draws nothing. This process itself never shows a figure.


# Debian's Chromium, never a browser Playwright downloads; flags that keep it off the (closed) network.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def every_chapter_graded(tmp_path_factory):
    """Every chapter's solution, exercise and partial notebook, graded once per session (tests/every_chapter.py):
    share it instead of grading those notebooks again."""
    import every_chapter

    return every_chapter.graded_once(tmp_path_factory)
