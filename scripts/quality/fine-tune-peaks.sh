#!/bin/bash
# Fine-tunes a base model on the bundled corpus at each peak learning rate
# given, and prints what each kept of ChatbotData and how it answers the
# probe set's tuning half (docs/chatbot-quality.md, "Fine-tuning").
#   bash scripts/quality/fine-tune-peaks.sh <base-model-dir> <work-dir> 3e-5 1e-4 …
set -euo pipefail
base=$1 work=$2
shift 2
cd "$(dirname "$0")/../.."
chatbot_data=${HANMADI_CHATBOT_DATA:-../shared/data/chatbot-data/ChatbotData.csv}
evaluate() { node apps/cli/dist/hanmadi.mjs evaluate "$@"; }
measure() {
  evaluate --model "$1" --data "$chatbot_data" --split valid
  evaluate --model "$1" --prompts data/probe-prompts.txt --prompt-lines 1-50 --strategies greedy --decoding none | grep -E 'distinct|top reply'
}
mkdir -p "$work"
echo "=== base $base"
measure "$base"
evaluate --model "$base" --data data/hanmadi-qa.csv --split valid --samples 0 | grep perplexity
for peak in "$@"; do
  out=$work/peak-$peak
  rm -rf "$out"
  start=$(date +%s.%N)
  node apps/cli/dist/hanmadi.mjs train --data data/hanmadi-qa.csv --init-from "$base" --out "$out" \
    --epochs 8 --average 1 --peak-lr "$peak" > "$out.log" 2>&1
  echo "=== peak $peak: $(echo "$(date +%s.%N) - $start" | bc) s wall"
  grep '"validation"' "$out.log" | sed -n '1p;$p' | grep -o '"validPerplexity":[0-9.]*'
  measure "$out"
done
