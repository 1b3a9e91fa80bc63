"""A tiny class-conditional model for the host tests: two classes of flat 16x16 images ("dark",
"light"), trained for a few seconds with the lediflow CLI (LEDIFLOW_CLI, set by
scripts/test-hosts.sh). Its quality does not matter: the hosts must give exactly the library's
pixels for a class, and refuse a class the model lacks."""

import os
import subprocess
from pathlib import Path

import numpy as np

from pngio import write_png

CLASSES = ("dark", "light")


def make(folder: Path) -> Path:
    """Trains the model under `folder` and returns its path."""
    data = folder / "data"
    for k, name in enumerate(CLASSES):
        (data / name).mkdir(parents=True, exist_ok=True)
        for i in range(6):
            v = 30 + 5 * i if k == 0 else 220 - 5 * i
            write_png(data / name / f"{i}.png", np.full((16, 16, 4), (v, v, v, 255), np.uint8))
    out = folder / "classes.safetensors"
    cli = os.environ.get("LEDIFLOW_CLI", "lediflow")
    subprocess.run([cli, "train", "--data", str(data), "--size", "16", "--val-every", "0", "--classes",
                    "--preset", "tiny", "--steps-aux", "50", "--steps-latent", "200", "--steps-fm", "50",
                    "--batch", "12", "--run-dir", str(folder / "run"), "--out", str(out)],
                   check=True, capture_output=True)
    return out
