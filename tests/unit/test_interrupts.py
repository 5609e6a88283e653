"""Ctrl-C reaching the CLI mid-task: a run started with SIGINT ignored (nohup, a shell's background job, some CI
runners) keeps ignoring it, as Python itself does, and finishes; a run started with the default stops, exit 130."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.faults import invoke_cmd

HELLO = '#include <stdio.h>\nint main(void){ puts("hello"); return 0; }\n'


@pytest.mark.parametrize("at_start", [signal.SIG_IGN, signal.SIG_DFL], ids=["ignored", "default"])
def test_ctrl_c_mid_build_stops_the_run_unless_it_started_ignored(tmp_path, at_start):
    (tmp_path / "app.c").write_text(HELLO)
    started, go = tmp_path / "started", tmp_path / "go"
    # Each gcc stage waits for the test: the signal comes while the task runs, long after the CLI set its handlers.
    gate = f"-wrapper 'sh,-c,touch {started}; while [ ! -e {go} ]; do sleep 0.05; done; exec \"$0\" \"$@\"'"
    cmd = invoke_cmd("build", "--src", "app.c", "--out", "app", "--toolchain", "native", "--cflags", gate)
    with subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, at_start)) as proc:
        try:
            deadline = time.monotonic() + 60
            while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert started.exists(), proc.communicate(timeout=5)
            os.killpg(proc.pid, signal.SIGINT)  # to the run's process group, as a terminal's Ctrl-C
            time.sleep(0.5)
            running = proc.poll() is None
        finally:
            go.touch()
        out, err = proc.communicate(timeout=120)
    if at_start == signal.SIG_IGN:
        assert running and proc.returncode == 0, err
        assert (tmp_path / "app").is_file()
    else:
        assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
        assert not (tmp_path / "app").exists()
