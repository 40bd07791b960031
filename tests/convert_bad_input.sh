#!/bin/sh
# convert_bad_input — every input `tessera convert` and `train --init-from`
# cannot take is one clear message (exit 1: a model tessera or the target
# cannot hold, a bad path; exit 2: a damaged file) and leaves no output, not
# even a temporary file: damaged safetensors (truncated, a header whose
# sizes lie, overlapping tensors), config.json keys tessera cannot compute
# (another architecture, grouped-query attention, RoPE scaling, a norm
# epsilon out of range), a tied model whose lm_head.weight is not the
# embedding, a tensor of another shape than config.json implies, llm.c
# files with a wrong magic or cut short, and models the target cannot hold
# (RMSNorm, linear attention, an untied head or a norm epsilon other than
# 1e-5 into llm.c; linear attention into HF), an HF output folder that
# exists.
. "$TESTS_SRCDIR/lib.sh"

[ -n "${TESSERA_PYTHON:-}" ] || { echo "SKIP: TESSERA_PYTHON unset (jobs/test sets it)"; exit 77; }
HF_HUB_OFFLINE=1; export HF_HUB_OFFLINE
ref() { "$TESSERA_PYTHON" "$TESTS_SRCDIR/convert_reference.py" "$@" 2>> "$work/python.err"; }

ref models "$work" gpt2 llama gpt2_untied eps6 && ref llmc "$work/good.bin" \
  || { cat "$work/python.err"; fail "reference models"; finish; }
mkdir "$work/out"

# refused NAME STATUS PATTERN -- ARGS: convert ARGS (into $work/out) fails
# with STATUS, one error line matching PATTERN, and $work/out stays empty
refused() {
  name=$1 want=$2 pattern=$3; shift 4
  "$TESSERA" convert "$@" > "$work/$name.out" 2>&1; rc=$?
  left=$(ls -A "$work/out")
  if [ "$rc" -eq "$want" ] && [ "$(grep -c 'tessera: error' "$work/$name.out")" -eq 1 ] \
     && grep -q -- "$pattern" "$work/$name.out" && [ -z "$left" ]; then
    pass "$name: exit $rc: $(grep 'tessera: error' "$work/$name.out" | sed "s|$work/||g" | cut -c16-150)"
  else
    fail "$name: exit $rc (want $want), output left: '$left'"; sed 's/^/    /' "$work/$name.out" | head -n 3
  fi
  rm -rf "$work/out" && mkdir "$work/out"
}
variant() { rm -rf "$work/$1" && cp -r "$work/$2" "$work/$1"; } # NEW FROM: a copy to damage

# damaged safetensors
for kind in truncated lying-header overlap; do
  variant "$kind" gpt2
  ref damage "$kind" "$work/gpt2/model.safetensors" "$work/$kind/model.safetensors"
done
refused truncated 2 "model.safetensors" -- "$work/truncated" "$work/out/m.h5"
refused lying_header 2 "hold .* bytes, but shape" -- "$work/lying-header" "$work/out/m.h5"
refused overlap 2 "overlap" -- "$work/overlap" "$work/out/m.h5"
printf 'not json at all' > "$work/garbage.safetensors"
variant garbage gpt2 && cp "$work/garbage.safetensors" "$work/garbage/model.safetensors"
refused garbage 2 "header length" -- "$work/garbage" "$work/out/m.h5"

# config.json that tessera cannot compute
edited() { # NAME FROM KEY JSON
  variant "$1" "$2" && ref edit-config "$work/$1" "$3" "$4"
}
edited mistral llama architectures '["MistralForCausalLM"]'
refused unknown_architecture 1 "unknown architecture 'MistralForCausalLM'" -- "$work/mistral" "$work/out/m.h5"
edited gqa llama num_key_value_heads 2
refused gqa 1 "grouped-query" -- "$work/gqa" "$work/out/m.h5"
edited scaled llama rope_parameters '{"rope_type": "linear", "factor": 2.0, "rope_theta": 10000.0}'
refused rope_scaling 1 "RoPE scaling" -- "$work/scaled" "$work/out/m.h5"
edited eps llama rms_norm_eps 2.0
refused norm_eps 1 "rms_norm_eps 2 is not in" -- "$work/eps" "$work/out/m.h5"
edited stray gpt2_untied tie_word_embeddings true
refused stray_head 1 "lm_head.weight differs" -- "$work/stray" "$work/out/m.h5"
edited wider gpt2 vocab_size 301
refused shape_mismatch 1 "has shape \[300, 64\], config.json calls for \[301, 64\]" -- "$work/wider" "$work/out/m.h5"
edited deeper gpt2 n_layer 3
refused missing_tensor 1 "no tensor 'transformer.h.2" -- "$work/deeper" "$work/out/m.h5"
refused no_config 1 "no config.json" -- "$work/out" "$work/out/m.h5"

# llm.c files
head -c 4000 "$work/good.bin" > "$work/short.bin"
refused llmc_truncated 2 "truncated" -- "$work/short.bin" "$work/out/m.h5"
{ printf '\001\002\003\004'; tail -c +5 "$work/good.bin"; } > "$work/magic.bin"
refused llmc_magic 2 "not an llm.c model file" -- "$work/magic.bin" "$work/out/m.h5"

# targets that cannot hold the model
"$TESSERA" convert "$work/llama" "$work/llama.h5" > /dev/null 2>&1 || fail "llama to .h5"
refused rmsnorm_to_llmc 1 "LayerNorm" -- "$work/llama.h5" "$work/out/m.bin"
refused untied_to_llmc 1 "tied head" -- "$work/gpt2_untied" "$work/out/m.bin"
refused eps_to_llmc 1 "epsilon 1e-5" -- "$work/eps6" "$work/out/m.bin"
prep_corpus "$work/tokens" 8000
$RUN_MPI 1 60 "$TESSERA" train -c "$TESTS_SRCDIR/tiny-test.ini" --data "$work/tokens" --steps 1 \
  --attention linear --save-dir "$work/linear" --save-every 1 --metrics "$work/linear.jsonl" > "$work/linear.out" 2>&1 \
  || fail "training a linear-attention model"
refused linear_to_hf 1 "no Hugging Face architecture" -- "$work/linear" "$work/out/hf"
refused linear_to_llmc 1 "softmax attention" -- "$work/linear" "$work/out/m.bin"
refused hf_output_exists 1 "exists already" -- "$work/gpt2" "$work/gpt2"
refused unknown_target 1 "--to" -- "$work/gpt2" "$work/out/m" --to onnx
refused missing_input 1 "does not exist" -- "$work/nothing" "$work/out/m.h5"

# --init-from with a damaged model: one message before training starts
$RUN_MPI 2 60 "$TESSERA" train --init-from "$work/truncated" --data "$work/tokens" > "$work/init.out" 2>&1; rc=$?
[ $rc -eq 2 ] && [ "$(grep -c 'tessera: error' "$work/init.out")" -eq 1 ] \
  && pass "--init-from a damaged model on 2 ranks: exit 2, one message" \
  || { fail "--init-from a damaged model: exit $rc"; head -n 3 "$work/init.out"; }
finish
