/* trainer — see trainer.h. */
#include "trainer.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "build_info.h"
#include "checkpoint.h"
#include "fail.h"
#include "report.h"
#include "run.h"
#include "train_loop.h"

/* Set by SIGTERM, SIGINT or SIGUSR1 (Slurm's warning before the time limit)
 * to the signal's number: the run saves at the next step boundary and exits
 * with EXIT_STOPPED. A signal handler can only reach file-scope state, hence
 * this one static. */
static volatile sig_atomic_t stop_requested;

/* A second SIGTERM or SIGINT means "now": a step of a large model takes
 * minutes, and a person pressing Ctrl-C twice (or a scheduler signalling
 * again) must not wait for its end. The rank dies of the signal (the default
 * action, re-raised: only async-signal-safe calls here), mpirun or srun ends
 * the job, and `latest` still names the last complete checkpoint because a
 * save only ever renames a finished file into place. SIGUSR1 is no such
 * "again": Slurm sends it as a warning and its SIGTERM at the time limit may
 * come while that save still runs, which KillWait gives time to finish. */
static void request_stop(int signal_number) {
  const bool asked_before = stop_requested == SIGTERM || stop_requested == SIGINT;
  if (asked_before && signal_number != SIGUSR1) {
    static const char message[] =
        "tessera: a second signal: stopping now, without saving; latest names the last complete checkpoint\n";
    ssize_t written = write(STDERR_FILENO, message, sizeof message - 1);
    (void)written;
    signal(signal_number, SIG_DFL);
    raise(signal_number);
    return;
  }
  stop_requested = signal_number;
}

static void install_stop_handlers(void) {
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_handler = request_stop;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, NULL);
  sigaction(SIGINT, &action, NULL);
  sigaction(SIGUSR1, &action, NULL);
}

/* A signal on any rank stops every rank after the same step: the signal's
 * number (the larger when two came), or 0. */
static int stop_requested_anywhere(run *r) {
  int64_t stop = stop_requested;
  comm_allreduce_max_i64(&r->grid.world, &stop, 1);
  return (int)stop;
}

static bool due(int64_t every, int64_t step) { return every > 0 && step % every == 0; }

/* What a checkpoint records of this run besides the tensors. */
static ckpt_run_info run_info(const run *r) {
  const config *cfg = r->cfg;
  return (ckpt_run_info){.shape = r->shape,
                         .adam = r->opt.settings,
                         .schedule = {cfg->lr, cfg->min_lr, cfg->warmup_steps, cfg->steps},
                         .seed = cfg->seed,
                         .batch_size = cfg->batch_size,
                         .zero = cfg->zero,
                         .version = build_info_version(),
                         .tokenizer = r->data_tok.tok};
}

static checkpoint_saver *create_saver(run *r) {
  const double start = now_seconds();
  const ckpt_save_options options = {.dir = r->cfg->save_dir, .keep = r->cfg->keep, .async = r->cfg->async_save};
  const ckpt_run_info info = run_info(r);
  checkpoint_saver *saver = checkpoint_saver_create(&options, &info, &r->grid, &r->mdl, &r->opt);
  progress_print(&r->pg, "checkpoint staging: %.1f MB of host memory on rank 0, prepared in %.2f s\n",
                 checkpoint_saver_staging_bytes(saver) / 1e6, now_seconds() - start);
  return saver;
}

/* How long the last save took, end to end (rank 0 knows it for a
 * background save), for the line a signal prints. */
typedef struct save_record {
  double last_seconds; /* < 0: none yet in this run */
} save_record;

static void save(run *r, checkpoint_saver *saver, run_totals *totals, save_record *record, int64_t step) {
  const checkpoint_stats saved = checkpoint_save(saver, step);
  if (r->cfg->async_save) {
    progress_print(&r->pg, "checkpoint: step %lld staged in %.2f s; writing in the background\n", (long long)step,
                   saved.stage_seconds);
  } else {
    report_checkpoint(r, totals, &saved, "");
    record->last_seconds = saved.seconds;
  }
}

/* A background save that has finished since the last look; with `wait`,
 * the one in flight first (the end of the run). */
static void collect_saves(run *r, checkpoint_saver *saver, run_totals *totals, save_record *record, bool wait) {
  if (!saver) return;
  if (wait) checkpoint_saver_finish(saver);
  checkpoint_stats written;
  if (checkpoint_saver_poll(saver, &written)) {
    report_checkpoint(r, totals, &written, " in the background");
    record->last_seconds = written.seconds;
  }
}

/* The line a stop prints before its save, so that a job killed before the
 * save ends (Open MPI's mpirun sends SIGKILL odls_base_sigkill_timeout
 * seconds after SIGTERM) says what it lost and what `latest` still holds.
 * A background save in flight is waited for first: `latest` is then final. */
static void announce_stop(run *r, checkpoint_saver *saver, run_totals *totals, save_record *record, int signal_number,
                          int64_t step) {
  const char *name = signal_number == SIGTERM  ? "SIGTERM"
                     : signal_number == SIGINT ? "SIGINT"
                     : signal_number == SIGUSR1 ? "SIGUSR1"
                                                : "a signal";
  if (!saver) {
    progress_print(&r->pg, "%s at step %lld: stopping; nothing is saved (no --save-dir)\n", name, (long long)step);
    return;
  }
  collect_saves(r, saver, totals, record, true);
  char took[64] = "no save yet in this run";
  if (record->last_seconds >= 0) snprintf(took, sizeof took, "last save took %.2f s", record->last_seconds);
  const int64_t latest = r->rt->world_rank == 0 ? ckpt_latest_step(r->cfg->save_dir) : -1;
  char stays[96] = "there stays no checkpoint";
  if (latest >= 0) snprintf(stays, sizeof stays, "latest stays at step %lld", (long long)latest);
  progress_print(&r->pg, "%s at step %lld: saving step %lld (%s); if the job is killed before it ends, %s\n", name,
                 (long long)step, (long long)step, took, stays);
}

int trainer_run(const config *cfg, const model_shape *shape, const runtime *rt) {
  run *r = run_create(cfg, shape, rt);
  run_totals totals;
  report_start(r, &totals);
  install_stop_handlers();
  checkpoint_saver *saver = cfg->save_dir[0] ? create_saver(r) : NULL;
  save_record record = {.last_seconds = -1};
  const int64_t last_step = run_last_step(r);
  bool stopped = false;
  int64_t final_step = r->resumed_step; /* the last step trained: last_step unless a signal stops the run */
  for (int64_t step = r->resumed_step + 1; step <= last_step && !stopped; step++) {
    const step_result res = train_step(r, step);
    final_step = step;
    report_step(r, &totals, step, &res);
    if (!isfinite(res.loss))
      fail_collective(EXIT_INTERNAL_ERROR, "loss is %g at step %lld: training diverged; lower lr or raise warmup_steps",
                      res.loss, (long long)step);
    const int signal_number = stop_requested_anywhere(r);
    stopped = signal_number != 0;
    const bool last = step == last_step || stopped;
    if (stopped) { /* the save first, and said: the time before a kill is short (doc/user-guide.md) */
      announce_stop(r, saver, &totals, &record, signal_number, step);
      if (saver) {
        save(r, saver, &totals, &record, step);
        collect_saves(r, saver, &totals, &record, true); /* --async-save: on disk before it is said */
      }
      progress_print(&r->pg, "stopped by a signal after step %lld%s; exit status %d\n", (long long)step,
                     saver ? ", checkpoint saved: resubmit with --resume auto" : "", EXIT_STOPPED);
    }
    if (due(cfg->val_every, step) || last) report_validation(r, &totals, step, validate(r));
    if (due(cfg->sample_every, step) && !last) print_sample(r, step);
    if (saver && !stopped && (due(cfg->save_every, step) || last)) save(r, saver, &totals, &record, step);
    collect_saves(r, saver, &totals, &record, false);
    report_mark_comm(r, &totals); /* validation, samples and saves are not the step's traffic */
  }
  collect_saves(r, saver, &totals, &record, true); /* the last background save is on disk before we exit */
  checkpoint_saver_free(saver);
  progress_finish(&r->pg);
  print_sample(r, final_step);
  if (cfg->dump_params[0]) checkpoint_dump_parameters(cfg->dump_params, &r->grid, &r->mdl, &r->opt);
  report_end(r, &totals, final_step);
  run_free(r);
  return stopped ? EXIT_STOPPED : EXIT_OK;
}
