"""Run a promptrec command in a fork of a process that has imported the libraries: the tests'
cheap stand-in for a fresh ``promptrec-train`` process.

A command run as a real process spends ~6 CPU-s importing torch, Lightning and transformers
before it does anything (Lightning alone pulls in torch._dynamo, scipy and torchmetrics' text
metrics); the suite runs dozens of them on 2 cores. Here a multiprocessing forkserver imports
them once per test worker, with nothing run, and each command is a fork of it: its own process,
environment, working directory, output files and exit code, as its console script would run.

Commands whose own process is the point stay real subprocesses (``conftest.run(real=True)``):
the ones that answer before torch loads, the first-run chatter check (test_cli.py), DDP (Lightning
relaunches the command) and the kill and Ctrl-C tests.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import runpy
import subprocess
import sys
import tempfile
import traceback
from importlib.metadata import entry_points
from pathlib import Path

# what a training or evaluation command imports before its first line of work
PRELOAD = [
    "promptrec.runtime.training",
    "promptrec.runtime.evaluation",
    "promptrec.train",
    "promptrec.cli.eval",
    "promptrec.cli.reproduce",
    "promptrec.cli.summarize",
]

_context = None


def _forkserver():
    global _context
    if _context is None:
        _context = multiprocessing.get_context("forkserver")
        _context.set_forkserver_preload(PRELOAD)
    return _context


def _command(program: str, args: list[str], cwd: str, env: dict, out: str, err: str) -> None:
    """In the fork: become the command (argv, environment, cwd, stdout/stderr), run its entry
    point (or the script, for a ``.py`` path), run the exit handlers a normal interpreter exit
    would run, exit with its code."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    for fd, path in ((1, out), (2, err)):
        os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
    sys.argv = [program, *args]
    code = 0
    try:
        if program.endswith(".py"):  # as `python script.py`: its folder first on the path
            sys.path.insert(0, str(Path(program).parent))
            runpy.run_path(program, run_name="__main__")
        else:
            (point,) = entry_points(group="console_scripts", name=Path(program).name)
            point.load()()
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:  # sys.exit("message"): printed, exit 1, as the interpreter does
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:  # noqa: BLE001 - the interpreter's own behaviour: traceback, exit 1
        traceback.print_exc()
        code = 1
    finally:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class Forked:
    """A command started in a fork; ``wait()`` gives what ``subprocess.run`` would have."""

    def __init__(self, argv: list[str], cwd: Path, env: dict):
        self.argv = argv[1:] if argv[0] == sys.executable else argv  # a script: `python x.py`
        self.folder = tempfile.TemporaryDirectory()
        self.out, self.err = Path(self.folder.name) / "stdout", Path(self.folder.name) / "stderr"
        self.child = _forkserver().Process(target=_command, args=(
            self.argv[0], self.argv[1:], str(cwd), env, str(self.out), str(self.err)))  # fmt: skip
        self.child.start()

    def wait(self, timeout: float) -> subprocess.CompletedProcess:
        self.child.join(timeout)
        if self.child.exitcode is None:
            self.child.kill()
            self.child.join()
            raise subprocess.TimeoutExpired(self.argv, timeout)
        with self.folder:
            return subprocess.CompletedProcess(self.argv, self.child.exitcode,
                                               self.out.read_text(errors="replace"),
                                               self.err.read_text(errors="replace"))  # fmt: skip


def run_forked(
    argv: list[str], cwd: Path, env: dict, timeout: float
) -> subprocess.CompletedProcess:
    """``subprocess.run(argv, capture_output=True, text=True)`` for a promptrec console script
    or, as ``[sys.executable, "script.py", …]``, a Python script."""
    return Forked(argv, cwd, env).wait(timeout)
