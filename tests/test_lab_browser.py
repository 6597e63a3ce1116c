"""A student's JupyterLab in a real browser: started the way ``make lab`` starts it, in a work folder made by
``course start``; the exercise shows its [TODO] lines, a solved notebook its [PASS] lines; nothing leaves 127.0.0.1
and the console stays clean."""
from __future__ import annotations

import subprocess
import sys
from urllib.parse import urlparse

import nbformat
import pytest

from course import lab
from course.chapters import get_chapter
from course.notebooks import ROOT, solution_path

CHAPTER = "01_softmax"
#: Generous: a kernel imports TensorFlow and torch, and the machine may be busy. Conditions are waited for.
WAIT_MS = 240_000


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    base = tmp_path_factory.mktemp("lab")
    work = base / "work"
    started = subprocess.run([sys.executable, "-m", "course", "start", str(work)], capture_output=True, text=True,
                             cwd=ROOT, timeout=120)
    assert started.returncode == 0, started.stderr
    solved = nbformat.read(solution_path(CHAPTER), as_version=4)
    for cell in solved.cells:  # the [PASS] lines must come from this run, not from stored outputs
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    (work / "solved").mkdir()
    nbformat.write(solved, work / "solved" / f"{CHAPTER}.ipynb")

    # The student's own Jupyter folders are not touched; the settings folder shows every cell (no windowing),
    # so that the outputs of cells below the fold are in the page.
    env = lab.lab_environment()
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "IPYTHONDIR"):
        env[name] = str(base / name.lower())
    settings = base / "jupyter_config_dir" / "lab" / "user-settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    (settings / "tracker.jupyterlab-settings").write_text('{"windowingMode": "none"}', encoding="utf-8")
    lab.install_jupyter_files()
    port, token = lab.free_port(0), "course-browser-test-token"
    log = open(base / "lab.log", "wb")
    process = subprocess.Popen(lab.lab_command(work, port, token), env=env, stdout=log, stderr=log,
                               cwd=base, start_new_session=True)
    try:
        assert lab.wait_until_ready(f"http://127.0.0.1:{port}/api/status?token={token}", process, timeout=180), \
            (base / "lab.log").read_text(errors="replace")[-3000:]
        yield {"url": f"http://127.0.0.1:{port}", "token": token, "work": work}
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def run_all(browser, server, notebook: str) -> tuple[list[str], list[str]]:
    """Open ``notebook``, run all its cells, and return the output lines and the problems seen."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    problems: list[str] = []

    def outside(route):
        if urlparse(route.request.url).hostname not in (None, "127.0.0.1"):
            problems.append(f"request outside 127.0.0.1: {route.request.url}")
            return route.abort()
        return route.continue_()

    context.route("**/*", outside)
    page = context.new_page()
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    # A workspace of its own, reset: only this notebook is open, so "Run All Cells" can only mean it.
    workspace = notebook.replace("/", "-").replace(".", "-")
    page.goto(f"{server['url']}/lab/workspaces/{workspace}/tree/{notebook}?reset&token={server['token']}")
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell").first.click(timeout=WAIT_MS)
    # The course's kernel is up when the status bar says so.
    page.get_by_text("Python 3 (course) | Idle").wait_for(timeout=WAIT_MS)
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    # Done when no cell is queued or running ("[*]") and the last code cell has a prompt number.
    page.wait_for_function(
        """() => {
            const prompts = [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) '
                                                          + '.jp-CodeCell .jp-InputPrompt')];
            return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
        }""", timeout=WAIT_MS, polling=500)
    page.screenshot(path=str(server["work"].parent / f"{workspace}.png"))
    text = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output").all_inner_texts()
    context.close()
    return [line for block in text for line in block.splitlines()], problems


def test_the_exercise_runs_and_shows_todo_for_every_question(browser, server):
    lines, problems = run_all(browser, server, f"{CHAPTER}.ipynb")
    questions = [q.name for q in get_chapter(CHAPTER).questions]
    for name in questions:
        assert any(line.startswith(f"[TODO] {name}:") for line in lines), (name, lines)
    assert not any(line.startswith(("[PASS]", "[FAIL]")) for line in lines)
    assert problems == []


def test_a_solved_notebook_shows_pass_for_every_question(browser, server):
    lines, problems = run_all(browser, server, f"solved/{CHAPTER}.ipynb")
    for name in (q.name for q in get_chapter(CHAPTER).questions):
        assert any(line.startswith(f"[PASS] {name} ") for line in lines), (name, lines)
    assert not any(line.startswith(("[FAIL]", "[TODO]")) for line in lines), lines
    assert problems == []
