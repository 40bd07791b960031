#!/bin/sh
# sp_scan — runs tests/test_sp_scan (ZeCO's All-Scan: the pipelined,
# blocked scan of linear-attention states up and down the ranks equals the
# sequential decayed prefix) on 1, 2, 3 and 4 ranks.
. "$TESTS_SRCDIR/lib.sh"
mpi_unit_test "${TEST_SP_SCAN:-$(dirname "$TESSERA")/tests/test_sp_scan}" test_sp_scan 1 2 3 4
finish
