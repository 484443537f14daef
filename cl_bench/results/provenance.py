"""What produced a result: package versions, the commit of the code this process loaded, and the
peak memory it used. Recorded in every results.json beside the numbers."""
from __future__ import annotations

import functools
import platform
import resource
import subprocess
from importlib.metadata import version
from pathlib import Path

PACKAGES = ("torch", "torchvision", "avalanche-lib", "hydra-core", "omegaconf", "cl-bench")


def package_versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except Exception:
            out[name] = None
    return out


@functools.cache  # the commit of the code this process loaded, not of whatever HEAD is later
def git_commit() -> str | None:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, check=True, timeout=5,
        ).stdout.strip()
    except Exception:
        return None


def peak_memory_mb(device) -> dict:
    out = {"host_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # Linux: KiB
    if device.type == "cuda":
        import torch

        out["cuda_allocated_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


git_commit()  # at import: a long sweep keeps reporting the commit it started from
