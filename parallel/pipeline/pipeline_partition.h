/* pipeline_partition — which layers each model chunk of a pipeline holds.
 *
 * A pipeline of p stages with V chunks per stage cuts the n_layer blocks
 * into p·V chunks of consecutive layers; global chunk g lives on stage
 * g mod p (pipeline_schedule.h). Every chunk holds at least one layer.
 *
 * Balanced partition: each chunk costs its layers' forward FLOPs, plus the
 * embedding on chunk 0 and the head with its loss on the last chunk (for a
 * large vocabulary the head weighs several layers: GPT-2's 50257 × 768 head
 * is about five of its blocks). Among the cuts with the smallest largest
 * chunk cost, the one with the smallest sum of squared chunk costs is taken
 * (the most even); exact dynamic programming over the cut points.
 */
#ifndef TESSERA_PIPELINE_PARTITION_H
#define TESSERA_PIPELINE_PARTITION_H

#include <stddef.h>

/* counts[g] for g < n_chunks given each layer's cost; 0, or -1 with err
 * when n_layer < n_chunks. */
int pipe_partition_balanced(int n_layer, int n_chunks, const double *layer_costs, double first_cost,
                            double last_cost, int *counts, char *err, size_t err_bytes);

/* Parses "3,4,4,3" (one count per chunk, in global chunk order); 0, or -1
 * with err naming what is wrong (count of entries, a count < 1, the sum). */
int pipe_partition_parse(const char *text, int n_layer, int n_chunks, int *counts, char *err,
                         size_t err_bytes);

#endif
