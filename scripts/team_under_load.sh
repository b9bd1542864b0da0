#!/usr/bin/env bash
# Does `bitrnn train` with all cores beat `--threads 1` where users run it, not only in a warm
# benchmark? Alternating pairs (1 thread, then all), on the seed defaults, in three settings:
#   quiet   the outputs read afterwards (summary.json);
#   piped   `--json` piped into a Python reader that starts up while training runs;
#   busy    a busy loop pinned to the last CPU for the whole pair (another process that
#           wants a core: the team must adapt, not wait for it).
# Prints each pair's sample-steps/s and wall time, then per setting the medians and the
# median of the per-pair ratios (all threads / 1 thread).
#
#   scripts/team_under_load.sh [PAIRS] [EXTRA TRAIN FLAGS...]
#   BIN=target/v3/release/bitrnn scripts/team_under_load.sh 5 --epochs 30
set -euo pipefail
cd "$(dirname "$0")/.."
pairs=${1:-5}
shift || true
bin=${BIN:-target/release/bitrnn}
[ -x "$bin" ] || cargo build --release
out=$(mktemp -d)
trap 'rm -rf "$out"; [ -n "${busy:-}" ] && kill "$busy" 2>/dev/null || true' EXIT
last_cpu=$(( $(nproc) - 1 ))

run() { # setting threads -> "rate wall"
    local setting=$1 threads=$2
    case $setting in
    quiet)
        "$bin" train --threads "$threads" --quiet --out "$out/r" "${@:3}"
        python3 -c "import json; d=json.load(open('$out/r/summary.json')); print(d['sample_steps_per_s'], d['train_s'], d['solo_rounds'])" ;;
    piped)
        "$bin" train --threads "$threads" --json --out "$out/r" "${@:3}" 2>/dev/null |
            python3 -c "import json,sys; d=json.load(sys.stdin); print(d['sample_steps_per_s'], d['train_s'], d['solo_rounds'])" ;;
    busy)
        "$bin" train --threads "$threads" --quiet --out "$out/r" "${@:3}"
        python3 -c "import json; d=json.load(open('$out/r/summary.json')); print(d['sample_steps_per_s'], d['train_s'], d['solo_rounds'])" ;;
    esac
}

for setting in quiet piped busy; do
    busy=
    if [ "$setting" = busy ]; then
        taskset -c "$last_cpu" sh -c 'while :; do :; done' &
        busy=$!
        sleep 0.2
    fi
    : > "$out/$setting.txt"
    for i in $(seq "$pairs"); do
        one=$(run "$setting" 1 "$@")
        all=$(run "$setting" "$(nproc)" "$@")
        echo "$setting pair $i: 1 thread $one | $(nproc) threads $all" >&2
        echo "$one $all" >> "$out/$setting.txt"
    done
    [ -n "$busy" ] && kill "$busy" && wait "$busy" 2>/dev/null || true
    busy=
    python3 - "$setting" "$out/$setting.txt" <<'PY'
import statistics, sys
rows = [list(map(float, l.split())) for l in open(sys.argv[2])]
one = [r[0] for r in rows]; many = [r[3] for r in rows]
ratio = [r[3] / r[0] for r in rows]
wall = [r[4] / r[1] for r in rows]
print(f"{sys.argv[1]:6} median 1 thread {statistics.median(one)/1e6:7.1f} M/s, all threads "
      f"{statistics.median(many)/1e6:7.1f} M/s; ratio median {statistics.median(ratio):.2f} "
      f"(pairs {', '.join(f'{x:.2f}' for x in ratio)}); train_s all/1 median "
      f"{statistics.median(wall):.2f}; solo rounds {', '.join(str(int(r[5])) for r in rows)}")
PY
done
