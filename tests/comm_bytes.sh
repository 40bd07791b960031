#!/bin/sh
# comm_bytes — the communication counters agree with the formulas of
# doc/design.md, exactly, step by step (payload bytes per rank):
#   tp group, per micro-batch of N = b·s tokens, width h, L blocks:
#     forward  (1 + 2L)·N·h   embedding sum, 2 row-parallel sums per block
#     backward (1 + 2L)·N·h   head input gradient, 2 column-parallel inputs per block
#     cross-entropy 3·N        row maxima, exponential sums, target logits
#   plus one fp64 for the gradient norm's tp sum (8 bytes), all ×4 bytes/float;
#   dp×sp group: the whole local gradient once (params_local·4 bytes) plus the
#   loss sum and the token-id check (8 bytes each).
# With --tp-seq-shard each all-reduce of N·h becomes an all-gather and a
# reduce-scatter, each counted at the full N·h (the same bytes on the wire as
# the all-reduce), and the norms' gradients are summed over tp:
#     forward  (2 + 4L)·N·h   embedding RS, 2 AG + 2 RS per block, final-norm AG
#     backward (2 + 4L)·N·h   head RS, 2 AG + 2 RS per block, embedding AG
#     norms    (2L + 1)·2h    weight and bias gradients of every LayerNorm
. "$TESTS_SRCDIR/lib.sh"

cfg="$TESTS_SRCDIR/equiv.ini"   # L = 2, h = 32, s = 16, micro-batch 2, batch 8
prep_corpus "$work/data" 30000
$RUN_MPI 4 120 "$TESSERA" train -c "$cfg" --data "$work/data" --tp 2 --steps 3 \
  --metrics "$work/m.jsonl" > "$work/out" 2>&1 || { cat "$work/out"; fail "dp2 x tp2 run"; finish; }
L=2; h=32; N=$((2 * 16)); micro_batches=$((8 / (2 * 2)))
want_tp=$(( micro_batches * (2 * (1 + 2 * L) * N * h + 3 * N) * 4 + 8 ))
params_local=$(sed -n 's/.*"params_local":\([0-9]*\).*/\1/p' "$work/m.jsonl")
want_dp=$(( params_local * 4 + 16 ))
n=0
for step in 1 2 3; do
  line=$(grep "^{\"step\":$step,\"loss\"" "$work/m.jsonl")
  got_tp=$(echo "$line" | sed -n 's/.*"comm_bytes_tp":\([0-9]*\).*/\1/p')
  got_dp=$(echo "$line" | sed -n 's/.*"comm_bytes_dp_sp":\([0-9]*\).*/\1/p')
  [ "$got_tp" = "$want_tp" ] && n=$((n + 1)) || fail "step $step: tp bytes $got_tp, formula $want_tp"
  [ "$got_dp" = "$want_dp" ] && n=$((n + 1)) || fail "step $step: dp bytes $got_dp, formula $want_dp"
done
[ $n -eq 6 ] && pass "tp bytes per step = $want_tp and dp x sp bytes = $want_dp, as the formulas say"
grep -q '^  tp     allreduce' "$work/out" && pass "end-of-run table lists the tp all-reduces" \
  || fail "no communication table"

$RUN_MPI 2 120 "$TESSERA" train -c "$cfg" --data "$work/data" --tp 2 --tp-seq-shard --steps 2 \
  --metrics "$work/s.jsonl" > "$work/out" 2>&1 || { cat "$work/out"; fail "tp2 sequence-sharded run"; finish; }
micro_batches=$((8 / 2))
want_seq=$(( micro_batches * (2 * (2 + 4 * L) * N * h + 3 * N + (2 * L + 1) * 2 * h) * 4 + 8 ))
for step in 1 2; do
  got=$(grep "^{\"step\":$step,\"loss\"" "$work/s.jsonl" | sed -n 's/.*"comm_bytes_tp":\([0-9]*\).*/\1/p')
  [ "$got" = "$want_seq" ] && pass "sequence-sharded step $step: tp bytes $got = formula" \
    || fail "sequence-sharded step $step: tp bytes $got, formula $want_seq"
done
# sharding the norm regions along the sequence shrinks the activation arena
act_full=$(sed -n 's/.*"mem_activations":\([0-9]*\).*/\1/p' "$work/m.jsonl")
act_seq=$(sed -n 's/.*"mem_activations":\([0-9]*\).*/\1/p' "$work/s.jsonl")
[ "$act_seq" -lt "$act_full" ] && pass "activations per rank: $act_full bytes -> $act_seq with --tp-seq-shard" \
  || fail "activations did not shrink with --tp-seq-shard ($act_full -> $act_seq)"

# ZeRO 2 and 3 on dp 2, 4 blocks, micro-batches per step m = 8 / (2·2) = 2;
# Ψ_block = 12h² + 13h elements, Ψ_outer = Ψ − 4Ψ_block; bytes per step:
#   stage 2: reduce-scatter of every block per micro-batch (m·L·4Ψ_block),
#            of the embeddings and final norm once (4Ψ_outer), all-gather of
#            the updated weights (4Ψ), loss + token check (16), norm (16)
#   stage 3: the same reduce-scatters, then gathers of blocks: L in the first
#            forward, L−2 in every later pass (the windows still hold two
#            blocks), so (2L − 2 + 2(m−1)(L−2))·4Ψ_block, and the embeddings
#            and final norm after the step (4Ψ_outer) instead of the weights
L=4; m=2; block=$(( 12 * h * h + 13 * h ))
for zero in 2 3; do
  $RUN_MPI 2 120 "$TESSERA" train -c "$cfg" --data "$work/data" --zero $zero --n_layer $L --steps 2 \
    --metrics "$work/z$zero.jsonl" > "$work/out" 2>&1 || { cat "$work/out"; fail "zero $zero run"; continue; }
  psi=$(sed -n 's/.*"params_local":\([0-9]*\).*/\1/p' "$work/z$zero.jsonl")
  outer=$(( psi - L * block ))
  if [ $zero -eq 2 ]; then want=$(( m * L * 4 * block + 4 * outer + 4 * psi + 32 ))
  else want=$(( m * L * 4 * block + 4 * outer + (2 * L - 2 + 2 * (m - 1) * (L - 2)) * 4 * block + 4 * outer + 32 )); fi
  for step in 1 2; do
    got=$(grep "^{\"step\":$step,\"loss\"" "$work/z$zero.jsonl" | sed -n 's/.*"comm_bytes_dp_sp":\([0-9]*\).*/\1/p')
    [ "$got" = "$want" ] && pass "ZeRO $zero step $step: dp x sp bytes $got = formula" \
      || fail "ZeRO $zero step $step: dp x sp bytes $got, formula $want"
  done
done

# Pipelines, 4 blocks, m = 8 / 2 = 4 micro-batches of N·h activations. Stage
# 0 (world rank 0) sends, per step, the activation leaving each of its chunks
# that has a successor and the input gradient of each that has a
# predecessor: plain 1F1B (chunk 0 only) m·N·h floats, interleaved with 2
# chunks per stage (global chunks 0 and 2) 3·m·N·h; plus its half of the
# tied embedding's gradient (V·h, V = 257) and three fp64 sums over pp
# (loss, gradient norm's two parts in one call, measured bubble: 32 bytes).
V=257; m=4
for kind in 1f1b interleaved; do
  chunks=1; flags="--pp-schedule $kind"
  [ $kind = interleaved ] && chunks=3 && flags="$flags --pp-virtual 2"
  # shellcheck disable=SC2086
  $RUN_MPI 2 120 "$TESSERA" train -c "$cfg" --data "$work/data" --pp 2 $flags --n_layer 4 --steps 2 \
    --metrics "$work/p.jsonl" > "$work/out" 2>&1 || { cat "$work/out"; fail "pp 2 $kind run"; continue; }
  want=$(( (chunks * m * N * h + V * h) * 4 + 32 ))
  for step in 1 2; do
    got=$(grep "^{\"step\":$step,\"loss\"" "$work/p.jsonl" | sed -n 's/.*"comm_bytes_pp":\([0-9]*\).*/\1/p')
    [ "$got" = "$want" ] && pass "pp 2 $kind step $step: stage 0 sends $got bytes = formula" \
      || fail "pp 2 $kind step $step: stage 0 pp bytes $got, formula $want"
  done
done
# Sequence parallelism over 2 ranks (dp 1, so m = 4 micro-batches of B = 2
# sequences; L = 2, h = 32, 4 heads of 8): bytes this rank hands the sp group
# per step, m·L times per layer (parallel/sequence/sp_attention.h, doc/design.md):
#   LASP-2 (linear, all-gather): forward and backward each gather P chunk
#     states of S = B·heads·8² floats: 2·P·S·4 — the same at T = 16 and 32;
#   LASP (linear, ring), rank 0: one state sent forward, none back: S·4;
#   ring attention (softmax, zig-zag): rows = B·T/P rows of K|V (2h) sent
#     P−1 times forward, and backward P−1 times plus dK|dV P times;
#   K/V all-gather (softmax): P·rows·2h gathered forward and again backward,
#     and P·rows·2h reduce-scattered.
P=2; B=2; L=2; m=4; S=$((B * 4 * 8 * 8))
sp_bytes() { # FILE: the sp bytes of steps 1 and 2, space separated
  for step in 1 2; do
    grep "^{\"step\":$step,\"loss\"" "$1" | sed -n 's/.*"comm_bytes_sp":\([0-9]*\).*/\1/p'
  done | tr '\n' ' ' | sed 's/ $//'
}
sp_run() { # NAME FLAGS...
  name=$1; shift
  # shellcheck disable=SC2086
  $RUN_MPI 2 120 "$TESSERA" train -c "$cfg" --data "$work/data" --sp 2 --steps 2 --metrics "$work/$name.jsonl" "$@" \
    > "$work/out" 2>&1 || { cat "$work/out"; fail "$name run"; }
}
sp_run lasp2_16 --attention linear
sp_run lasp2_32 --attention linear --seq_len 32
want=$(( m * L * 2 * P * S * 4 ))
got16=$(sp_bytes "$work/lasp2_16.jsonl"); got32=$(sp_bytes "$work/lasp2_32.jsonl")
[ "$got16" = "$want $want" ] && [ "$got32" = "$want $want" ] \
  && pass "LASP-2: sp bytes per step $want at T = 16 and at T = 32 (independent of the sequence length) = formula" \
  || fail "LASP-2: sp bytes '$got16' (T 16), '$got32' (T 32), formula $want"
sp_run lasp_ring --attention linear --sp-kind ring
want=$(( m * L * S * 4 )); got=$(sp_bytes "$work/lasp_ring.jsonl")
[ "$got" = "$want $want" ] && pass "LASP ring: rank 0 sends $want bytes per step = formula" \
  || fail "LASP ring: rank 0 sp bytes '$got', formula $want"
for T in 16 32; do
  rows=$(( B * T / P ))
  sp_run ring_$T --sp-kind ring --seq_len $T
  want=$(( m * L * rows * 2 * h * 4 * ((P - 1) + (P - 1) + P) )); got=$(sp_bytes "$work/ring_$T.jsonl")
  [ "$got" = "$want $want" ] && pass "ring attention, T = $T: sp bytes per step $want = formula" \
    || fail "ring attention, T = $T: sp bytes '$got', formula $want"
  sp_run gather_$T --sp-kind allgather --seq_len $T
  want=$(( m * L * 3 * P * rows * 2 * h * 4 )); got=$(sp_bytes "$work/gather_$T.jsonl")
  [ "$got" = "$want $want" ] && pass "K/V all-gather, T = $T: sp bytes per step $want = formula" \
    || fail "K/V all-gather, T = $T: sp bytes '$got', formula $want"
done
finish
