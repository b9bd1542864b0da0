#!/usr/bin/env bash
# Thread scaling on the 16-core device machine (run through the `device` tool with the
# release binary carried: target/release/bitrnn). Writes JSON lines and the machine's
# description under $OUT.
set -uo pipefail
B=target/release/bitrnn
{
  date -u; nproc; cat /sys/fs/cgroup/cpu.max 2>/dev/null; lscpu
} > "$OUT/machine.txt" 2>&1
head -20 "$OUT/machine.txt"
"$B" --version
"$B" bench --hidden 256 --streams 4096 --threads 1,2,4,8,12,16 --seconds 5 --json \
  | tee "$OUT/scaling_h256_s4096.jsonl"
"$B" bench --hidden 6 --threads 1,2,4,8,16 --seconds 2 --json | tee "$OUT/scaling_seed.jsonl"
for t in 1 16; do
  "$B" train --threads "$t" --out "/tmp/train$t" --quiet && cp "/tmp/train$t/summary.json" "$OUT/train_threads$t.json"
done
grep -ho '"weights_checksum":"[0-9a-f]*"' "$OUT"/train_threads*.json
