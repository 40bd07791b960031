/* trainer — `tessera train` from a checked configuration to its last
 * line: build the run (run.h), train step after step (train_loop.h) with
 * validation, samples and checkpoints when they are due, stop cleanly on
 * SIGTERM/SIGUSR1, and report (report.h).
 */
#ifndef TESSERA_TRAINER_H
#define TESSERA_TRAINER_H

#include "config.h"
#include "model_shape.h"
#include "runtime.h"

/* Runs the whole training job; shape is config_model_shape(cfg). Returns
 * the exit status (EXIT_OK, or EXIT_STOPPED after a signal). */
int trainer_run(const config *cfg, const model_shape *shape, const runtime *rt);

#endif
