"""Where the runtime server's CPU goes per invocation: the server under cProfile while wrk drives it.

    .venv/bin/python benchmarks/profile_server.py [--sessions 16] [--seconds 10] [--top 40]
                                                  [--out FILE.prof] [-- SERVER OPTIONS...]

The server (`agentcore server run`, as `throughput.py` starts it, pinned to core 0) runs under
`python -m cProfile`; N sessions of the hello agent are driven by wrk on core 1 with pre-signed
InvokeAgentRuntime requests for `--seconds`; the server is then stopped (cProfile writes its file
on the way out) and the top entries by own time and by cumulative time are printed, per call.
Options after `--` go to the server, e.g. `-- --tracing off --no-metrics` to see what tracing and
metrics cost. cProfile slows the server down several times: read the shares, not the rates
(`throughput.py` measures those without a profiler).
"""

from __future__ import annotations

import argparse
import io
import os
import pstats
import signal
import stat
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from runtime_server import invocation_headers, invocation_path, new_session_id, running_server, wait_for
from throughput import AGENT, PAYLOAD, ServerContender, run_wrk

# Run in the server's interpreter: the module `-m` names, profiled from SIGUSR1 to SIGUSR2 only (the
# load, not start-up), on the main thread's CPU clock: on a shared core, wall time would charge the
# server for every moment a worker ran instead.
_RUNNER = """
import cProfile, os, runpy, signal, sys, time
out = sys.argv.pop(1)
profile = cProfile.Profile(time.thread_time)
signal.signal(signal.SIGUSR1, lambda *_: profile.enable())
def stop(*_):
    profile.disable()
    profile.dump_stats(out + ".part")
    os.replace(out + ".part", out)  # whole, or not there yet
signal.signal(signal.SIGUSR2, stop)
sys.argv = sys.argv[2:]
runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""


def _profiling_python(python: Path, out: Path, scratch: Path) -> Path:
    """An executable that runs `python -m module ...` with `_RUNNER`'s profiler, writing to `out`."""
    runner = scratch / "runner.py"
    runner.write_text(_RUNNER)
    wrapper = scratch / "python"
    wrapper.write_text(f'#!/bin/sh\nexec "{python}" "{runner}" "{out}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=16, help="sessions driven at once (default 16)")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of load (default 10)")
    parser.add_argument("--top", type=int, default=40, help="entries printed per ordering (default 40)")
    parser.add_argument("--out", type=Path, help="keep the profile in this file (pstats format)")
    parser.add_argument("server_options", nargs="*", help="options for `agentcore server run` (after --)")
    args = parser.parse_args(argv)
    python = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "python"
    with tempfile.TemporaryDirectory(prefix="oac-prof-") as scratch:
        out = args.out.resolve() if args.out else Path(scratch) / "server.prof"
        wrapper = _profiling_python(python, out, Path(scratch))
        with running_server(0, python=str(wrapper), options=args.server_options) as server:
            _, arn = server.deploy(AGENT, f"pf{os.getpid() % 10000}")
            session_ids = [new_session_id() for _ in range(args.sessions)]
            for session_id in session_ids:
                reply = server.signed("POST", invocation_path(arn), PAYLOAD, invocation_headers(session_id))
                if reply.status != 200:
                    raise RuntimeError(f"starting a session failed: {reply.status} {reply.body[:300]!r}")
            contender = ServerContender(server, arn, session_ids)
            targets = contender.targets(args.sessions)
            server.process.send_signal(signal.SIGUSR1)
            load = run_wrk(targets, args.seconds, 1, "1")
            server.process.send_signal(signal.SIGUSR2)
            wait_for(out.exists, 30, "the profile to be written")
        if load.errors:
            raise RuntimeError(f"{load.errors} failed requests")
        calls = max(1, load.requests)
        print(f"{load.requests} invocations at {load.rate:.0f}/s under the profiler", file=sys.stderr)
        for order in ("tottime", "cumulative"):
            text = io.StringIO()
            stats = pstats.Stats(str(out), stream=text)
            stats.sort_stats(order).print_stats(args.top)
            print(f"--- by {order}; µs per invocation = seconds × {1e6 / calls:.1f}")
            print(text.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
