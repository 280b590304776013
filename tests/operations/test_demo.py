"""The demo's start-up checks: a busy port is a clear message, not a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from sandbox.processes import ROOT


def test_a_busy_port_is_named_with_the_way_out(tmp_path):
    with socket.socket() as taken:
        # The kernel hands out a port nobody holds; the demo's API port is made to be it.
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        offset = taken.getsockname()[1] - 8080
        result = subprocess.run([sys.executable, "-m", "celgate.demo", "--port-offset",
                                 str(offset)], cwd=ROOT, capture_output=True, text=True,
                                timeout=60, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 2
    # Named among the busy ones: the offset lands in the ephemeral range, where another port
    # of the demo may happen to be taken by an outgoing connection at the same moment.
    assert "port(s) in use:" in result.stdout and f"{8080 + offset} (API)" in result.stdout
    assert "--port-offset" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr
