# cluster_lib.sh — the namespace cluster of jobs/cluster for the multi-host
# tests (sourced after lib.sh). cluster_up N makes hosts $cluster_name-h1..N
# (a name unique to this test process, so that parallel tests never share
# one) and tears them down on exit, whatever happens; where namespaces
# cannot be made (not root, no iproute2, `ip netns add` refused in a
# container) the test is skipped (77) with one line saying why.
#
# cluster_mpi NP SECONDS CMD... runs like $RUN_MPI, on the cluster through
# the hostfile $work/hosts (write it first: `cluster_hosts 1:2 2:2` = hosts
# 1 and 2 with 2 slots each), with Open MPI's BTL choices printed
# (btl_base_verbose) for cluster_transports to judge.

cluster_script="$TESTS_SRCDIR/../jobs/cluster"
cluster_name="t$$"
export TESSERA_CLUSTER="$cluster_name"

cluster_skip() { echo "SKIP: $*"; exit 77; }

cluster_up() { # N
  [ "$(id -u)" = 0 ] || cluster_skip "network namespaces need root"
  for tool in ip nsenter unshare bash; do
    command -v "$tool" > /dev/null || cluster_skip "no $tool (iproute2, util-linux)"
  done
  ip netns add "${cluster_name}probe" 2> "$work/probe.err" \
    || cluster_skip "ip netns add refused: $(head -n 1 "$work/probe.err")"
  ip netns delete "${cluster_name}probe" || fail "ip netns delete of the probe namespace"
  trap '"$cluster_script" down; rm -rf "$work"' EXIT
  trap '"$cluster_script" down; rm -rf "$work"; exit 1' INT TERM
  "$cluster_script" up "$1" > "$work/up.out" 2>&1 || { cat "$work/up.out"; fail "jobs/cluster up $1"; finish; }
}

cluster_hosts() { # I:SLOTS ... — the hostfile $work/hosts
  : > "$work/hosts"
  for spec in "$@"; do
    echo "$cluster_name-h${spec%%:*} slots=${spec#*:}" >> "$work/hosts"
  done
}

cluster_mpi() { # NP SECONDS CMD...
  c_np=$1; c_seconds=$2; shift 2
  TESSERA_CLUSTER_HOSTFILE="$work/hosts" timeout --kill-after=10 "$c_seconds" "$cluster_script" mpirun \
    -np "$c_np" -x OPENBLAS_NUM_THREADS=1 -x OMP_NUM_THREADS=1 --mca btl_base_verbose 100 "$@"
}

# cluster_transports OUT — "T V W": how many peers each rank reached over
# TCP and over shared memory (vader), and how many of those choices were
# wrong (TCP inside a host, shared memory across hosts), from Open MPI's
# lines "[HOST:PID] mca: bml: Using tcp btl for send to [[J,1],R] on node HOST2"
cluster_transports() {
  awk '$2 == "mca:" && $3 == "bml:" && $4 == "Using" && ($5 == "tcp" || $5 == "vader") {
         src = $1; sub(/^\[/, "", src); sub(/:.*/, "", src); dst = $NF
         if ($5 == "tcp") { t++; if (src == dst) w++ } else { v++; if (src != dst) w++ }
       }
       END { printf "%d %d %d\n", t, v, w }' "$1"
}

# cluster_placed OUT "HOSTS" — true when the run's hosts line is exactly
# "hosts: HOSTS" (tessera prints which ranks ran on which host)
cluster_placed() {
  got=$(grep '^hosts: ' "$1")
  [ "$got" = "hosts: $2" ] && return 0
  echo "    expected 'hosts: $2', the run printed '${got:-no hosts line}'"
  return 1
}
