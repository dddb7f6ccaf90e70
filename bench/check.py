"""``python -m bench.check``: the benchmark's own checks, apart from the product's unit suite.

They check the tools the figures come from (the load generators, the mock upstream, the bare
proxy, the instruction and write counters, the reports and verdicts). The full run installs what
they drive (wrk, valgrind, strace, node) with apt-get when missing; ``--smoke`` runs only the
checks that need none of them (the short run CI does). Extra arguments go to pytest.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

CHECKS = Path(__file__).resolve().parent / "checks"
# command -> the Debian package that brings it
TOOLS = {"wrk": "wrk", "valgrind": "valgrind", "strace": "strace", "node": "nodejs"}


def install_tools() -> None:
    missing = sorted({package for command, package in TOOLS.items() if shutil.which(command) is None})
    if not missing:
        return
    print(f"== installing {', '.join(missing)} (apt-get)", flush=True)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(
        [*sudo, "apt-get", "install", "-y", "-qq", *missing], check=True, env=env, stdout=subprocess.DEVNULL
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.check", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("--smoke", action="store_true", help="only the checks that drive no external tool")
    args, pytest_args = parser.parse_known_args(argv)
    if args.smoke:
        pytest_args = ["-m", "not tools", *pytest_args]
    else:
        install_tools()
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(CHECKS), *pytest_args]
    return subprocess.run(command, cwd=CHECKS.parents[1]).returncode


if __name__ == "__main__":
    sys.exit(main())
