/* bpe_pretokenize — see bpe_pretokenize.h. ASCII characters take a table
 * lookup; others are decoded here (strictly, so that invalid bytes are
 * caught) and classified by utf8proc's category table. */
#include "bpe_pretokenize.h"

#include <stdint.h>
#include <utf8proc.h>

enum char_class { LETTER, NUMBER, SPACE, OTHER };

#define L LETTER
#define N NUMBER
#define S SPACE
#define O OTHER
static const unsigned char ascii_class[128] = {
    O, O, O, O, O, O, O, O, O, S, S, S, S, S, O, O, /* \t \n \v \f \r */
    O, O, O, O, O, O, O, O, O, O, O, O, O, O, O, O, /* 0x1C..0x1F are not White_Space */
    S, O, O, O, O, O, O, O, O, O, O, O, O, O, O, O, /* space ! " # ... / */
    N, N, N, N, N, N, N, N, N, N, O, O, O, O, O, O, /* 0-9 : ; < = > ? */
    O, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L, /* @ A-O */
    L, L, L, L, L, L, L, L, L, L, L, O, O, O, O, O, /* P-Z [ \ ] ^ _ */
    O, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L, /* ` a-o */
    L, L, L, L, L, L, L, L, L, L, L, O, O, O, O, O, /* p-z { | } ~ DEL */
};
#undef L
#undef N
#undef S
#undef O

/* The code point of the UTF-8 sequence at s (n_bytes available) and its
 * length, or -1 and length 1 when it is not valid UTF-8 (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF). s[0] >= 0x80. */
static int32_t decode(const unsigned char *s, size_t n_bytes, size_t *length) {
  unsigned b = s[0];
  size_t need;
  unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
  int32_t cp;
  *length = 1;
  if (b >= 0xC2 && b <= 0xDF) need = 1, cp = b & 0x1F;
  else if (b >= 0xE0 && b <= 0xEF) need = 2, cp = b & 0x0F, lo = b == 0xE0 ? 0xA0 : 0x80, hi = b == 0xED ? 0x9F : 0xBF;
  else if (b >= 0xF0 && b <= 0xF4) need = 3, cp = b & 0x07, lo = b == 0xF0 ? 0x90 : 0x80, hi = b == 0xF4 ? 0x8F : 0xBF;
  else return -1;
  if (need >= n_bytes) return -1;
  if (s[1] < lo || s[1] > hi) return -1;
  for (size_t k = 1; k <= need; k++) {
    if ((s[k] & 0xC0) != 0x80) return -1;
    cp = (cp << 6) | (s[k] & 0x3F);
  }
  *length = need + 1;
  return cp;
}

static int is_white_space(int32_t cp) {
  return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
         cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

static enum char_class class_of_codepoint(int32_t cp) {
  if (cp < 0) return OTHER; /* an invalid byte */
  if (is_white_space(cp)) return SPACE;
  switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
      return LETTER;
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
      return NUMBER;
    default:
      return OTHER;
  }
}

/* The class of the character at s[i] and its length in bytes. */
static inline enum char_class class_at(const unsigned char *s, size_t n_bytes, size_t i, size_t *length) {
  if (s[i] < 0x80) {
    *length = 1;
    return (enum char_class)ascii_class[s[i]];
  }
  return class_of_codepoint(decode(s + i, n_bytes - i, length));
}

/* The end of the run of characters of class c that starts at i. */
static size_t run_end(const unsigned char *s, size_t n_bytes, size_t i, enum char_class c) {
  for (;;) {
    while (i < n_bytes && s[i] < 0x80 && ascii_class[s[i]] == c) i++;
    if (i == n_bytes || s[i] < 0x80) return i;
    size_t length;
    if (class_at(s, n_bytes, i, &length) != c) return i;
    i += length;
  }
}

/* 's 't 'm 'd 're 've 'll: the length after the apostrophe, or 0. */
static size_t contraction(const unsigned char *s, size_t n_bytes) {
  if (n_bytes >= 1 && (s[0] == 's' || s[0] == 't' || s[0] == 'm' || s[0] == 'd')) return 1;
  if (n_bytes >= 2 && ((s[0] == 'r' && s[1] == 'e') || (s[0] == 'v' && s[1] == 'e') ||
                       (s[0] == 'l' && s[1] == 'l')))
    return 2;
  return 0;
}

size_t bpe_pretoken_end(const unsigned char *s, size_t n_bytes, size_t i) {
  size_t length;
  if (s[i] == '\'') {
    size_t k = contraction(s + i + 1, n_bytes - i - 1);
    if (k) return i + 1 + k;
  }
  /* ` ?\p{L}+`, ` ?\p{N}+`, ` ?[^\s\p{L}\p{N}]+`: a space joins the run after it */
  if (s[i] == ' ' && i + 1 < n_bytes) {
    enum char_class next = class_at(s, n_bytes, i + 1, &length);
    if (next != SPACE) return run_end(s, n_bytes, i + 1 + length, next);
  }
  enum char_class c = class_at(s, n_bytes, i, &length);
  if (c != SPACE) return run_end(s, n_bytes, i + length, c);
  /* \s+(?!\S) then \s+: a run followed by a non-space gives up its last
   * character (which starts the next piece) unless it is that one character */
  size_t last = i, j = i + length;
  while (j < n_bytes && class_at(s, n_bytes, j, &length) == SPACE) {
    last = j;
    j += length;
  }
  return j < n_bytes && last > i ? last : j;
}
