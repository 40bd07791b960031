/* lr_schedule — linear warmup, then cosine decay to a floor.
 *
 *   lr(s) = peak · s / warmup                                   for s <= warmup
 *   lr(s) = min + ½(peak − min)(1 + cos(π · p)),  p = (s − warmup)/(total − warmup)
 * with s counting optimizer steps from 1 and p clamped to [0, 1], so training
 * past `total` stays at the floor. A pure function of the step: a resumed run
 * continues the schedule exactly.
 */
#ifndef TESSERA_LR_SCHEDULE_H
#define TESSERA_LR_SCHEDULE_H

#include <stdint.h>

typedef struct lr_schedule {
  double peak_lr, min_lr;
  int64_t warmup_steps, total_steps;
} lr_schedule;

double lr_at_step(const lr_schedule *schedule, int64_t step);

#endif
