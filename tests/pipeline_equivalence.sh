#!/bin/sh
# pipeline_equivalence — pipeline parallelism (issue 7) in the layout-
# equivalence suite: every schedule, 2 and 4 stages, interleaving, explicit
# stage sizes, recomputation, and pipelines composed with dp, tp (also
# sequence-sharded), ZeRO-1 — losses, validation losses and gathered
# parameters equal the 1-process run (tolerances: tests/equiv_lib.sh).
# A pipelined step runs the same micro-batches through the same layers; only
# the order of additions into the tied embedding's gradient and of the
# gradient norm's partial sums changes.
. "$TESTS_SRCDIR/lib.sh"
. "$TESTS_SRCDIR/equiv_lib.sh"

equiv_base "$TESTS_SRCDIR/pipe-equiv.ini"

layout 2 "--pp 2"                                              # 1F1B, 4 micro-batches
layout 2 "--pp 2 --pp-schedule gpipe"
layout 2 "--pp 2 --pp-schedule interleaved --pp-virtual 2"
layout 4 "--pp 4"
layout 4 "--pp 4 --pp-schedule gpipe"
layout 2 "--pp 2 --head_chunk_rows 3"                          # the last stage's head in chunks
layout 2 "--pp 2 --pp-layers 3,1"                              # explicit, unbalanced
layout 4 "--pp 2"                                              # dp2 x pp2
layout 4 "--pp 2 --tp 2"                                       # tp2 x pp2
layout 4 "--pp 2 --tp 2 --tp-seq-shard"
layout 4 "--pp 2 --zero 1"                                     # dp2 x pp2, ZeRO-1
layout 8 "--pp 2 --tp 2 --zero 1"                              # dp2 x tp2 x pp2
layout 2 "--pp 2 --recompute full"
layout 2 "--pp 2 --pp-schedule gpipe --recompute selective"
layout 1 "--recompute full"
layout 1 "--recompute selective"
layout 2 "--tp 2 --tp-seq-shard --recompute full"
layout 2 "--zero 3 --recompute full"
finish
