"""What torch.compile needs outside Python: a C++ compiler, and a cache folder for its
kernels. Cheap: the checks ask before torch is imported."""

import os
import shutil
from typing import Optional


def cpp_compiler() -> Optional[str]:
    """The C++ compiler torch.compile's inductor builds its kernels with ($CXX or g++)."""
    return shutil.which(os.environ.get("CXX") or "g++")


def use_cache_dir() -> str:
    """Points torch.compile's inductor caches at ~/.cache/bert-classifier/inductor
    ($XDG_CACHE_HOME respected) unless TORCHINDUCTOR_CACHE_DIR is set: kept across
    reboots, unlike inductor's default in /tmp. run_classifier calls it first: importing
    torch._dynamo (building a transformers model does) sets the variable to that default."""
    if not os.environ.get("TORCHINDUCTOR_CACHE_DIR"):
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(base, "bert-classifier", "inductor")
    return os.environ["TORCHINDUCTOR_CACHE_DIR"]
