"""The two editions of the book.

* The **student edition** is the default build (``_config.yml`` + ``_toc.yml``): chapter pages and exercise notebooks.
  The solutions are never part of its source tree, so nothing can leak them (``hide_solutions`` alone would: through
  ``_sources/`` and the notebook downloads).
* The **instructor edition** adds the solution notebooks (shown with their committed, nbval-checked outputs, not
  re-executed) and the grading guide. Its configuration is derived from the student one here, so the two cannot drift.
"""
from __future__ import annotations

from pathlib import Path

import yaml

from .notebooks import ROOT

INSTRUCTOR_PAGES = [{"file": "book/grading-guide"}, {"glob": "solutions/[0-9]*"}]


def instructor_config(config: dict) -> dict:
    """The instructor edition's ``_config.yml``, from the student edition's."""
    config = yaml.safe_load(yaml.safe_dump(config))  # a deep copy
    config["title"] = f"{config['title']} (instructor edition)"
    config["exclude_patterns"] = [p for p in config.get("exclude_patterns", []) if p != "solutions"]
    sphinx = config.setdefault("sphinx", {}).setdefault("config", {})
    # Solutions are shown as committed: nbval re-runs them in CI, so the book need not.
    sphinx["nb_execution_excludepatterns"] = ["solutions/*"]
    return config


def instructor_toc(toc: dict) -> dict:
    """The instructor edition's ``_toc.yml``: the student one plus a part for instructors."""
    toc = yaml.safe_load(yaml.safe_dump(toc))
    toc.setdefault("parts", []).append({"caption": "For instructors", "chapters": INSTRUCTOR_PAGES})
    return toc


def write_instructor_sources(out_dir: Path, root: Path = ROOT) -> tuple[Path, Path]:
    """Write the instructor edition's config and table of contents into ``out_dir``; returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    config_path, toc_path = out_dir / "_config.yml", out_dir / "_toc.yml"
    config = yaml.safe_load((root / "_config.yml").read_text(encoding="utf-8"))
    toc = yaml.safe_load((root / "_toc.yml").read_text(encoding="utf-8"))
    config_path.write_text(yaml.safe_dump(instructor_config(config), sort_keys=False), encoding="utf-8")
    toc_path.write_text(yaml.safe_dump(instructor_toc(toc), sort_keys=False), encoding="utf-8")
    return config_path, toc_path
