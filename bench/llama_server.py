"""llama.cpp's own `llama-server`, built once from the llama.cpp sources that the installed
llama-cpp-python's sdist carries (the same engine as the embedded model), into bench/.cache/.

Never a dependency of the project: the benchmark's anchor only. `pip download` fetches the sdist
of the installed version; cmake builds the `llama-server` target (a few minutes on 2 cores,
under `nice`); later runs find the binary and skip all of it.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from importlib.metadata import version
from pathlib import Path

from bench.litellm_env import CACHE_DIR

BUILD_DIR = CACHE_DIR / "llama-server-build"
SOURCES_DIR = CACHE_DIR / "llama-cpp-python-src"


def binary() -> Path:
    return BUILD_DIR / "bin" / "llama-server"


def sources() -> Path:
    """llama.cpp's sources from the sdist of the installed llama-cpp-python, fetched once."""
    llama_cpp_dir = SOURCES_DIR / "vendor" / "llama.cpp"
    if (llama_cpp_dir / "CMakeLists.txt").is_file():
        return llama_cpp_dir
    wanted = version("llama_cpp_python")
    download = CACHE_DIR / "sdist"
    download.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", str(download),
         f"llama-cpp-python=={wanted}"],
        check=True,
    )
    archive = next(download.glob(f"llama_cpp_python-{wanted}.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(CACHE_DIR, filter="data")
    (CACHE_DIR / f"llama_cpp_python-{wanted}").rename(SOURCES_DIR)
    return llama_cpp_dir


def ensure_built() -> Path:
    """The llama-server binary, built first if it is not there (cmake and a C++ compiler needed)."""
    if binary().is_file():
        return binary()
    source = sources()
    log = CACHE_DIR / "llama-server-build.log"
    print(f"[llama-server] building from {source} (a few minutes; log {log})", file=sys.stderr)
    with log.open("w") as out:
        subprocess.run(
            ["nice", "-n", "19", "cmake", "-S", str(source), "-B", str(BUILD_DIR), "-DCMAKE_BUILD_TYPE=Release",
             "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
             "-DBUILD_SHARED_LIBS=OFF"],
            check=True, stdout=out, stderr=subprocess.STDOUT,
        )
        subprocess.run(
            ["nice", "-n", "19", "cmake", "--build", str(BUILD_DIR), "--target", "llama-server", "-j2"],
            check=True, stdout=out, stderr=subprocess.STDOUT,
        )
    return binary()
