/* convert_command — `tessera convert IN OUT [--to hf|llmc|tessera]`: a
 * model from one format into another, one tensor at a time (src/convert/
 * model_io.h). The formats follow the paths (a folder is a Hugging Face
 * model, *.bin llm.c's, *.h5 a tessera checkpoint) unless --to names OUT's.
 * One process, no MPI job needed. The source is opened and checked, and
 * the target checked to hold the model, before OUT is created; OUT appears
 * only when complete. */
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "commands.h"
#include "fail.h"
#include "model_io.h"

static int usage(bool help) {
  fprintf(help ? stdout : stderr,
          "usage: tessera convert IN OUT [--to hf|llmc|tessera]\n"
          "  IN, OUT: a Hugging Face model folder (GPT2LMHeadModel, LlamaForCausalLM), an llm.c model file\n"
          "  (*.bin, GPT-2) or a tessera checkpoint (*.h5; written weights-only); --to names OUT's format\n"
          "  when its path does not tell\n");
  return help ? EXIT_OK : EXIT_USER_ERROR;
}

int convert_command(int argc, char **argv) {
  const char *paths[2] = {NULL, NULL}, *to = NULL;
  int n_paths = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) return usage(true);
    if (strcmp(argv[i], "--to") == 0 && i + 1 < argc) to = argv[++i];
    else if (strncmp(argv[i], "--to=", 5) == 0) to = argv[i] + 5;
    else if (argv[i][0] == '-' && argv[i][1] != '\0')
      fail_collective(EXIT_USER_ERROR, "convert: unknown option '%s' (see `tessera convert --help`)", argv[i]);
    else if (n_paths < 2) paths[n_paths++] = argv[i];
    else fail_collective(EXIT_USER_ERROR, "convert: one input and one output, got a third path '%s'", argv[i]);
  }
  if (n_paths != 2) return usage(false);
  char err[MESSAGE_BYTES];
  model_format format;
  int status = 0;
  if (to) {
    const int named = model_format_from_name(to);
    if (named < 0) fail_collective(EXIT_USER_ERROR, "convert: --to '%s': the formats are hf, llmc and tessera", to);
    format = (model_format)named;
  } else if ((status = model_format_of_path(paths[1], &format, err, sizeof err)) != 0) {
    fail_collective(status, "convert: %s", err);
  }
  const double start = now_seconds();
  model_source *source = model_source_open(paths[0], &status, err, sizeof err);
  if (!source) fail_collective(status, "%s", err);
  const model_shape *shape = model_source_shape(source);
  model_sink *sink = model_sink_create(paths[1], format, shape, model_source_tokenizer_json(source), &status, err,
                                       sizeof err);
  if (!sink) fail_collective(status, "cannot convert '%s' into %s: %s", paths[0], model_format_name(format), err);
  if ((status = model_convert(source, sink, err, sizeof err)) != 0) fail_collective(status, "%s", err);
  char description[MESSAGE_BYTES];
  model_shape_describe(shape, description, sizeof description);
  printf("converted %s '%s' into %s '%s' in %.2f s: %d layers, %d heads, d_model %d, vocab %d, seq_len %d; %s%s\n",
         model_source_description(source), paths[0], model_format_name(format), paths[1], now_seconds() - start,
         shape->n_layer, shape->n_head, shape->d_model, shape->vocab_size, shape->seq_len, description,
         !model_source_tokenizer_json(source) ? ""
         : format == MODEL_FORMAT_LLMC        ? "; its tokenizer left out (llm.c keeps it in a file of its own)"
                                              : "; with its tokenizer");
  model_source_close(source);
  return EXIT_OK;
}
