#!/bin/bash
# Decodes the probe set with each candidate generation_config.json on a copy
# of a model directory and prints the reply measures of every strategy
# (docs/chatbot-quality.md, "Decoding defaults").
#   bash scripts/quality/decoding-defaults.sh <model-dir> <work-dir> [lines, default 1-50]
set -euo pipefail
model=$1 work=$2 lines=${3:-1-50}
cd "$(dirname "$0")/../.."
declare -A configs=(
  [none]='{}'
  [ng3-rp1.2]='{"noRepeatNgramSize":3,"repetitionPenalty":1.2,"numBeams":4,"lengthPenalty":1,"topP":0.9,"temperature":0.8}'
  [ng2-rp1.2]='{"noRepeatNgramSize":2,"repetitionPenalty":1.2,"numBeams":4,"lengthPenalty":1,"topP":0.9,"temperature":0.8}'
  [ng3-rp1.0]='{"noRepeatNgramSize":3,"repetitionPenalty":1.0,"numBeams":4,"lengthPenalty":1,"topP":0.9,"temperature":0.8}'
  [ng3-rp1.5]='{"noRepeatNgramSize":3,"repetitionPenalty":1.5,"numBeams":4,"lengthPenalty":1,"topP":0.9,"temperature":0.8}'
  [ng3-rp1.2-lp0.6]='{"noRepeatNgramSize":3,"repetitionPenalty":1.2,"numBeams":4,"lengthPenalty":0.6,"topP":0.9,"temperature":0.8}'
  [ng3-rp1.2-p0.7]='{"noRepeatNgramSize":3,"repetitionPenalty":1.2,"numBeams":4,"lengthPenalty":1,"topP":0.7,"temperature":0.7}'
)
for name in none ng3-rp1.0 ng3-rp1.2 ng2-rp1.2 ng3-rp1.5 ng3-rp1.2-lp0.6 ng3-rp1.2-p0.7; do
  copy=$work/$name
  rm -rf "$copy" && mkdir -p "$copy"
  cp "$model"/{config.json,model.safetensors,tokenizer.model} "$copy"/
  echo "${configs[$name]}" > "$copy/generation_config.json"
  echo "=== $name: ${configs[$name]}"
  node apps/cli/dist/hanmadi.mjs evaluate --model "$copy" --prompts data/probe-prompts.txt --prompt-lines "$lines" \
    --strategies greedy,beam,sample --decoding defaults --output "$work/$name.jsonl" | grep -v '^$'
done
