"""Only one build step pyproject.toml cannot say: ship the exercise notebooks inside the package.

``exercises/`` stays the canonical place (``make exercises`` writes it, a test keeps it fresh); a wheel or a
``pip install`` of the repository gets a copy in ``course/exercises/`` so ``python -m course start`` works
anywhere. Editable installs need no copy: they read ``exercises/`` in the checkout.
"""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildWithExercises(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "course" / "exercises"
        target.mkdir(parents=True, exist_ok=True)
        for notebook in sorted((HERE / "exercises").glob("[0-9][0-9]_*.ipynb")):
            shutil.copyfile(notebook, target / notebook.name)


setup(cmdclass={"build_py": BuildWithExercises})
