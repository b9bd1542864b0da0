#!/usr/bin/env bash
# bitrnn against PyTorch on the gated cells (and the tanh RNN), same machine, same run:
# for each cell and hidden size, `bitrnn bench` and scripts/pytorch_bench.py alternate
# (A B A B), 2 threads each, the seed's shape (250 streams, time_step 5); prints one line per
# (cell, hidden) with both medians of the two runs and their ratio. Run on an idle machine
# (PyTorch's OpenMP threads spin-wait against other processes; see pytorch_bench.py).
#
#   PYTHON=/work/venv-torch/bin/python scripts/cells_vs_pytorch.sh [cells] [hiddens]
#   e.g. scripts/cells_vs_pytorch.sh "gru lstm" "6 64 256"
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
CELLS=${1:-"gru lstm"}
HIDDENS=${2:-"6 64 256"}
BIN=target/release/bitrnn
cargo build --release --quiet
echo "# $(date -u +%FT%TZ) $(lscpu | sed -n 's/^Model name: *//p'), $($BIN --version)"
for cell in $CELLS; do
    for h in $HIDDENS; do
        b=(); p=()
        for _ in 1 2; do
            b+=("$($BIN bench --cell "$cell" --hidden "$h" --threads 2 --seconds 2 --json \
                | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["sample_steps_per_s"])')")
            p+=("$($PYTHON scripts/pytorch_bench.py --cell "$cell" --hidden "$h" --threads 2 \
                | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["sample_steps_per_s"])')")
        done
        python3 - "$cell" "$h" "${b[@]}" "${p[@]}" <<'PY'
import statistics, sys
cell, h, b1, b2, p1, p2 = sys.argv[1], sys.argv[2], *map(float, sys.argv[3:])
b, p = statistics.median([b1, b2]), statistics.median([p1, p2])
print(f"{cell:>4} hidden {h:>3}: bitrnn {b:>12,.0f}  pytorch {p:>10,.0f}  ratio {b / p:6.1f}x"
      f"  (bitrnn {b1:,.0f} {b2:,.0f}; pytorch {p1:,.0f} {p2:,.0f})")
PY
    done
done
