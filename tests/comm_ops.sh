#!/bin/sh
# comm_ops — runs tests/test_comm (every call of parallel/comm and the grid)
# on 1, 3 and 4 ranks.
. "$TESTS_SRCDIR/lib.sh"
mpi_unit_test "${TEST_COMM:-$(dirname "$TESSERA")/tests/test_comm}" test_comm 1 3 4
finish
