"""``python -m course lab [DIR]``: JupyterLab on 127.0.0.1 in the student's work folder, offline.

The kernel carries the course's environment (TensorFlow's log silence, the Keras backend) through a kernelspec
written into this Python's prefix, found through ``JUPYTER_PATH``; the server is told not to fetch news, update
checks or extension listings, and its extension manager is read-only and hidden.
"""
from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

#: What every kernel of the course needs before TensorFlow is imported (DESIGN.md: both TF variables are needed).
KERNEL_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2", "TF_ENABLE_ONEDNN_OPTS": "0", "KERAS_BACKEND": "tensorflow"}
#: This Python's own Jupyter folders (kernelspec and lab page config), inside the virtual environment.
DATA_DIR = Path(sys.prefix) / "share" / "course" / "jupyter"
CONFIG_DIR = Path(sys.prefix) / "share" / "course" / "jupyter-config"
#: Server settings that keep JupyterLab from reaching outside this machine.
OFFLINE_ARGS = (
    "--LabApp.news_url=None",
    "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    "--LabApp.extension_manager=readonly",
    "--ServerApp.open_browser=False",
)
#: Front-end plugins that would look things up on the internet. The announcements plugin asks about news even
#: when the server's news feed is off (JupyterLab 4.6), so it goes too.
DISABLED_PLUGINS = {"@jupyterlab/extensionmanager-extension": True,
                    "@jupyterlab/apputils-extension:announcements": True}


def kernel_spec() -> dict:
    """The kernelspec JupyterLab will use for the notebooks (their metadata names ``python3``)."""
    return {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Python 3 (course)", "language": "python", "env": dict(KERNEL_ENV),
            "metadata": {"debugger": True}}


def kernel_path() -> Path:
    return DATA_DIR / "kernels" / "python3" / "kernel.json"


def install_jupyter_files() -> None:
    """Write the kernelspec and the page config (idempotent; only this Python's prefix is touched)."""
    for path, content in ((kernel_path(), kernel_spec()),
                          (CONFIG_DIR / "labconfig" / "page_config.json", {"disabledExtensions": DISABLED_PLUGINS})):
        text = json.dumps(content, indent=1) + "\n"
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")


def lab_environment(base: dict | None = None) -> dict:
    """The server's environment: the kernel's variables, and our Jupyter folders searched first."""
    env = dict(os.environ if base is None else base)
    env.update(KERNEL_ENV)
    for name, folder in (("JUPYTER_PATH", DATA_DIR), ("JUPYTER_CONFIG_PATH", CONFIG_DIR)):
        env[name] = os.pathsep.join([str(folder)] + [p for p in env.get(name, "").split(os.pathsep) if p])
    return env


def free_port(preferred: int = 8888) -> int:
    """``preferred`` if nothing listens there on 127.0.0.1, else any free port."""
    for port in (preferred, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise OSError("no free port on 127.0.0.1")


def lab_command(folder: Path, port: int, token: str) -> list[str]:
    """The command line that starts JupyterLab in ``folder`` on 127.0.0.1."""
    command = [sys.executable, "-m", "jupyterlab", f"--ServerApp.root_dir={folder}", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               *OFFLINE_ARGS]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # JupyterLab refuses root unless told; only then
    return command


def wait_until_ready(url: str, process: subprocess.Popen, timeout: float = 120) -> bool:
    """Poll the server's status API until it answers (False if the process ended first or time ran out)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return True
        except OSError:
            time.sleep(0.2)
    return False


def run_lab(folder: Path, port: int | None = None) -> int:
    """Start JupyterLab in ``folder``, print its URL once it answers, and serve until interrupted."""
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        from .errors import CourseError

        raise CourseError("JupyterLab is not installed: run `make lab` in the repository, "
                          "or `pip install 'course[lab]'`") from None
    started = time.monotonic()
    install_jupyter_files()
    port = free_port() if port is None else port
    token = secrets.token_hex(24)
    process = subprocess.Popen(lab_command(folder.resolve(), port, token), env=lab_environment())
    base = f"http://127.0.0.1:{port}"
    try:
        if not wait_until_ready(f"{base}/api/status?token={token}", process):
            process.terminate()
            print("error: JupyterLab did not start (see its log above)", file=sys.stderr)
            return 1
        print(f"\nJupyterLab is ready ({time.monotonic() - started:.1f} s), serving {folder}:\n"
              f"    {base}/lab?token={token}\nStop it with Ctrl-C.\n", flush=True)
        return process.wait()
    except KeyboardInterrupt:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        return 0
