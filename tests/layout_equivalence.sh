#!/bin/sh
# layout_equivalence — the central test of tessera (DESIGN.md principle 2):
# one model trained 20 steps in many layouts gives the per-step losses, the
# validation losses and — gathered into the logical model at the end — the
# parameters of the 1-process run.
#
# Tolerances and the helper: tests/equiv_lib.sh. Adding a layout is one
# line at the bottom: `layout NP "FLAGS"`.
. "$TESTS_SRCDIR/lib.sh"
. "$TESTS_SRCDIR/equiv_lib.sh"

equiv_base "$TESTS_SRCDIR/equiv.ini"

layout 2 ""              # dp2
layout 4 ""              # dp4
layout 2 "--tp 2"        # tp2
layout 4 "--tp 4"        # tp4
layout 4 "--tp 2"        # dp2 x tp2
layout 8 "--tp 4"        # dp2 x tp4
layout 2 "--zero 1"      # dp2, ZeRO-1
layout 4 "--zero 1"      # dp4, ZeRO-1
layout 4 "--tp 2 --zero 1"  # dp2 x tp2, ZeRO-1
layout 2 "--zero 2"      # dp2, ZeRO-2
layout 4 "--zero 2"      # dp4, ZeRO-2
layout 4 "--tp 2 --zero 2"  # dp2 x tp2, ZeRO-2
layout 2 "--zero 3"      # dp2, ZeRO-3
layout 4 "--zero 3"      # dp4, ZeRO-3
layout 4 "--tp 2 --zero 3"  # dp2 x tp2, ZeRO-3
layout 2 "--tp 2 --tp-seq-shard"  # tp2, Megatron sequence parallelism
layout 8 "--tp 4 --tp-seq-shard --zero 1"  # dp2 x tp4, sequence-sharded, ZeRO-1
# the output head in chunks of rows that do not divide the micro-batch's
# rows: the loss's arithmetic is per row, only dwte's sum over rows is split
layout 1 "--head_chunk_rows 7"
layout 2 "--tp 2 --tp-seq-shard --head_chunk_rows 5"  # vocabulary-parallel loss per chunk
finish
