/* ckpt_dir — see ckpt_dir.h. */
#include "ckpt_dir.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "checkpoint_file.h"
#include "ckpt_names.h"
#include "fail.h"

/* A step file's name as `latest` holds it (NAME_MAX). */
#define FILE_NAME_BYTES 256

int ckpt_check_header(const char *path, char *err, size_t err_bytes) {
  ckpt_file f;
  int status = ckpt_file_open(&f, path, MPI_COMM_NULL, err, err_bytes);
  if (status) return status;
  int64_t complete = 0, version = 0;
  char format[64] = "";
  if (ckpt_attr_read_str(&f, "format", format, sizeof format) != 0 || strcmp(format, CKPT_FORMAT_NAME) != 0) {
    snprintf(err, err_bytes, "'%s' is an HDF5 file but not a tessera checkpoint", path);
    status = EXIT_IO_ERROR;
  } else if (ckpt_attr_read_i64(&f, "format_version", &version) != 0 || version != CKPT_FORMAT_VERSION) {
    snprintf(err, err_bytes, "checkpoint '%s' has format version %lld; this tessera reads version %d", path,
             (long long)version, CKPT_FORMAT_VERSION);
    status = EXIT_IO_ERROR;
  } else if (ckpt_attr_read_i64(&f, "complete", &complete) != 0 || complete != 1) {
    snprintf(err, err_bytes, "checkpoint '%s' is incomplete (no `complete` marker): the save was interrupted", path);
    status = EXIT_IO_ERROR;
  }
  ckpt_file_close(&f);
  return status;
}

/* The file name DIR/latest holds, or "" when there is none. */
static void read_latest(const char *dir, char *name, size_t name_bytes) {
  char latest_file[JOINED_PATH_BYTES];
  ckpt_latest_file(latest_file, sizeof latest_file, dir);
  name[0] = '\0';
  FILE *lf = fopen(latest_file, "r");
  if (!lf) return;
  if (!fgets(name, (int)name_bytes, lf)) name[0] = '\0';
  fclose(lf);
  name[strcspn(name, "\n")] = '\0';
}

int checkpoint_path_of(const char *given, char *path, size_t path_bytes, char *err, size_t err_bytes) {
  struct stat st;
  if (stat(given, &st) != 0 || !S_ISDIR(st.st_mode)) {
    snprintf(path, path_bytes, "%s", given);
    return 0;
  }
  char name[FILE_NAME_BYTES];
  read_latest(given, name, sizeof name);
  if (!name[0]) {
    snprintf(err, err_bytes, "'%s' is a directory without a `latest` file: name a checkpoint file in it", given);
    return EXIT_USER_ERROR;
  }
  snprintf(path, path_bytes, "%s/%s", given, name);
  return 0;
}

/* Newest step file in dir whose header is good, skipping `skip`; "" if none. */
static void newest_complete(const char *dir, const char *skip, char *out, size_t out_bytes) {
  out[0] = '\0';
  DIR *d = opendir(dir);
  if (!d) return;
  long long best = -1;
  struct dirent *e;
  while ((e = readdir(d))) {
    long long step;
    if (!ckpt_parse_step_file(e->d_name, &step)) continue;
    char path[JOINED_PATH_BYTES], err[MESSAGE_BYTES];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (step > best && strcmp(path, skip) != 0 && ckpt_check_header(path, err, sizeof err) == 0) {
      best = step;
      snprintf(out, out_bytes, "%s", path);
    }
  }
  closedir(d);
}

void ckpt_resolve_resume(const char *resume, const char *save_dir, int world_rank, char *path, size_t path_bytes) {
  char err[MESSAGE_BYTES];
  if (strcmp(resume, "auto") != 0) {
    int status = checkpoint_path_of(resume, path, path_bytes, err, sizeof err);
    if (!status) status = ckpt_check_header(path, err, sizeof err);
    if (status) fail_collective(status, "%s", err);
    return;
  }
  if (!save_dir[0]) fail_collective(EXIT_USER_ERROR, "--resume auto needs --save-dir DIR to look in");
  char name[FILE_NAME_BYTES];
  read_latest(save_dir, name, sizeof name);
  char candidate[JOINED_PATH_BYTES] = "";
  if (name[0]) {
    snprintf(candidate, sizeof candidate, "%s/%s", save_dir, name);
    if (ckpt_check_header(candidate, err, sizeof err) == 0) {
      snprintf(path, path_bytes, "%s", candidate);
      return;
    }
    if (world_rank == 0) fprintf(stderr, "tessera: warning: %s; looking for an older checkpoint\n", err);
  }
  newest_complete(save_dir, candidate, path, path_bytes);
}

int ckpt_point_latest(const char *dir, int64_t step) {
  char latest_tmp[JOINED_PATH_BYTES], latest[JOINED_PATH_BYTES], name[FILE_NAME_BYTES];
  snprintf(latest_tmp, sizeof latest_tmp, "%s/.latest.tmp", dir);
  ckpt_latest_file(latest, sizeof latest, dir);
  ckpt_step_name(name, sizeof name, step);
  FILE *lf = fopen(latest_tmp, "w");
  if (!lf) return -1;
  if (fprintf(lf, "%s\n", name) < 0) {
    fclose(lf);
    return -1;
  }
  if (fclose(lf) != 0 || rename(latest_tmp, latest) != 0) return -1;
  return 0;
}

void ckpt_keep_newest(const char *dir, int keep) {
  enum { MAX_FILES = 4096 };
  long long steps[MAX_FILES];
  int n = 0;
  DIR *d = opendir(dir);
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d)) && n < MAX_FILES) {
    long long step;
    if (ckpt_parse_step_file(e->d_name, &step)) steps[n++] = step;
  }
  closedir(d);
  for (int i = 0; i < n; i++) {
    int newer = 0;
    for (int j = 0; j < n; j++) newer += steps[j] > steps[i];
    if (newer >= keep) {
      char path[JOINED_PATH_BYTES];
      ckpt_step_file(path, sizeof path, dir, steps[i]);
      if (remove(path) != 0) fprintf(stderr, "tessera: warning: could not remove old checkpoint %s\n", path);
    }
  }
}
