/* cli_settings — what the commands that run over MPI ranks share on their
 * command lines: the --help check (train, eval, prep), the checked reading
 * of numeric options (every command), and for the ones that
 * run a model (train, eval) `--key=value` / `--key value` as a setting of
 * the key table (src/config) and the checks of a layout against the model
 * and the world size.
 *
 * Every rank parses the same arguments and reaches the same verdict, so
 * errors go through fail_collective: one message, from rank 0.
 */
#ifndef TESSERA_CLI_SETTINGS_H
#define TESSERA_CLI_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "grid.h"

/* Whether any argument is --help or -h: the command then prints its usage
 * and exits 0 before MPI starts or anything is read. */
bool cli_asks_for_help(int argc, char **argv);

/* Splits argv[i] = "--key=value" / "--key value" (dashes in the key read as
 * underscores: --val-data is val_data) into key and value (NULL when a value
 * is missing). Returns the number of argv entries consumed, or 0 when the
 * argument is not of that form. */
int cli_option_key_value(int argc, char **argv, int i, char *key, size_t key_bytes, const char **value);

/* A command's own numeric option (`sample --tokens`, `eval --max-windows`)
 * through the config's one checked parser: text that is not a whole number
 * in [min, max] ends the job with one message naming the command, the option
 * and the value ("sample: --tokens needs a whole number, got 'abc'"). */
int64_t cli_int_option(const char *command, const char *option, const char *text, int64_t min, int64_t max);

/* Sets `key` (as cli_option_key_value split it, from argument `arg`) in cfg;
 * an unknown key or a bad value ends the job with one message that points
 * at `tessera COMMAND --help`. */
void cli_set_option(config *cfg, const char *command, const char *arg, const char *key, const char *value);

/* The layout (--tp, --pp, --sp, --tp-seq-shard) against the world size and
 * the model: whole heads and MLP columns per tp rank, sequences in whole sp
 * chunks. Returns the grid's shape. */
grid_shape cli_check_layout(const config *cfg, const model_shape *arch, int world_size);

/* The pipeline: its schedule and the split of the layers over the stages
 * (pipeline_plan_make), and ZeRO's pairing with it. */
void cli_check_pipeline(const config *cfg, const model_shape *arch, int dp);

#endif
