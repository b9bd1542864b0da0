#!/usr/bin/env bash
# Thread scaling on the 16-core device machine (run through the `device` tool with the
# release binary carried: target/release/bitrnn). Writes the machine's description, JSON
# lines and the scaling plot under $OUT.
set -uo pipefail
B=target/release/bitrnn
{
  date -u; nproc; cat /sys/fs/cgroup/cpu.max 2>/dev/null; lscpu
} > "$OUT/machine.txt" 2>&1
"$B" --version
"$B" bench --hidden 64,256 --streams 4096 --threads 1,2,4,6,8,12,16 --seconds 4 --json \
  --plot "$OUT/scaling_4096.png" > "$OUT/scaling_4096.jsonl"
"$B" bench --hidden 6 --threads 1,2,4,8,16 --seconds 2 --json > "$OUT/scaling_seed.jsonl"
for t in 1 16; do
  "$B" train --threads "$t" --out "/tmp/train$t" --quiet && cp "/tmp/train$t/summary.json" "$OUT/train_threads$t.json"
done
cat "$OUT"/*.jsonl | python3 -c '
import sys, json
for line in sys.stdin:
    d = json.loads(line)
    print(d["hidden"], d["threads"], d["streams"], round(d["sample_steps_per_s"]),
          round(d["sample_steps_per_s_min"]), round(d["sample_steps_per_s_max"]),
          round(d["gflops"], 1), round(d["peak_gflops"], 1), round(d["pct_of_peak"], 1),
          round(d["reduction_share"], 3), round(d["update_share"], 3))'
grep -ho '"weights_checksum":"[0-9a-f]*"' "$OUT"/train_threads*.json
