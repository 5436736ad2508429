"""A crash in a child process is one clear error in the caller, which goes on."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

import pytest

from personasim.testing import ChildCrashed, ChildFailed, run_in_child


def _add(a: int, b: int, *, scale: int = 1) -> dict[str, int]:
    return {"sum": (a + b) * scale, "pid": os.getpid()}


def _segfault_by_signal() -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def _segfault_in_native_code() -> None:
    print("about to read address 0", file=sys.stderr, flush=True)
    ctypes.string_at(0)  # a real invalid read inside libc


def _exit_early() -> None:
    os._exit(7)


def _raise() -> None:
    raise ValueError("the child's own message")


def _sleep(seconds: float) -> None:
    import time

    time.sleep(seconds)


def test_the_result_comes_back_from_another_process():
    out = run_in_child(_add, 2, 3, scale=10)
    assert out["sum"] == 50 and out["pid"] != os.getpid()


def test_a_child_that_sends_itself_sigsegv_is_one_clear_error_and_the_caller_goes_on():
    with pytest.raises(ChildCrashed, match=r"_segfault_by_signal died from SIGSEGV \(signal 11\)"):
        run_in_child(_segfault_by_signal)
    # The test process is unharmed: the next child runs as usual.
    assert run_in_child(_add, 1, 1)["sum"] == 2


def test_a_native_crash_reports_the_stderr_of_the_child():
    with pytest.raises(ChildCrashed) as caught:
        run_in_child(_segfault_in_native_code)
    message = str(caught.value)
    assert "SIGSEGV" in message
    assert "about to read address 0" in message  # what the child wrote before dying
    assert "Fatal Python error: Segmentation fault" in message  # the fault handler's stack


def test_an_early_exit_and_an_exception_are_told_apart():
    with pytest.raises(ChildCrashed, match="exited with status 7 without a result"):
        run_in_child(_exit_early)
    with pytest.raises(ChildFailed, match="ValueError: the child's own message") as caught:
        run_in_child(_raise)
    assert "Traceback" in str(caught.value)


def test_a_child_past_its_time_is_killed():
    with pytest.raises(ChildCrashed, match="more than 2 s and was killed"):
        run_in_child(_sleep, 60, timeout=2)
