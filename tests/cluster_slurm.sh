#!/bin/sh
# cluster_slurm — jobs/train.sbatch under Slurm on the namespace cluster
# (jobs/cluster up 2, jobs/cluster-slurm up: munge, slurmctld, one slurmd per
# host), one job through all its lives, on a tiny model:
#  1. sbatch on 2 nodes x 1 task with a 1-minute limit and --signal=USR1@45
#     (sbatch's options override the script's #SBATCH lines): Slurm's
#     time-limit signal makes tessera save and exit 4, and the script
#     requeues the job; the ranks ran on both hosts (srun --mpi=pmix);
#  2. the requeued job (2 nodes) resumes that checkpoint; `scontrol requeue`
#     makes it save (SIGTERM), and Slurm requeues it (the script does not);
#  3. shrunk to 1 node while pending (scontrol update NumNodes=1), it resumes
#     the 2-node checkpoint; `scancel` makes it save and the job ends
#     CANCELLED, not requeued;
#  4. Open MPI chose TCP between hosts, shared memory only inside one;
#  5. the metrics file is one curve: steps 1..last, each once, in order, and
#     the three end records say the steps each life reached.
# A requeued job waits 11 s before it starts again (its BeginTime:
# jobs/cluster-slurm's cred_expire of 10 s; Slurm's default is 120 s);
# meanwhile the test lifts the time limit (after the first requeue), so
# that the later lives end by its hand, and shrinks the job to one node
# (after the second). Skipped (77) without Slurm (slurmctld, slurmd, munge) or where
# network namespaces cannot be made.
. "$TESTS_SRCDIR/lib.sh"
. "$TESTS_SRCDIR/cluster_lib.sh"

for tool in slurmctld slurmd munged sbatch srun scontrol; do
  command -v "$tool" > /dev/null || cluster_skip "no $tool (Debian: slurmctld slurmd slurm-client munge)"
done
slurm_script="$TESTS_SRCDIR/../jobs/cluster-slurm"
sbatch_script="$TESTS_SRCDIR/../jobs/train.sbatch"
cluster_up 2
trap '"$slurm_script" down; "$cluster_script" down; rm -rf "$work"' EXIT
trap '"$slurm_script" down; "$cluster_script" down; rm -rf "$work"; exit 1' INT TERM
"$slurm_script" up --cpus 2 > "$work/slurm.out" 2>&1 || { cat "$work/slurm.out"; fail "jobs/cluster-slurm up"; finish; }
h=$cluster_name
sl() { "$slurm_script" run "$@"; }
prep_corpus "$work/data" 60000
t0=$(date +%s)

# until SECONDS CMD... — CMD succeeds within SECONDS (polled twice a second)
until_true() {
  u_end=$(($(date +%s) + $1)); shift
  while ! "$@"; do
    [ "$(date +%s)" -ge "$u_end" ] && return 1
    sleep 0.5
  done
}
out="$work/job.out"
lines() { l_n=$(grep -c -- "$1" "$out" 2> /dev/null); echo "${l_n:-0}"; }
has() { [ "$(lines "$1")" -ge "$2" ]; }
last_step() { sed -n 's/^{"step":\([0-9]*\),"loss".*/\1/p' "$work/run/metrics.jsonl" 2> /dev/null | tail -n 1; }
past() { s=$(last_step); [ "${s:-0}" -gt "$1" ]; }
field() { sl scontrol show job "$job" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
is() { [ "$(field "$1")" = "$2" ]; }
stopped_at() { sed -n 's/^stopped by a signal after step \([0-9]*\),.*/\1/p' "$out" | sed -n "$1p"; }
pending() { # SETTINGS — the pending job updated (before it starts again)
  until_true 90 is JobState PENDING || bail "the job is $(field JobState), not PENDING"
  sl scontrol update JobId="$job" "$@" || fail "scontrol update $*"
}
bail() {
  fail "$*"; grep -v '^step ' "$out" | sed 's/^/    /' | tail -n 25; sl squeue
  for log in /run/tessera-cluster/"$cluster_name"/slurm/*.log; do echo "== $log"; tail -n 8 "$log"; done
  finish
}

# (Open MPI's BTL choices printed, for cluster_transports: sbatch passes the
# environment on, to every life of the job)
job=$(cd "$work" && TESSERA="$TESSERA" TESSERA_RUN_DIR="$work/run" SAVE_EVERY=1000000 OMPI_MCA_btl_base_verbose=100 sl sbatch --parsable \
  --nodes=2 --ntasks-per-node=1 --time=1 --signal=USR1@45 --output="$out" \
  "$sbatch_script" "$TESTS_SRCDIR/tiny-test.ini" "$work/data" --steps 1000000 --val_every 0) \
  || bail "sbatch jobs/train.sbatch"

# 1. the time limit's signal: saved, requeued by the script
until_true 100 has "requeueing job $job" 1 || bail "no requeue after the time-limit signal within 100 s"
a=$(stopped_at 1)
pending TimeLimit=10
t1=$(date +%s)
grep -q "^job $job (restart 0): 2 ranks on 2 nodes" "$out" && cluster_placed "$out" "2 = $h-h1 (ranks 0), $h-h2 (ranks 1)" \
  && pass "time limit: 2 ranks on 2 hosts stopped by SIGUSR1 after step $a ($((t1 - t0)) s after sbatch), saved, requeued by the script" \
  || fail "time limit: not 2 ranks on 2 hosts"

# 2. scontrol requeue: saved, requeued by Slurm
until_true 60 has "resumed from .*step_0*$a.h5 at step $a" 1 || bail "the requeued job did not resume step $a"
until_true 60 past $((a + 100)) || bail "the resumed job made no progress past step $a"
sl scontrol requeue "$job" || fail "scontrol requeue"
until_true 60 has "ended or requeued by Slurm" 1 || bail "no save after scontrol requeue"
b=$(stopped_at 2)
until_true 30 is Restarts 2 || bail "scontrol requeue: not requeued"
[ "$(lines "requeueing job")" -eq 1 ] && grep -q "^job $job (restart 1): 2 ranks on 2 nodes" "$out" \
  && pass "scontrol requeue: the 2-node job resumed step $a, saved step $b, and Slurm requeued it (not the script)" \
  || fail "scontrol requeue: want one life on 2 nodes and no requeue by the script"

# 3. on 1 node; scancel: saved, ended
pending NumNodes=1 NumTasks=1
until_true 60 has "resumed from .*step_0*$b.h5 at step $b" 1 || bail "the 1-node job did not resume step $b"
grep -q "^job $job (restart 2): [0-9]* ranks on 1 nodes" "$out" \
  || fail "the third life: not on 1 node ($(grep "^job $job (restart 2)" "$out"); NumNodes $(field NumNodes))"
until_true 60 past $((b + 100)) || bail "the 1-node job made no progress past step $b"
sl scancel "$job" || fail "scancel"
until_true 60 has "ended or requeued by Slurm" 2 || bail "no save after scancel"
c=$(stopped_at 3)
until_true 30 is JobState CANCELLED || bail "scancel: the job is $(field JobState), not CANCELLED"
sleep 3
is Restarts 2 && is JobState CANCELLED && [ "$(lines "requeueing job")" -eq 1 ] \
  && pass "scancel: the 1-node job resumed the 2-node checkpoint (step $b), saved step $c, ended CANCELLED without a requeue" \
  || fail "scancel: requeued after all (restarts $(field Restarts), state $(field JobState))"

# srun-launched ranks: TCP between the hosts, shared memory only inside one
# shellcheck disable=SC2046
set -- $(cluster_transports "$out")
[ "$1" -ge 2 ] && [ "$3" -eq 0 ] \
  && pass "srun --mpi=pmix: peers over TCP $1, over shared memory $2 (the 1-node life), none the wrong way" \
  || fail "srun --mpi=pmix: peers over TCP $1 (want >= 2), the wrong way $3 (want 0)"

# 4. one continuous curve
sed -n 's/^{"step":\([0-9]*\),"loss".*/\1/p' "$work/run/metrics.jsonl" > "$work/steps"
ends=$(sed -n 's/^{"event":"end","steps":\([0-9]*\),.*/\1/p' "$work/run/metrics.jsonl" | tr '\n' ' ')
gaps=$(awk 'BEGIN { e = 1 } $1 != e { n++ } { e = $1 + 1 } END { print n + 0 }' "$work/steps")
n=$(wc -l < "$work/steps")
[ "$gaps" -eq 0 ] && [ "$n" -eq "$c" ] && [ "$ends" = "$a $b $c " ] \
  && pass "metrics: steps 1..$c once each, in order; end records at $ends($(($(date +%s) - t0)) s in all)" \
  || fail "metrics: $n steps, $gaps out of order, gaps or repeats, end records at '$ends' (want 1..$c, 0, '$a $b $c ')"
finish
