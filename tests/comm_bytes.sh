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

# step_bytes FILE GROUP — the comm_bytes_GROUP of every training step of the
# metrics FILE, in step order, space separated
step_bytes() {
  sed -n "s/^{\"step\":[0-9]*,\"loss\".*\"comm_bytes_$2\":\([0-9]*\).*/\1/p" "$1" | tr '\n' ' ' | sed 's/ $//'
}
# check_bytes WHAT FILE GROUP STEPS WANT — each of the STEPS training steps
# of FILE counted WANT bytes for GROUP (the formula's)
check_bytes() {
  got=$(step_bytes "$2" "$3")
  every=$(i=0; while [ $i -lt "$4" ]; do printf '%s ' "$5"; i=$((i + 1)); done | sed 's/ $//')
  [ "$got" = "$every" ] && pass "$1: $3 bytes per step $5 = formula" \
    || fail "$1: $3 bytes per step '$got', formula $5"
}

cfg="$TESTS_SRCDIR/equiv.ini"   # L = 2, h = 32, s = 16, micro-batch 2, batch 8
prep_corpus "$work/data" 30000
$RUN_MPI 4 120 "$TESSERA" train -c "$cfg" --data "$work/data" --tp 2 --steps 3 \
  --metrics "$work/m.jsonl" > "$work/out" 2>&1 || { cat "$work/out"; fail "dp2 x tp2 run"; finish; }
L=2; h=32; N=$((2 * 16)); micro_batches=$((8 / (2 * 2)))
want_tp=$(( micro_batches * (2 * (1 + 2 * L) * N * h + 3 * N) * 4 + 8 ))
# the local gradient's elements from the model's shape (tests/lib.sh), not the run's count
params_local=$(gpt2_params_local 257 $h 16 $L 2)
[ "$(sed -n 's/.*"params_local":\([0-9]*\).*/\1/p' "$work/m.jsonl")" = "$params_local" ] \
  || fail "dp 2 x tp 2: the run's params_local is not the shape's $params_local"
want_dp=$(( params_local * 4 + 16 ))
check_bytes "dp 2 x tp 2, 3 steps" "$work/m.jsonl" tp 3 "$want_tp"
check_bytes "dp 2 x tp 2, 3 steps" "$work/m.jsonl" dp_sp 3 "$want_dp"
grep -q '^  tp     allreduce' "$work/out" && pass "end-of-run table lists the tp all-reduces" \
  || fail "no communication table"

$RUN_MPI 2 120 "$TESSERA" train -c "$cfg" --data "$work/data" --tp 2 --tp-seq-shard --steps 2 \
  --metrics "$work/s.jsonl" > "$work/out" 2>&1 || { cat "$work/out"; fail "tp2 sequence-sharded run"; finish; }
micro_batches=$((8 / 2))
want_seq=$(( micro_batches * (2 * (2 + 4 * L) * N * h + 3 * N + (2 * L + 1) * 2 * h) * 4 + 8 ))
check_bytes "tp 2 sequence-sharded" "$work/s.jsonl" tp 2 "$want_seq"
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
  psi=$(gpt2_params_local 257 $h 16 $L 1) # from the shape, not the run
  outer=$(( psi - L * block ))
  if [ $zero -eq 2 ]; then want=$(( m * L * 4 * block + 4 * outer + 4 * psi + 32 ))
  else want=$(( m * L * 4 * block + 4 * outer + (2 * L - 2 + 2 * (m - 1) * (L - 2)) * 4 * block + 4 * outer + 32 )); fi
  check_bytes "ZeRO $zero" "$work/z$zero.jsonl" dp_sp 2 "$want"
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
  check_bytes "pp 2 $kind, stage 0 sends" "$work/p.jsonl" pp 2 "$want"
done
# Sequence parallelism over 2 ranks (dp 1, so m = 4 micro-batches of B = 2
# sequences; L = 2, h = 32, 4 heads of 8): bytes this rank hands the sp group
# per step, m·L times per layer (parallel/sequence/sp_attention.h, doc/design.md):
#   LASP-2 (linear, all-gather): forward and backward each gather P chunk
#     states of S = B·heads·8² floats: 2·P·S·4 — the same at T = 16 and 32;
#   LASP (linear, ring), rank 0: one state sent forward, none back: S·4;
#   All-Scan (linear, allscan): the same as LASP at T = 16 and 32, every
#     rank (rank 0 sends the state forward, rank 1 its gradient back);
#   ring attention (softmax, zig-zag): rows = B·T/P rows of K|V (2h) sent
#     P−1 times forward, and backward P−1 times plus dK|dV P times;
#   K/V all-gather (softmax): P·rows·2h gathered forward and again backward,
#     and P·rows·2h reduce-scattered;
#   Ulysses (all-to-all, counted at its input, rows·width): forward Q|K|V
#     out (3 rows·h) and the output back (rows·h); backward Q|K|V and, for
#     softmax, the output out again, the output gradient out, dQ|dK|dV back:
#     softmax (4 + 8)·rows·h, linear (4 + 7)·rows·h — proportional to T;
#   TokenRing (softmax, zig-zag; nh = 4 heads, half = rows/2 a piece's rows,
#     rank 0 returns u = 2P−2 pieces of results per pass): forward the
#     queries P−1 times (rows·h) and u pieces of outputs and lse
#     (half·(h + nh)); backward Q|dO, lse and delta P−1 times
#     (2·rows·h + 2·rows·nh) and u pieces of dQ (half·h).
P=2; B=2; L=2; m=4; S=$((B * 4 * 8 * 8))
sp_run() { # NAME FLAGS...
  name=$1; shift
  # shellcheck disable=SC2086
  $RUN_MPI 2 120 "$TESSERA" train -c "$cfg" --data "$work/data" --sp 2 --steps 2 --metrics "$work/$name.jsonl" "$@" \
    > "$work/out" 2>&1 || { cat "$work/out"; fail "$name run"; }
}
sp_run lasp2_16 --attention linear
sp_run lasp2_32 --attention linear --seq_len 32
want=$(( m * L * 2 * P * S * 4 ))
check_bytes "LASP-2, T = 16" "$work/lasp2_16.jsonl" sp 2 "$want"
check_bytes "LASP-2, T = 32 (the same: independent of the sequence length)" "$work/lasp2_32.jsonl" sp 2 "$want"
sp_run lasp_ring --attention linear --sp-kind ring
check_bytes "LASP ring, rank 0 sends" "$work/lasp_ring.jsonl" sp 2 $(( m * L * S * 4 ))
for T in 16 32; do  # All-Scan: the ring's bytes (one state each way), in blocks
  sp_run allscan_$T --attention linear --sp-kind allscan --seq_len $T
  check_bytes "All-Scan, T = $T (the ring's)" "$work/allscan_$T.jsonl" sp 2 $(( m * L * S * 4 ))
done
for T in 16 32; do
  rows=$(( B * T / P ))
  sp_run ring_$T --sp-kind ring --seq_len $T
  check_bytes "ring attention, T = $T" "$work/ring_$T.jsonl" sp 2 $(( m * L * rows * 2 * h * 4 * ((P - 1) + (P - 1) + P) ))
  sp_run gather_$T --sp-kind allgather --seq_len $T
  check_bytes "K/V all-gather, T = $T" "$work/gather_$T.jsonl" sp 2 $(( m * L * 3 * P * rows * 2 * h * 4 ))
  sp_run tokenring_$T --sp-kind tokenring --seq_len $T
  nh=4; half=$(( rows / 2 )); u=$(( 2 * P - 2 ))
  check_bytes "TokenRing, T = $T" "$work/tokenring_$T.jsonl" sp 2 $(( m * L * 4 * ((P - 1) * rows * h \
    + u * half * (h + nh) + (P - 1) * (2 * rows * h + 2 * rows * nh) + u * half * h) ))
  sp_run ulysses_$T --sp-kind ulysses --seq_len $T
  check_bytes "Ulysses softmax, T = $T" "$work/ulysses_$T.jsonl" sp 2 $(( m * L * 12 * rows * h * 4 ))
  sp_run ulysses_linear_$T --sp-kind ulysses --attention linear --seq_len $T
  check_bytes "Ulysses linear, T = $T" "$work/ulysses_linear_$T.jsonl" sp 2 $(( m * L * 11 * rows * h * 4 ))
done
# (the last run, Ulysses') the end-of-run table names the sp group's all-to-alls
grep -q '^  sp     alltoall ' "$work/out" && pass "end-of-run table lists the sp all-to-alls" \
  || fail "no sp alltoall line in the end-of-run table"
finish
