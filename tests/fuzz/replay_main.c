/* replay_main.c — runs a fuzz target's committed inputs without libFuzzer,
 * so that `make test` replays every corpus and regression file in the
 * normal sanitizer build (gcc, ASan + UBSan).
 *
 * Built once per target with -DTALLY_FUZZ_TARGET=\"<target>\": with no
 * arguments it feeds LLVMFuzzerTestOneInput every regular file of
 * tests/fuzz/<target>/corpus and tests/fuzz/<target>/regressions (relative
 * to the repository root, where tests run); with arguments, only those
 * files. Prints one TAP line, `ok <target> <n> inputs`. A broken property
 * aborts inside the target (ASan or FUZZ_CHECK), after this file has
 * printed the input's name on stderr; an unreadable folder or file is
 * `not ok` and exit 1. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef TALLY_FUZZ_TARGET
#error "build with -DTALLY_FUZZ_TARGET=\"<target>\""
#endif

enum { REPLAY_INPUT_BYTES_MAX = 1 << 20, REPLAY_PATH_BYTES = 1024 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int replay_file(const char *path) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    perror(path);
    return -1;
  }
  uint8_t *buf = malloc(REPLAY_INPUT_BYTES_MAX);
  size_t n = buf ? fread(buf, 1, REPLAY_INPUT_BYTES_MAX, f) : 0;
  int bad = !buf || ferror(f) || !feof(f);
  fclose(f);
  if (bad) {
    fprintf(stderr, "%s: unreadable or over %d bytes\n", path, REPLAY_INPUT_BYTES_MAX);
    free(buf);
    return -1;
  }
  fprintf(stderr, "replay %s (%zu bytes)\n", path, n);
  /* An exact-size copy, so that ASan sees a read one byte past the input. */
  uint8_t *exact = malloc(n ? n : 1);
  if (!exact) {
    free(buf);
    return -1;
  }
  memcpy(exact, buf, n);
  free(buf);
  LLVMFuzzerTestOneInput(exact, n);
  free(exact);
  return 0;
}

static int name_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Replays every regular file of dir in name order; the count, or -1. */
static int replay_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) {
    perror(dir);
    return -1;
  }
  char **names = NULL;
  size_t count = 0, cap = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] == '.') continue; /* ., .., .gitkeep */
    if (count == cap) {
      cap = cap ? cap * 2 : 64;
      char **grown = realloc(names, cap * sizeof *names);
      if (!grown) break;
      names = grown;
    }
    names[count++] = strdup(e->d_name);
  }
  closedir(d);
  if (count) qsort(names, count, sizeof *names, name_cmp);
  int done = 0;
  for (size_t i = 0; i < count; i++) {
    char path[2 * REPLAY_PATH_BYTES];
    int len = snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    if (done >= 0 && len > 0 && (size_t)len < sizeof path && replay_file(path) == 0) done++;
    else done = -1;
    free(names[i]);
  }
  free(names);
  return done;
}

int main(int argc, char **argv) {
  int total = 0;
  if (argc > 1) {
    for (int i = 1; i < argc; i++) {
      if (replay_file(argv[i]) != 0) {
        printf("not ok %s: cannot read %s\n", TALLY_FUZZ_TARGET, argv[i]);
        return 1;
      }
      total++;
    }
  } else {
    static const char *const dirs[] = {"corpus", "regressions"};
    for (size_t i = 0; i < 2; i++) {
      char dir[REPLAY_PATH_BYTES];
      snprintf(dir, sizeof dir, "tests/fuzz/%s/%s", TALLY_FUZZ_TARGET, dirs[i]);
      int n = replay_dir(dir);
      if (n < 0) {
        printf("not ok %s: cannot replay %s\n", TALLY_FUZZ_TARGET, dir);
        return 1;
      }
      total += n;
    }
  }
  printf("ok %s %d inputs\n", TALLY_FUZZ_TARGET, total);
  return 0;
}
