#!/usr/bin/env bash
# The wheel of scripts/python-wheel.sh installs a package that works on its own: in a fresh
# virtual environment, from a folder outside this tree, with no LEDIFLOW_LIBRARY, `import
# lediflow` loads the library inside the package and samples the shipped model.
#   bindings/python/tests/test_wheel.sh [BUILD_DIR]   (run by scripts/test.sh with the debug build)
set -euo pipefail
cd "$(dirname "$0")/../../.."
ROOT=$(pwd)
WHEEL=$(bash scripts/python-wheel.sh "${1:-target/release}")
VENV=$(mktemp -d)
trap 'rm -rf "$VENV"' EXIT
# The system's numpy is reused (no download); the package itself comes from the wheel only.
python3 -m venv --system-site-packages "$VENV"
"$VENV/bin/python" -m pip install --quiet --no-deps --force-reinstall "$WHEEL"
cd "$VENV"
env -u LEDIFLOW_LIBRARY -u PYTHONPATH "$VENV/bin/python" - "$ROOT/models/dcss-small-ledi.safetensors" <<'PY'
import sys
from pathlib import Path

import lediflow

package = Path(lediflow.__file__).resolve().parent
lib = lediflow.library_path().resolve()
assert lib.parent == package, f"the library came from {lib}, not from the installed package {package}"
assert "site-packages" in str(package), package
model = lediflow.Model(sys.argv[1])
images = model.sample(2, seed=1, steps=2)
assert images.shape == (2, 32, 32, 4), images.shape
print(f"wheel OK: lediflow {lediflow.version()} from {lib}")
PY
