# Shared by the data_prep scripts: fail fast, find the kfgrpo CLI and the Hub CLI.
set -euo pipefail
KFGRPO=${KFGRPO:-$(command -v kfgrpo || echo .venv/bin/kfgrpo)}
HF=${HF:-$(command -v hf || echo .venv/bin/hf)}
