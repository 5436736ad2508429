"""Calling native code in a child process, so that its crash is an error, not the end
of the caller.

A segmentation fault inside a native inference library (llama.cpp, a CUDA kernel) kills
the whole Python process: under pytest, the rest of the suite never runs or reports.
:func:`run_in_child` calls a function in a fresh interpreter (``spawn``: no inherited
threads or CUDA state) and hands its return value back; when the child dies from a
signal, exits early or runs past its time, the caller gets :class:`ChildCrashed` with the
signal's name and the last lines the child wrote to stderr (Python's fault handler
prints the native stack there).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from personasim.errors import PersonaSimError

__all__ = ["ChildCrashed", "ChildFailed", "run_in_child"]

T = TypeVar("T")

_STDERR_LINES = 40
_LINE_CHARS = 300


class ChildCrashed(PersonaSimError):
    """The child process died without answering (a signal, an early exit, a timeout)."""


class ChildFailed(PersonaSimError):
    """The function raised an exception in the child; the message holds its traceback."""


def _child_main(
    conn: Any, stderr_path: str, function: Callable[..., Any], args: tuple, kwargs: dict
) -> None:
    import faulthandler

    fd = os.open(stderr_path, os.O_WRONLY | os.O_APPEND)
    os.dup2(fd, 2)
    faulthandler.enable()
    try:
        result = function(*args, **kwargs)
    except BaseException as e:  # everything goes back to the caller
        conn.send(("error", f"{type(e).__name__}: {e}", traceback.format_exc()))
    else:
        conn.send(("ok", result, ""))
    conn.close()


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "was still running"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"died from {name} (signal {-code})"
    return f"exited with status {code} without a result"


def run_in_child(
    function: Callable[..., T], *args: Any, timeout: float = 900.0, **kwargs: Any
) -> T:
    """Call ``function(*args, **kwargs)`` in a fresh Python process and return its result.

    `function`, its arguments and its result must pickle (a module-level function).

    Raises:
        ChildCrashed: The child died from a signal, exited without a result or ran longer
            than `timeout` seconds (it is then killed). The message names the function,
            the signal and the tail of the child's stderr.
        ChildFailed: `function` raised; the message holds the child's traceback.
    """
    name = getattr(function, "__qualname__", repr(function))
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    with tempfile.TemporaryDirectory(prefix="personasim-child-") as tmp:
        stderr_path = Path(tmp) / "stderr.txt"
        stderr_path.touch()
        process = context.Process(
            target=_child_main,
            args=(sender, str(stderr_path), function, args, kwargs),
            name=f"personasim-child:{name}",
        )
        process.start()
        sender.close()
        answer = None
        if receiver.poll(timeout):
            try:
                answer = receiver.recv()
            except EOFError:  # the child closed the pipe by dying
                answer = None
        process.join(timeout=30 if answer is not None else 5)
        if process.is_alive():
            process.kill()
            process.join()
            if answer is None:
                raise ChildCrashed(
                    f"{name} ran in a child process for more than {timeout:g} s and was "
                    f"killed{_tail(stderr_path)}"
                )
        receiver.close()
        if answer is None:
            raise ChildCrashed(
                f"{name} {_describe_exit(process.exitcode)} in a child process; the caller "
                f"goes on{_tail(stderr_path)}"
            )
    status, value, trace = answer
    if status == "error":
        raise ChildFailed(f"{name} raised in a child process: {value}\n{trace}")
    return value  # type: ignore[no-any-return]


def _tail(path: Path) -> str:
    """The child's last stderr lines, without the fault handler's list of the extension
    modules loaded (one line of thousands of characters)."""
    lines = [
        line if len(line) <= _LINE_CHARS else line[:_LINE_CHARS] + " ..."
        for line in path.read_text(errors="replace").strip().splitlines()
        if not line.startswith("Extension modules:")
    ]
    if not lines:
        return ""
    return "; its stderr ended with:\n" + "\n".join(lines[-_STDERR_LINES:])
