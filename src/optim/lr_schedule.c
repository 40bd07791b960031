/* lr_schedule — see lr_schedule.h. */
#include "lr_schedule.h"

#include <math.h>

double lr_at_step(const lr_schedule *s, int64_t step) {
  if (step <= s->warmup_steps && s->warmup_steps > 0)
    return s->peak_lr * (double)step / (double)s->warmup_steps;
  int64_t decay_steps = s->total_steps - s->warmup_steps;
  if (decay_steps <= 0) return s->min_lr;
  double progress = (double)(step - s->warmup_steps) / (double)decay_steps;
  if (progress > 1.0) progress = 1.0;
  if (progress < 0.0) progress = 0.0;
  return s->min_lr + 0.5 * (s->peak_lr - s->min_lr) * (1.0 + cos(M_PI * progress));
}
