# plan_all_layouts — sourced by tests/plan_predictions.sh when
# TESSERA_PLAN_ALL=1: `check` on every layout of the equivalence suites
# (layout_equivalence.sh, pipeline_equivalence.sh, sequence_equivalence.sh)
# and of zero_memory.sh, with each suite's config and shared flags.
# (POSIX sh, no shebang: not run alone.)
llama="--norm rmsnorm --mlp swiglu --position rope --bias false"
# layout_equivalence.sh: equiv.ini
for f in "" "--tp 2" "--tp 4" "--zero 1" "--tp 2 --zero 1" "--zero 2" "--tp 2 --zero 2" "--zero 3" \
  "--tp 2 --zero 3" "--tp 2 --tp-seq-shard" "--tp 4 --tp-seq-shard --zero 1" "--head_chunk_rows 7" \
  "--tp 2 --tp-seq-shard --head_chunk_rows 5"; do
  for np in 1 2 4 8; do
    case "$f" in
      "") [ $np = 2 ] || [ $np = 4 ] || continue ;;
      "--tp 2") [ $np = 2 ] || [ $np = 4 ] || continue ;;
      "--tp 4") [ $np = 4 ] || [ $np = 8 ] || continue ;;
      "--zero 1"|"--zero 2"|"--zero 3") [ $np = 2 ] || [ $np = 4 ] || continue ;;
      "--tp 2 --zero "*) [ $np = 4 ] || continue ;;
      "--tp 2 --tp-seq-shard") [ $np = 2 ] || continue ;;
      "--tp 4 --tp-seq-shard --zero 1") [ $np = 8 ] || continue ;;
      "--head_chunk_rows 7") [ $np = 1 ] || continue ;;
      *) [ $np = 2 ] || continue ;;
    esac
    # shellcheck disable=SC2086
    check "$equiv" $np $f
  done
done
# zero_memory.sh: equiv.ini, 4 blocks, ZeRO 0-3 with and without tp 2, on 4 ranks
for zero in 0 1 2 3; do check "$equiv" 4 --n_layer 4 --zero $zero; check "$equiv" 4 --n_layer 4 --zero $zero --tp 2; done
# pipeline_equivalence.sh: pipe-equiv.ini
while read -r np f; do
  # shellcheck disable=SC2086
  check "$pipe" "$np" $f
done <<EOF_LAYOUTS
2 --pp 2
2 --pp 2 --pp-schedule gpipe
2 --pp 2 --pp-schedule interleaved --pp-virtual 2
4 --pp 4
4 --pp 4 --pp-schedule gpipe
2 --pp 2 --head_chunk_rows 3
2 --pp 2 --pp-layers 3,1
4 --pp 2
4 --pp 2 --tp 2
4 --pp 2 --tp 2 --tp-seq-shard
4 --pp 2 --zero 1
8 --pp 2 --tp 2 --zero 1
2 --pp 2 --recompute full
2 --pp 2 --pp-schedule gpipe --recompute selective
1 --recompute full
1 --recompute selective
2 --tp 2 --tp-seq-shard --recompute full
2 --zero 3 --recompute full
EOF_LAYOUTS
# sequence_equivalence.sh: pipe-equiv.ini, four model families
while read -r np f; do
  # shellcheck disable=SC2086
  check "$pipe" "$np" $f
done <<EOF_LAYOUTS
2 --sp 2
2 --sp 2 --sp-kind ring
4 --sp 4 --sp-kind ring
4 --sp 4
4 --sp 2 --tp 2 --sp-kind ring
2 --sp 2 --sp-kind ring --head_chunk_rows 5
2 --sp 2 --sp-kind ulysses
4 --sp 4 --sp-kind ulysses
4 --sp 2 --tp 2 --sp-kind ulysses
4 --sp 2 --pp 2 --sp-kind ulysses
4 --sp 2 --zero 3 --sp-kind ulysses
2 --sp 2 --sp-kind tokenring
4 --sp 4 --sp-kind tokenring
4 --sp 2 --tp 2 --sp-kind tokenring
4 --sp 2 --pp 2 --sp-kind tokenring
4 --sp 2 --zero 3 --sp-kind tokenring
2 --tp 2 $llama
2 --pp 2 $llama
2 --sp 2 --sp-kind ring $llama
4 --sp 2 --tp 2 --tp-seq-shard $llama
4 --sp 2 --tp 2 --tp-seq-shard --sp-kind ulysses $llama
2 --sp 2 --recompute full --sp-kind ulysses $llama
EOF_LAYOUTS
lin="--attention linear"
hyb="--attention hybrid --layer_pattern LLS $llama"
while read -r np f; do
  # shellcheck disable=SC2086
  check "$pipe" "$np" $f
done <<EOF_LAYOUTS
2 --sp 2 --sp-kind ring $lin
2 --sp 2 $lin
4 --sp 4 --sp-kind ring $lin
4 --sp 4 $lin
4 --sp 2 $lin
4 --sp 2 --tp 2 $lin
4 --sp 2 --pp 2 --sp-kind ring $lin
4 --sp 2 --zero 2 $lin
2 --tp 2 $lin
2 --sp 2 --sp-kind allscan $lin
4 --sp 4 --sp-kind allscan $lin
4 --sp 2 --tp 2 --sp-kind allscan --zero 1 $lin
2 --sp 2 --sp-kind ulysses $lin
4 --sp 4 --sp-kind ulysses $lin
4 --sp 2 --recompute selective --sp-kind ulysses $lin
2 --sp 2 --sp-kind ring $hyb
4 --sp 4 $hyb
4 --sp 2 --pp 2 $hyb
8 --sp 2 --tp 2 --pp 2 --sp-kind ring --zero 1 $hyb
4 --sp 2 --zero 2 --recompute selective $hyb
4 --sp 2 --sp-kind allscan --recompute selective $hyb
4 --sp 4 --sp-kind allscan $hyb
4 --sp 2 --pp 2 --sp-kind allscan --zero 1 $hyb
2 --sp 2 --sp-kind ulysses $hyb
4 --sp 4 --sp-kind ulysses $hyb
8 --sp 2 --tp 2 --pp 2 --zero 1 --sp-kind ulysses $hyb
2 --sp 2 --sp-kind tokenring $hyb
4 --sp 4 --recompute selective --sp-kind tokenring $hyb
2 --sp 2 --sp-kind tokenring $lin
EOF_LAYOUTS
