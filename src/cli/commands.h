/* commands — the subcommands of the tessera program (see DESIGN.md's
 * command-line contract). Each returns the process exit status. */
#ifndef TESSERA_COMMANDS_H
#define TESSERA_COMMANDS_H

int train_command(int argc, char **argv);  /* tessera train ...  (MPI job) */
int prep_command(int argc, char **argv);   /* tessera prep INPUT... -o PREFIX (MPI job, or one process) */
int ckpt_command(int argc, char **argv);   /* tessera ckpt info|verify PATH (one process) */
int sample_command(int argc, char **argv); /* tessera sample --ckpt PATH ... (one process) */
int eval_command(int argc, char **argv);   /* tessera eval --ckpt PATH --task|--val-data ... (MPI job) */
int convert_command(int argc, char **argv); /* tessera convert IN OUT [--to FORMAT] (one process) */
int plan_command(int argc, char **argv);    /* tessera plan --config MODEL.ini --world N (one process) */

#endif
