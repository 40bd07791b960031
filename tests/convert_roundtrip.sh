#!/bin/sh
# convert_roundtrip — tessera convert between the three formats:
#  * tessera -> Hugging Face: checkpoints trained by tessera (a GPT-2, a
#    Llama-style model and one with an untied head and norm_eps 1e-6, 3 steps) exported to HF folders, loaded by
#    transformers' AutoModelForCausalLM, give tessera's logits on 16 tokens
#    (tests/dump_logits) to 1e-5 absolute (logits of magnitude about 1: fp32
#    on both sides, summed in other orders; measured about 3e-7);
#  * llm.c -> tessera -> llm.c: the .bin (fp32, version 3, vocabulary padded
#    from 300 to 384 rows, written by Python) comes back byte for byte (cmp);
#  * HF -> tessera -> HF: the tensors come back bit for bit (GPT-2, Llama,
#    both also untied;
#    a sharded GPT-2 with model.safetensors.index.json gives the same file as
#    the unsharded one; a bfloat16 GPT-2 gives its values widened to fp32);
#  * the tokenizer travels: GPT-2's tokenizer.json in the HF folder -> the
#    .h5 (ckpt info shows the model) -> HF again, where transformers'
#    AutoTokenizer encodes a text as with the original folder;
#  * `tessera sample`, `eval` and `ckpt verify` read a converted weights-only file.
. "$TESTS_SRCDIR/lib.sh"

[ -n "${TESSERA_PYTHON:-}" ] || { echo "SKIP: TESSERA_PYTHON unset (jobs/test sets it)"; exit 77; }
HF_HUB_OFFLINE=1; export HF_HUB_OFFLINE
DUMP_LOGITS=${DUMP_LOGITS:-$(dirname "$TESSERA")/tests/dump_logits}
ref() { "$TESSERA_PYTHON" "$TESTS_SRCDIR/convert_reference.py" "$@" 2>> "$work/python.err"; }
convert() { "$TESSERA" convert "$@" >> "$work/convert.out" 2>&1 || { fail "convert $*"; tail -n 3 "$work/convert.out"; return 1; }; }

prep_corpus "$work/data" 8000

# ---- tessera -> HF: the same logits in transformers
for model in "gpt2:" "llama:--norm rmsnorm --mlp swiglu --position rope --bias false" \
             "llama_untied:--norm rmsnorm --mlp swiglu --position rope --bias false --tie-embeddings false --norm-eps 1e-6"; do
  name=${model%%:*} flags=${model#*:}
  # shellcheck disable=SC2086
  $RUN_MPI 1 60 "$TESSERA" train -c "$TESTS_SRCDIR/tiny-test.ini" --data "$work/data" --n-layer 2 --n-head 4 \
    --d-model 64 --vocab-size 300 --seq-len 64 --steps 3 --save-dir "$work/$name.save" --save-every 3 \
    --metrics "$work/$name.jsonl" $flags > "$work/$name.train" 2>&1 || { fail "$name: training"; continue; }
  convert "$work/$name.save" "$work/$name.hf" || continue
  "$DUMP_LOGITS" "$work/$name.save" "$work/data" 16 "$work/$name.tessera.logits" || { fail "$name: dump_logits"; continue; }
  ref logits "$work/$name.hf" "$work/data.bin" 16 "$work/$name.hf.logits" || { tail -n 3 "$work/python.err"; fail "$name: transformers"; continue; }
  d=$(ref max-diff "$work/$name.tessera.logits" "$work/$name.hf.logits")
  awk -v d="$d" 'BEGIN { exit !(d <= 1e-5) }' && pass "$name: tessera checkpoint -> HF: logits differ by $d" \
    || fail "$name: logits differ by $d (tolerance 1e-5)"
done

# ---- llm.c -> tessera -> llm.c, byte for byte
ref llmc "$work/model.bin"
convert "$work/model.bin" "$work/from_llmc.h5" && convert "$work/from_llmc.h5" "$work/back.bin" \
  && cmp "$work/model.bin" "$work/back.bin" && pass "llm.c -> tessera -> llm.c: the same bytes ($(wc -c < "$work/model.bin") bytes)" \
  || fail "llm.c round trip"

# ---- HF -> tessera -> HF, bit for bit
ref models "$work" gpt2 llama llama_untied gpt2_untied variants || fail "transformers models"
for name in gpt2 llama llama_untied gpt2_untied; do
  convert "$work/$name" "$work/$name.h5" && convert "$work/$name.h5" "$work/$name.back" \
    && r=$(ref same-tensors "$work/$name/model.safetensors" "$work/$name.back/model.safetensors") \
    && pass "$name: HF -> tessera -> HF: $r" || fail "$name: HF round trip: $r"
done
for v in plain sharded bf16; do convert "$work/variants/$v" "$work/$v.h5" && convert "$work/$v.h5" "$work/$v.back"; done
cmp "$work/plain.back/model.safetensors" "$work/sharded.back/model.safetensors" \
  && pass "sharded HF model: the same tensors as unsharded" || fail "sharded HF model"
r=$(ref same-tensors "$work/bf16.back/model.safetensors" "$work/variants/bf16-as-f32/model.safetensors") \
  && pass "bfloat16 HF model: widened exactly ($r)" || fail "bfloat16 HF model: $r"

# ---- the tokenizer travels HF -> tessera -> HF
if [ -n "${TESSERA_GPT2_TOKENIZER:-}" ]; then
  ref gpt2-tokenizer "$TESSERA_GPT2_TOKENIZER" "$work/gpt2" || fail "GPT-2 tokenizer"
  convert "$work/gpt2" "$work/tok.h5" && convert "$work/tok.h5" "$work/tok.back" \
    && [ -f "$work/tok.back/tokenizer.json" ] && r=$(ref same-encoding "$work/gpt2" "$work/tok.back") \
    && pass "tokenizer HF -> tessera -> HF: the same encoding $r" || fail "tokenizer round trip: $r"
fi

# ---- a weights-only file is a checkpoint tessera's tools read
"$TESSERA" ckpt verify "$work/gpt2.h5" > "$work/verify.out" 2>&1 && grep -q "weights only" "$work/verify.out" \
  && pass "ckpt verify: $(cat "$work/verify.out" | cut -c1-100)" || { fail "ckpt verify of a weights-only file"; cat "$work/verify.out"; }
"$TESSERA" ckpt info "$work/gpt2.h5" > "$work/info.out" 2>&1 && grep -q "weights only" "$work/info.out" \
  || { fail "ckpt info of a weights-only file"; tail -n 3 "$work/info.out"; }
"$TESSERA" sample --ckpt "$work/gpt2.h5" --tokens 5 > "$work/sample.out" 2>&1 \
  && pass "sample from a converted file" || { fail "sample from a converted file"; tail -n 3 "$work/sample.out"; }
$RUN_MPI 1 60 "$TESSERA" eval --ckpt "$work/gpt2.h5" --val-data "$work/data" > "$work/eval.out" 2>&1 \
  && grep -q perplexity "$work/eval.out" && pass "eval of a converted file: $(grep perplexity "$work/eval.out" | cut -c1-90)" \
  || { fail "eval of a converted file"; tail -n 3 "$work/eval.out"; }
finish
