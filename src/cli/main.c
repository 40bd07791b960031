/* tessera — train GPT-style language models with MPI.
 *
 * main() only dispatches to a subcommand (src/commands.h); each subcommand
 * owns its arguments. `tessera --version` prints the build summary. */
#include <stdio.h>
#include <string.h>

#include "build_info.h"
#include "commands.h"
#include "fail.h"

static void print_usage(FILE *out) {
  fprintf(out,
          "usage: tessera <command> [options]\n\n"
          "commands:\n"
          "  train    train a model (run under mpirun/srun for several ranks)\n"
          "  prep     turn text files into a token dataset (PREFIX.bin + PREFIX.idx)\n"
          "  ckpt     inspect (info) or check (verify) a checkpoint\n"
          "  sample   generate text from a checkpoint\n"
          "  eval     a checkpoint's multiple-choice accuracy (--task) or perplexity (--val-data)\n"
          "  convert  a model between formats: Hugging Face folder, llm.c .bin, tessera .h5\n"
          "  plan     the layouts a model can train in on N ranks: memory and bytes per step of each\n\n"
          "  tessera <command> --help   options of a command\n"
          "  tessera --version          version and build (MPI, BLAS, HDF5, CUDA)\n");
}

int main(int argc, char **argv) {
  if (argc < 2) {
    print_usage(stderr);
    return EXIT_USER_ERROR;
  }
  const char *command = argv[1];
  if (strcmp(command, "--version") == 0 || strcmp(command, "version") == 0) {
    build_info_print(stdout);
    return EXIT_OK;
  }
  if (strcmp(command, "--help") == 0 || strcmp(command, "-h") == 0 || strcmp(command, "help") == 0) {
    print_usage(stdout);
    return EXIT_OK;
  }
  if (strcmp(command, "train") == 0) return train_command(argc - 1, argv + 1);
  if (strcmp(command, "prep") == 0) return prep_command(argc - 1, argv + 1);
  if (strcmp(command, "ckpt") == 0) return ckpt_command(argc - 1, argv + 1);
  if (strcmp(command, "sample") == 0) return sample_command(argc - 1, argv + 1);
  if (strcmp(command, "eval") == 0) return eval_command(argc - 1, argv + 1);
  if (strcmp(command, "convert") == 0) return convert_command(argc - 1, argv + 1);
  if (strcmp(command, "plan") == 0) return plan_command(argc - 1, argv + 1);
  fail_collective(EXIT_USER_ERROR, "unknown command '%s' (commands: train, prep, sample, ckpt, eval, convert, plan)",
                  command);
}
