/* bpe_alphabet — see bpe_alphabet.h. */
#include "bpe_alphabet.h"

static int printable(unsigned b) {
  return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

/* The character byte b stands for: itself when printable, else 256 + the
 * number of non-printable bytes below it. Those are 0..32 (33 bytes),
 * 127..160 (34) and 173, hence the three cases. */
static unsigned codepoint_of(unsigned b) {
  if (b <= 32) return 256 + b;
  if (b >= 127 && b <= 160) return 256 + 33 + (b - 127);
  if (b == 173) return 256 + 67;
  return b;
}

static int byte_of(unsigned cp) {
  if (cp < 256) return printable(cp) ? (int)cp : -1;
  unsigned n = cp - 256;
  if (n < 33) return (int)n;
  if (n < 67) return (int)(127 + n - 33);
  return n == 67 ? 173 : -1;
}

size_t bpe_alphabet_spell(const char *bytes, size_t n_bytes, char *out) {
  size_t o = 0;
  for (size_t i = 0; i < n_bytes; i++) {
    unsigned cp = codepoint_of((unsigned char)bytes[i]);
    if (cp < 0x80) {
      out[o++] = (char)cp;
    } else { /* every mapped character is below U+0800: two UTF-8 bytes */
      out[o++] = (char)(0xC0 | (cp >> 6));
      out[o++] = (char)(0x80 | (cp & 0x3F));
    }
  }
  return o;
}

long bpe_alphabet_unspell(const char *text, size_t n_bytes, char *out) {
  const unsigned char *s = (const unsigned char *)text;
  long o = 0;
  for (size_t i = 0; i < n_bytes;) {
    unsigned cp;
    if (s[i] < 0x80) {
      cp = s[i++];
    } else if ((s[i] & 0xE0) == 0xC0 && i + 1 < n_bytes && (s[i + 1] & 0xC0) == 0x80) {
      cp = ((s[i] & 0x1Fu) << 6) | (s[i + 1] & 0x3Fu);
      i += 2;
    } else {
      return -1;
    }
    int b = byte_of(cp);
    if (b < 0) return -1;
    out[o++] = (char)b;
  }
  return o;
}
