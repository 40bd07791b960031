/* ckpt_dir — see ckpt_dir.h. */
#include "ckpt_dir.h"

#include <dirent.h>
#include <stdbool.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "checkpoint_file.h"
#include "ckpt_names.h"
#include "ckpt_validate.h"
#include "fail.h"

/* A step file's name as `latest` holds it (NAME_MAX). */
#define FILE_NAME_BYTES 256

int ckpt_check_header(const char *path, char *err, size_t err_bytes) {
  ckpt_file f;
  int status = ckpt_file_open(&f, path, MPI_COMM_NULL, err, err_bytes);
  if (status) return status;
  status = ckpt_check_attributes(&f, true, err, err_bytes);
  ckpt_file_close(&f);
  return status;
}

/* The file name DIR/latest holds: 0 with "" when there is no `latest`, 0
 * with the name of a file of DIR, or EXIT_IO_ERROR with err when `latest`
 * is a directory or names anything but a plain name (a path elsewhere: another
 * run's checkpoint; ".", ".."). */
static int read_latest(const char *dir, char *name, size_t name_bytes, char *err, size_t err_bytes) {
  char latest_file[JOINED_PATH_BYTES];
  ckpt_latest_file(latest_file, sizeof latest_file, dir);
  name[0] = '\0';
  struct stat st;
  if (stat(latest_file, &st) != 0) return 0;
  if (S_ISDIR(st.st_mode)) {
    snprintf(err, err_bytes, "'%s' is a directory, not the file naming the newest checkpoint", latest_file);
    return EXIT_IO_ERROR;
  }
  FILE *lf = fopen(latest_file, "r");
  if (!lf) return 0;
  if (!fgets(name, (int)name_bytes, lf)) name[0] = '\0';
  fclose(lf);
  name[strcspn(name, "\n")] = '\0';
  if (strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
    snprintf(err, err_bytes, "'%s' names '%s', not a file inside its directory '%s'", latest_file, name, dir);
    return EXIT_IO_ERROR;
  }
  return 0;
}

int checkpoint_path_of(const char *given, char *path, size_t path_bytes, char *err, size_t err_bytes) {
  struct stat st;
  if (stat(given, &st) != 0 || !S_ISDIR(st.st_mode)) {
    snprintf(path, path_bytes, "%s", given);
    return 0;
  }
  char name[FILE_NAME_BYTES];
  const int status = read_latest(given, name, sizeof name, err, err_bytes);
  if (status) return status;
  if (!name[0]) {
    snprintf(err, err_bytes, "'%s' is a directory without a `latest` file: name a checkpoint file in it", given);
    return EXIT_USER_ERROR;
  }
  snprintf(path, path_bytes, "%s/%s", given, name);
  return 0;
}

/* Newest step file in dir whose header is good, skipping `skip`; "" if
 * none. Returns the number of step files seen (skip included). */
static int newest_complete(const char *dir, const char *skip, char *out, size_t out_bytes) {
  out[0] = '\0';
  int seen = 0;
  DIR *d = opendir(dir);
  if (!d) return 0;
  long long best = -1;
  struct dirent *e;
  while ((e = readdir(d))) {
    long long step;
    if (!ckpt_parse_step_file(e->d_name, &step)) continue;
    seen++;
    char path[JOINED_PATH_BYTES], err[MESSAGE_BYTES];
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    if (step > best && strcmp(path, skip) != 0 && ckpt_check_header(path, err, sizeof err) == 0) {
      best = step;
      snprintf(out, out_bytes, "%s", path);
    }
  }
  closedir(d);
  return seen;
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
  const int status = read_latest(save_dir, name, sizeof name, err, sizeof err);
  if (status) fail_collective(status, "--resume auto: %s", err);
  char candidate[JOINED_PATH_BYTES] = "";
  if (name[0]) {
    snprintf(candidate, sizeof candidate, "%s/%s", save_dir, name);
    if (ckpt_check_header(candidate, err, sizeof err) == 0) {
      snprintf(path, path_bytes, "%s", candidate);
      return;
    }
    if (world_rank == 0) fprintf(stderr, "tessera: warning: %s; looking for an older checkpoint\n", err);
  }
  /* checkpoints there but none readable: an error, never a fresh start
   * that would overwrite the earlier run's metrics and saves */
  const int seen = newest_complete(save_dir, candidate, path, path_bytes);
  if (!path[0] && (seen > 0 || name[0]))
    fail_collective(EXIT_IO_ERROR,
                    "--resume auto: '%s' holds checkpoints but none is readable%s%s; refusing a fresh start over "
                    "them (name one with --resume PATH, or another --save-dir)",
                    save_dir, name[0] ? ": " : "", name[0] ? err : "");
}

/* A file really created and removed in dir: the only test that sees a
 * read-only mount, a full inode table or an ACL as a save will. */
static int probe_writable(const char *dir, char *err, size_t err_bytes) {
  char probe[JOINED_PATH_BYTES];
  snprintf(probe, sizeof probe, "%s/.tessera-write-probe.%ld", dir, (long)getpid());
  const int fd = open(probe, O_WRONLY | O_CREAT | O_EXCL, 0644);
  if (fd < 0) {
    snprintf(err, err_bytes, "save directory '%s' is not writable: cannot create a file in it: %s", dir,
             strerror(errno));
    return EXIT_USER_ERROR;
  }
  close(fd);
  if (unlink(probe) != 0) {
    snprintf(err, err_bytes, "save directory '%s': cannot remove the file '%s' it let us create: %s", dir, probe,
             strerror(errno));
    return EXIT_USER_ERROR;
  }
  return 0;
}

int ckpt_check_save_dir(const char *dir, char *err, size_t err_bytes) {
  struct stat st;
  if (stat(dir, &st) != 0) {
    if (errno != ENOENT) { /* ELOOP, ENOTDIR (a file on the way), EACCES, ENAMETOOLONG */
      snprintf(err, err_bytes, "save directory '%s': %s", dir, strerror(errno));
      return EXIT_USER_ERROR;
    }
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
      snprintf(err, err_bytes, "cannot create save directory '%s': %s", dir, strerror(errno));
      return EXIT_USER_ERROR;
    }
    if (stat(dir, &st) != 0) { /* a dangling symbolic link: mkdir said EEXIST */
      snprintf(err, err_bytes, "save directory '%s': %s", dir, strerror(errno));
      return EXIT_USER_ERROR;
    }
  }
  if (!S_ISDIR(st.st_mode)) {
    snprintf(err, err_bytes, "save directory '%s' is %s: %s", dir, S_ISREG(st.st_mode) ? "a file" : "not a directory",
             strerror(ENOTDIR));
    return EXIT_USER_ERROR;
  }
  char name[FILE_NAME_BYTES];
  char latest_err[MESSAGE_BYTES];
  const int status = read_latest(dir, name, sizeof name, latest_err, sizeof latest_err);
  if (status) {
    /* only a directory stops a save from renaming over it; a `latest` that
     * names a file elsewhere is replaced by the first save (and refused by
     * a resume) */
    char latest_file[JOINED_PATH_BYTES];
    ckpt_latest_file(latest_file, sizeof latest_file, dir);
    if (stat(latest_file, &st) == 0 && S_ISDIR(st.st_mode)) {
      snprintf(err, err_bytes, "save directory: %s", latest_err);
      return status;
    }
  }
  return probe_writable(dir, err, err_bytes);
}

int64_t ckpt_latest_step(const char *dir) {
  char name[FILE_NAME_BYTES], err[MESSAGE_BYTES];
  long long step;
  if (read_latest(dir, name, sizeof name, err, sizeof err) != 0 || !ckpt_parse_step_file(name, &step)) return -1;
  return step;
}

int ckpt_point_latest(const char *dir, int64_t step) {
  char latest_tmp[JOINED_PATH_BYTES], latest[JOINED_PATH_BYTES], name[FILE_NAME_BYTES];
  snprintf(latest_tmp, sizeof latest_tmp, "%s/.latest.tmp", dir);
  ckpt_latest_file(latest, sizeof latest, dir);
  ckpt_step_name(name, sizeof name, step);
  FILE *lf = fopen(latest_tmp, "w");
  if (!lf) return -1;
  const bool written = fprintf(lf, "%s\n", name) >= 0;
  if (fclose(lf) == 0 && written && rename(latest_tmp, latest) == 0) return 0;
  const int saved_errno = errno; /* a full disk: the old `latest` stays, its stand-in goes */
  unlink(latest_tmp);
  errno = saved_errno;
  return -1;
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
