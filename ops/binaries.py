"""Where a server's program is: the package's own folders first, then PATH."""
from __future__ import annotations

import os
import shutil


class NotInstalled(RuntimeError):
    """A server's program is not on this machine."""


def find(name: str, folders: tuple[str, ...], missing: str) -> str:
    """The path of `name`; NotInstalled(`missing`, e.g. how to install it) when there is none."""
    for folder in folders:
        if os.path.exists(os.path.join(folder, name)):
            return os.path.join(folder, name)
    found = shutil.which(name)
    if not found:
        raise NotInstalled(f"{name} is not installed ({missing})")
    return found
