#!/bin/sh
# tokenizer_training — a model trained on GPT-2-token data knows its
# tokenizer: train refuses a vocab_size smaller than the tokenizer's (exit
# 1, one message) and validation data of another tokenizer; a tiny run on 2
# ranks (the collective checkpoint writer) saves checkpoints carrying the
# tokenizer, `ckpt info` names it, `tessera sample --prompt "The cat"`
# prints text that starts with "The cat" (no "<|id|>" placeholders: the
# prompt went through BPE and back); a resume on 1 rank with an async save
# (the single writer) keeps it; a resume on data of another tokenizer is
# refused; one flipped byte of the carried tokenizer fails `ckpt verify`
# (exit 2). llm.c shards: GPT-2 tokens, readable with the `tokenizer` key,
# which a dataset's own sidecar must agree with.
# Needs TESSERA_PYTHON and TESSERA_GPT2_TOKENIZER (jobs/test); skipped (77)
# without them.
. "$TESTS_SRCDIR/lib.sh"

if [ -z "${TESSERA_PYTHON:-}" ] || [ -z "${TESSERA_GPT2_TOKENIZER:-}" ]; then
  echo "skipped: TESSERA_PYTHON and TESSERA_GPT2_TOKENIZER unset (run through jobs/test)"; exit 77
fi
gpt2=$TESSERA_GPT2_TOKENIZER
fortunes=/usr/share/games/fortunes
[ -f "$fortunes/fortunes" ] && [ -f "$fortunes/debian" ] || { echo "skipped: no fortunes"; exit 77; }
timeout 60 "$TESSERA" prep --tokenizer "$gpt2" "$fortunes/fortunes" "$fortunes/debian" -o "$work/g" --split-lines % \
  > /dev/null || fail "prep with GPT-2's tokenizer"
timeout 60 "$TESSERA" prep "$fortunes/debian" -o "$work/bytes" --split-lines % > /dev/null || fail "prep with bytes"
# a tiny model: the 50257-row embedding is most of it
cat > "$work/tiny.ini" <<'INI'
[model]
n_layer = 1
n_head = 2
d_model = 16
vocab_size = 50257
seq_len = 16
[train]
batch_size = 4
micro_batch_size = 2
steps = 4
lr = 1e-2
warmup_steps = 1
[eval]
val_sequences = 4
sample_tokens = 8
sample_prompt = The cat
[run]
backend = cpu
progress = off
peak_tflops = 1
INI

train() { # NP ARGS... — exit status; stdout in out, stderr in err
  np=$1; shift
  $RUN_MPI "$np" 60 "$TESSERA" train -c "$work/tiny.ini" "$@" > "$work/out" 2> "$work/err"
}
refused() { refusal "$1" 1 "$status" "$work/err" "$2"; } # NAME PATTERN — the last run's refusal

train 1 --data "$work/g" --vocab_size 1024; status=$?
refused "vocab_size 1024 < 50257" "has 50257 ids, the model's vocab_size is 1024: set vocab_size >= 50257"
train 1 --data "$work/g" --val_data "$work/bytes"; status=$?
refused "validation data of another tokenizer" "validation data"

train 2 --data "$work/g" --save_dir "$work/ck"; status=$?
[ "$status" -eq 0 ] && pass "trains on 2 ranks" || { fail "training exits $status"; head -n 5 "$work/err"; }
grep -q '^tokenizer: byte-level BPE (50257 ids)' "$work/out" && pass "the report names the data's tokenizer" \
  || fail "report: $(grep tokenizer "$work/out")"
sed -n '/^---- sample at step 4/{n;p;}' "$work/out" | grep -q '^The cat' && pass "the training sample starts with the prompt" \
  || fail "training sample: $(sed -n '/^---- sample/,/^----$/p' "$work/out")"
timeout 60 "$TESSERA" ckpt info "$work/ck" > "$work/info" 2>&1 || fail "ckpt info exits $?"
grep -q '^tokenizer: byte-level BPE (50257 ids), carried as /tokenizer.json' "$work/info" \
  && pass "ckpt info names the tokenizer (collective writer)" || { fail "ckpt info:"; cat "$work/info"; }
timeout 60 "$TESSERA" sample --ckpt "$work/ck" --prompt "The cat" --tokens 12 > "$work/sample" 2>&1 \
  || fail "sample exits $?"
head -c 7 "$work/sample" | grep -q '^The cat$' && pass "sample starts with \"The cat\": $(head -n 1 "$work/sample")" \
  || fail "sample: $(cat "$work/sample")"
head -c 8 "$work/sample" | grep -q '<|' && fail "an id placeholder in the prompt part" \
  || pass "no id placeholder in the prompt part"
timeout 60 "$TESSERA" sample --ckpt "$work/ck" --prompt "The cat" --tokens 12 --tokenizer "$gpt2" > "$work/sample2" 2>&1 \
  || fail "sample --tokenizer exits $?"
cmp -s "$work/sample" "$work/sample2" && pass "sample --tokenizer with the same tokenizer: the same text" \
  || fail "sample --tokenizer: $(cat "$work/sample2")"

# one flipped byte in the carried tokenizer.json: a damaged checkpoint (exit 2)
cp "$(readlink -f "$work/ck/$(cat "$work/ck/latest")")" "$work/damaged.h5"
timeout 60 "$TESSERA_PYTHON" - "$work/damaged.h5" <<'PY' || fail "damaging the checkpoint"
import sys
data = bytearray(open(sys.argv[1], "rb").read())
at = data.index(b'"merges"')  # inside /tokenizer.json, stored as plain bytes
data[at + 1] ^= 0x01
open(sys.argv[1], "wb").write(data)
PY
timeout 60 "$TESSERA" ckpt verify "$work/damaged.h5" > /dev/null 2> "$work/err"; status=$?
[ "$status" -eq 2 ] && one_error_line "$work/err" && grep -q 'tokenizer.json.*checksum' "$work/err" \
  && pass "ckpt verify: a damaged tokenizer is exit 2, one message" || { fail "damaged tokenizer: exit $status"; cat "$work/err"; }

train 1 --data "$work/g" --save_dir "$work/ck" --resume auto --steps 6 --async_save true; status=$?
[ "$status" -eq 0 ] && grep -q 'resumed from' "$work/out" && pass "resumes on 1 rank" \
  || { fail "resume exits $status"; head -n 5 "$work/err"; }
timeout 60 "$TESSERA" ckpt info "$work/ck" > "$work/info6" 2>&1 && grep -q '^step 6,' "$work/info6" \
  && grep -q '^tokenizer: byte-level BPE (50257 ids), carried' "$work/info6" \
  && pass "the resumed run's checkpoint keeps it (single writer)" || fail "resumed checkpoint: $(head -n 5 "$work/info6")"
train 1 --data "$work/bytes" --resume "$work/ck" --steps 8; status=$?
refused "resume on bytes data" "tokenizer"

# an llm.c shard of the same tokens: GPT-2's without a sidecar
timeout 60 "$TESSERA_PYTHON" - "$work/g.bin" "$work/shard.bin" <<'PY' || fail "writing an llm.c shard"
import struct, sys
tokens = open(sys.argv[1], "rb").read()
with open(sys.argv[2], "wb") as f:
    f.write(struct.pack("<256i", 20240520, 1, len(tokens) // 2, *([0] * 253)))
    f.write(tokens)
PY
train 1 --data "$work/shard.bin" --vocab_size 1024; status=$?
refused "llm.c shard with vocab_size 1024" "has 50257 ids"
train 1 --data "$work/shard.bin"; status=$?
[ "$status" -eq 0 ] && grep -q 'no sample at step 4.*set `tokenizer`' "$work/out" \
  && pass "llm.c shard without the key trains; the sample says it needs the tokenizer" \
  || { fail "llm.c without key: exit $status"; tail -n 5 "$work/out" "$work/err"; }
train 1 --data "$work/shard.bin" --tokenizer "$gpt2"; status=$?
[ "$status" -eq 0 ] && sed -n '/^---- sample at step 4/{n;p;}' "$work/out" | grep -q '^The cat' \
  && pass "llm.c shard with the key: samples read as text" || { fail "llm.c with key: exit $status"; tail -n 5 "$work/out"; }
# another tokenizer: GPT-2's tokenizer.json without its last merge
timeout 60 "$TESSERA_PYTHON" - "$work/g.tokenizer.json" "$work/other.json" <<'PY' || fail "writing another tokenizer"
import json, sys
t = json.load(open(sys.argv[1], encoding="utf-8"))
t["model"]["merges"] = t["model"]["merges"][:-1]
json.dump(t, open(sys.argv[2], "w", encoding="utf-8"))
PY
train 1 --data "$work/g" --tokenizer "$gpt2" --steps 1 --sample_tokens 0; status=$?
[ "$status" -eq 0 ] && pass "a key naming the sidecar's tokenizer (GPT-2's files) agrees with it" \
  || { fail "key = GPT-2's files on GPT-2 data: exit $status"; head -n 3 "$work/err"; }
train 1 --data "$work/g" --tokenizer "$work/other.json"; status=$?
refused "a sidecar that disagrees with the key" "drop the key"
finish
