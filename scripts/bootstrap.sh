#!/usr/bin/env bash
# Create .venv and install igrog-gadget with its test, Gadgetron, batch (Dask) and MRD v2 extras.
#
# torch: the CPU build by default (TORCH_SPEC=torch==2.13.0). A GPU user picks theirs, e.g.
#   TORCH_SPEC="torch" TORCH_INDEX_URL=https://download.pytorch.org/whl/cu124 bash scripts/bootstrap.sh
# or, on a machine whose PyPI torch is a CUDA build, the CPU wheel index:
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu bash scripts/bootstrap.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
TORCH_SPEC="${TORCH_SPEC:-torch==2.13.0}"

if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
    if [ -n "${TORCH_INDEX_URL:-}" ]; then
        "$VENV/bin/python" -m pip install --quiet "$TORCH_SPEC" --index-url "$TORCH_INDEX_URL"
    else
        "$VENV/bin/python" -m pip install --quiet "$TORCH_SPEC"
    fi
fi
"$VENV/bin/python" -m pip install --quiet -e ".[test,gadgetron,batch,mrd]"
"$VENV/bin/python" -c "import torch, igrog_gadget; print('igrog-gadget', igrog_gadget.__version__, 'torch', torch.__version__, 'cuda', torch.cuda.is_available())"
