/* pipeline_schedule — a pipeline schedule as data (DESIGN.md principle 3).
 *
 * The model's layers are cut into p·V chunks; chunk g lives on stage g mod p
 * as that stage's local chunk g div p (Megatron's interleaved placement; V =
 * 1 is the plain pipeline). A schedule is, for every stage, the ordered list
 * of what it computes: forward or backward of (micro-batch, local chunk).
 * One runtime executes any schedule; the three generators differ only in
 * the order they emit:
 *   GPipe      all forwards, then all backwards (V = 1);
 *   1F1B       PipeDream-flush: p − s − 1 warm-up forwards on stage s, then
 *              one forward and one backward in turn, then the remaining
 *              backwards (V = 1);
 *   interleaved  1F1B over V chunks per stage, micro-batches in groups of p
 *              (Megatron-LM's order; needs m to be a multiple of p).
 * Before a schedule runs, pipeline_schedule_check proves it sound by playing
 * it out: every forward of a chunk after the forward of the chunk before it,
 * every backward after its forward and after the backward of the chunk after
 * it, so every activation or gradient sent is received exactly once, and
 * the play-out never stalls (no deadlock). It also measures the most
 * micro-batches a stage holds at once and, with a forward costing 1 and a
 * backward 2, the bubble fraction.
 */
#ifndef TESSERA_PIPELINE_SCHEDULE_H
#define TESSERA_PIPELINE_SCHEDULE_H

#include <stddef.h>

typedef enum pipe_schedule_kind { PIPE_GPIPE, PIPE_1F1B, PIPE_INTERLEAVED } pipe_schedule_kind;

typedef struct pipe_op {
  int backward; /* 0: forward, 1: backward */
  int micro;    /* micro-batch, 0 .. m−1 */
  int chunk;    /* local chunk on its stage, 0 .. V−1 */
} pipe_op;

typedef struct pipe_schedule {
  pipe_schedule_kind kind;
  int stages, micro_batches, virtual_chunks;
  pipe_op **ops; /* ops[s]: stage s's list, 2·m·V entries */
  int *n_ops;
} pipe_schedule;

/* Builds a schedule; 0, or -1 with err naming the impossible request. */
int pipe_schedule_build(pipe_schedule *s, pipe_schedule_kind kind, int stages, int micro_batches,
                        int virtual_chunks, char *err, size_t err_bytes);
void pipe_schedule_free(pipe_schedule *s);

/* What the play-out measured. */
typedef struct pipe_schedule_report {
  int max_in_flight[64]; /* per stage (first 64): micro-batch chunks forwarded, not yet backwarded */
  double bubble;         /* idle fraction with forward 1, backward 2, sends free */
  double makespan;       /* in forward units */
} pipe_schedule_report;

/* Plays the schedule out; 0, or -1 with err saying which rule broke where. */
int pipe_schedule_check(const pipe_schedule *s, pipe_schedule_report *report, char *err, size_t err_bytes);

/* The textbook bubble fraction: (p − 1)/(V·m + p − 1). */
double pipe_schedule_bubble_formula(int stages, int micro_batches, int virtual_chunks);

const char *pipe_schedule_name(pipe_schedule_kind kind);

#endif
