"""Run a module under cProfile and write the stats when sent SIGUSR1, and when it ends on SIGTERM (the gateway's own
SIGTERM handling ends the process before cProfile's exit hook would): `python profiled.py STATS_FILE -m MODULE ...`.
Also usable as a gateway command: `run.py --gateway-cmd "python benchmarks/profiled.py STATS -m hivegate"`."""

from __future__ import annotations

import cProfile
import os
import runpy
import signal
import sys
from types import FrameType

if __name__ == "__main__":
    stats_file, flag, module, *rest = sys.argv[1:]
    if flag != "-m":
        sys.exit("usage: profiled.py STATS_FILE -m MODULE [ARGS...]")
    profile = cProfile.Profile()

    def dump(signum: int, frame: FrameType | None) -> None:
        profile.disable()
        profile.dump_stats(stats_file)
        profile.enable()

    def dump_and_exit(signum: int, frame: FrameType | None) -> None:
        dump(signum, frame)
        os._exit(0)

    signal.signal(signal.SIGUSR1, dump)
    signal.signal(signal.SIGTERM, dump_and_exit)  # uvicorn restores this handler and re-raises SIGTERM when it stops
    sys.argv = [module, *rest]
    profile.enable()
    runpy.run_module(module, run_name="__main__", alter_sys=True)
