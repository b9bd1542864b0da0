#!/usr/bin/env bash
# bitrnn against PyTorch on a character model, same text, same shape, same run: for each
# hidden size, `bitrnn train --text` and scripts/pytorch_text_bench.py (one-hot nn.RNN(V, H),
# then the nn.Embedding(V, H) + nn.RNN(H, H) form) alternate for $ROUNDS rounds, 2 threads each,
# 1000 streams (batch_size = (bytes - 1) // 1000), windows of 25 steps, Adagrad 0.1 (TF's
# semantics). bitrnn's figure is the median of its epochs' `epoch_sample_steps_per_s` ($EPOCHS
# epochs a round), PyTorch's the median of 5 timed repetitions after a warm-up; each side's
# figure is the median over the rounds. Prints one line per hidden size with both figures
# and their ratios. The machine's load average goes in the header: PyTorch's OpenMP threads
# spin-wait against other processes (scripts/pytorch_bench.py), so measure on an idle machine
# where there is one.
#
#   PYTHON=/work/venv-torch/bin/python scripts/text_vs_pytorch.sh [TEXT] [hiddens]
#   e.g. scripts/text_vs_pytorch.sh "" "128 512"      # TEXT "": the vim documentation (~1.1 MB)
#   environment: PYTHON (with torch), BITRNN (a built binary: skips cargo build), ROUNDS (2),
#   EPOCHS (3), STREAMS (1000), THREADS (2), VARIANTS (PyTorch's forms, "onehot embedding";
#   a form with "-passive", e.g. onehot-passive, runs with OMP_WAIT_POLICY=PASSIVE, which
#   spares PyTorch most of the spin-waiting on a loaded machine)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TEXT=${1:-}
HIDDENS=${2:-"128 512"}
ROUNDS=${ROUNDS:-2}
EPOCHS=${EPOCHS:-3}
STREAMS=${STREAMS:-1000}
THREADS=${THREADS:-2}
VARIANTS=${VARIANTS:-"onehot embedding"}
BIN=${BITRNN:-target/release/bitrnn}
if [ -z "${BITRNN:-}" ]; then cargo build --release --quiet; fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
if [ -z "$TEXT" ]; then
    # The text of issue 14: the Vim user manual and eight reference chapters (not committed).
    D=/usr/share/vim/vim90/doc
    TEXT=$TMP/vim.txt
    cat $D/usr_*.txt $D/{intro,starting,editing,motion,change,insert,undo,pattern}.txt >"$TEXT"
fi
BYTES=$(stat -c %s "$TEXT")
B=$(( (BYTES - 1) / STREAMS ))
echo "# $(date -u +%FT%TZ) $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores, $($BIN --version | head -1)," \
    "torch $($PYTHON -c 'import torch; print(torch.__version__)'), OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-unset} (except *-passive)"
echo "# text $TEXT: $BYTES bytes; $((  (BYTES - 1) / B )) streams of $B steps, windows of 25, $THREADS threads;" \
    "load average $(cut -d' ' -f1-3 /proc/loadavg)"
for h in $HIDDENS; do
    b=(); p=()
    for _ in $(seq "$ROUNDS"); do
        b+=("$($BIN train --text "$TEXT" --hidden "$h" --time-step 25 --batch-size "$B" \
            --epochs "$EPOCHS" --threads "$THREADS" --json --quiet --out "$TMP/run" \
            | python3 -c 'import json,statistics,sys; print(statistics.median(json.loads(sys.stdin.readline())["epoch_sample_steps_per_s"]))')")
        for v in $VARIANTS; do
            policy=()
            case $v in *-passive) policy=(env OMP_WAIT_POLICY=PASSIVE) ;; esac
            p+=("$("${policy[@]}" $PYTHON scripts/pytorch_text_bench.py --text "$TEXT" --hidden "$h" \
                --batch-size "$B" --threads "$THREADS" --input "${v%-passive}" \
                | python3 -c 'import json,sys; print(json.loads(sys.stdin.readline())["sample_steps_per_s"])')")
        done
    done
    python3 - "$h" "$ROUNDS" "$VARIANTS" "${b[@]}" "${p[@]}" <<'PY'
import statistics, sys
h, n, variants = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
v = list(map(float, sys.argv[4:]))
b, p = v[:n], v[n:]
mb = statistics.median(b)
runs = lambda xs: " ".join(f"{x:,.0f}" for x in xs)
line = f"hidden {h:>4}: bitrnn {mb:>10,.0f}"
detail = [f"bitrnn {runs(b)}"]
for i, name in enumerate(variants):
    xs = p[i::len(variants)]
    m = statistics.median(xs)
    line += f"  pytorch {name} {m:>9,.0f} ({mb / m:5.1f}x)"
    detail.append(f"{name} {runs(xs)}")
print(f"{line}  sample-steps/s  [{'; '.join(detail)}]")
PY
done
echo "# load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
