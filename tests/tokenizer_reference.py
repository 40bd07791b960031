"""tokenizer_reference — tessera's byte-level BPE against the references.

Loads GPT-2's encoder.json + vocab.bpe into Hugging Face `tokenizers` (BPE
model, ByteLevel pre-tokenizer without prefix space) and into tiktoken
(mergeable ranks from encoder.json, GPT-2's pattern), and checks, text by
text, that tessera (through tests/tokenize_dump) gives the same ids:
  - on the corpus files given on the command line (the English fortunes),
  - on adversarial text written here (mixed scripts, combining marks, emoji
    with ZWJ, runs of spaces/tabs/newlines, Unicode spaces, contractions in
    both cases, digit runs, punctuation runs) and seeded random mixes of it,
  - with the tokenizer.json tessera writes: HF loads it and encodes the same,
    tessera reads it back and encodes the same; and tessera reads the
    tokenizer.json HF writes (merges as pairs) and encodes the same;
  - on invalid UTF-8, which neither reference accepts (they take Unicode
    strings): tessera must round-trip the bytes (tokenize_dump checks
    decode(encode(x)) == x for every text) and encode the valid stretches
    between invalid bytes as the references encode them separately.
Also that tessera refuses a Unigram model and a Split pre-tokenizer with
one message naming them. Imported by jobs/bench-tokenizer for the builders.
"""
import json
import os
import random
import struct
import subprocess
import sys

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def bytes_to_unicode():
    """GPT-2's byte -> character table (bpe_alphabet.h describes it)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, extra = {}, 0
    for b in range(256):
        if b in printable:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def hf_from_files(folder):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    bpe = models.BPE.from_file(os.path.join(folder, "encoder.json"), os.path.join(folder, "vocab.bpe"))
    tok = Tokenizer(bpe)
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return tok


def tiktoken_from_files(folder):
    import tiktoken
    byte_of = {c: b for b, c in bytes_to_unicode().items()}
    with open(os.path.join(folder, "encoder.json"), encoding="utf-8") as f:
        encoder = json.load(f)
    ranks = {bytes(byte_of[c] for c in token): i for token, i in encoder.items() if token != "<|endoftext|>"}
    return tiktoken.Encoding(name="gpt2-from-files", pat_str=GPT2_PATTERN, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": 50256})


def adversarial_texts():
    fixed = {
        "scripts": "中文字符测试，日本語のテキスト。한국어 텍스트 مرحبا بالعالم नमस्ते दुनिया Привет мир Γειά σου κόσμε",
        "combining": "e\u0301 a\u0300\u0301 n\u0303o Zalgo: Z\u0351\u0352a\u0353l\u0354g\u0355o \u0915\u093f \u0627\u064e",
        "emoji": "👍 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️‍🔥 🇩🇪🇫🇷 a👍b 😀😀😀 ☃",
        "spaces": "a  b   c    d\t\te\t \tf \t g\n\nh\n \n i  \n\n\n  j" + " " * 300 + "k" + "\t" * 200 + "\n" * 150 + "end   ",
        "only_spaces": "     ",
        "trailing": "trailing spaces   \ntrailing tab\t\n",
        "unicode_spaces": "a\u00a0b\u00a0\u00a0c \u00a0d\u2003e\u3000f\u2028g\u2029h\u0085i\u202fj\u205fk\u1680l\u200bm\u180en\ufeffo\u2000\u200ap",
        "ascii_controls": "a\x0bb\x0cc\rd\r\ne\x1cf\x1dg\x1e\x1fh\x00i\x7fj\x01k",
        "contractions": "it's he'll I'd we're they've I'm don't IT'S HE'LL I'D WE'RE 'S 's 'll 'LL ''s '''ll 'x 're's ' s 'sss",
        "digits": "0 1 12 123 1234 12345 123456 3.14159 1,000,000 ١٢٣٤ ௧௨௩ Ⅻ ½ ² 2nd 10th 0x1F 1e-9",
        "punctuation": "!!! ??? ... --- *** ((( ))) $$$ ### @@@ ~~~ <<<>>> ,;:.!? \"quoted\" 'single' «guillemets» —dash— …",
        "letters_kinds": "ǅungla ʰello 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ﬁne Ⓐ ℕ ⅈ",
        "code": "def f(x):\n    return x**2  # square\n\nint main(void) { return 0; }\n",
        "special_literal": "text <|endoftext|> more<|endoftext|>",
    }
    texts = list(fixed.items())
    atoms = ["a", "Z", "word", " the", "é", "e\u0301", "中", "日本", "한", "م", "न", "ि", "\u0301", "7", "42", "١",
             "Ⅻ", "½", " ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\u2003", "\u0085", "\x1c", "'", "'s", "'S",
             "'ll", "'LL", "'re", "!", "?!", "...", "-", "👍", "👍🏽", "👨‍👩‍👧", "\u200d", "\ufe0f", "\u200b", "$", "€"]
    rng = random.Random(1234)
    for i in range(300):
        texts.append((f"random{i}", "".join(rng.choice(atoms) for _ in range(rng.randint(1, 120)))))
    return texts


def invalid_utf8_texts():
    """Byte strings that are not UTF-8, and the valid stretches between their
    invalid bytes (tessera's rule: an invalid byte is a one-byte character of
    the class [^\\s\\p{L}\\p{N}])."""
    return {
        "stray_continuation": b"abc\x80def \x80\x80 ghi",
        "truncated": b"caf\xc3 \xe4\xb8 end\xf0\x9f\x98",
        "overlong": b"\xc0\xaf \xe0\x80\xaf x",
        "surrogate": b"\xed\xa0\x80 y \xed\xbf\xbf",
        "too_large": b"\xf4\x90\x80\x80 \xf5\xff\xfe z",
        "latin1": "Grüße aus Köln, señor".encode("latin-1"),
        "random_bytes": bytes(random.Random(7).randrange(256) for _ in range(4000)),
    }


def read_ids(path, n_texts):
    out = []
    with open(path, "rb") as f:
        data = f.read()
    at = 0
    for _ in range(n_texts):
        (count,) = struct.unpack_from("<I", data, at)
        at += 4
        out.append(list(struct.unpack_from(f"<{count}i", data, at)))
        at += 4 * count
    return out


def tessera_encode(dump, tokenizer, paths, out):
    subprocess.run([dump, "encode", tokenizer, out] + paths, check=True)
    return read_ids(out, len(paths))


def first_difference(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


class Checker:
    def __init__(self):
        self.checks = self.failures = 0

    def same(self, what, got, want, decode=None):
        self.checks += 1
        if got == want:
            return True
        self.failures += 1
        i = first_difference(got, want)
        context = ""
        if decode:
            context = f" tessera {[decode([t]) for t in got[max(0, i - 3):i + 4]]} vs {[decode([t]) for t in want[max(0, i - 3):i + 4]]}"
        print(f"FAIL: {what}: ids differ at {i} (of {len(got)} vs {len(want)}):{context}")
        return False

    def true(self, what, cond):
        self.checks += 1
        if not cond:
            self.failures += 1
            print(f"FAIL: {what}")


def decode_utf8_lenient(data):
    """(substitute string, byte span of each of its characters): each invalid
    byte becomes U+E000 (private use: class [^\\s\\p{L}\\p{N}], as tessera's
    rule treats the byte)."""
    chars, spans, i = [], [], 0
    while i < len(data):
        for n in (1, 2, 3, 4):
            try:
                c = data[i:i + n].decode("utf-8")
                if len(c) == 1:
                    break
            except UnicodeDecodeError:
                c = None
        else:
            c = None
        if c is None:
            chars.append("\ue000")
            spans.append((i, i + 1))
            i += 1
        else:
            chars.append(c)
            spans.append((i, i + n))
            i += n
    return "".join(chars), spans


def expected_for_invalid(data, hf, tt):
    """The ids tessera's rule gives: HF's pre-tokenizer cuts the substitute
    string, each piece's original bytes go through tiktoken's BPE."""
    text, spans = decode_utf8_lenient(data)
    ids = []
    for _, (start, end) in hf.pre_tokenizer.pre_tokenize_str(text):
        piece = data[spans[start][0]:spans[end - 1][1]]
        ids.extend(tt._encode_single_piece(piece))
    return ids


def write_texts(work):
    paths, texts = [], []
    for name, text in adversarial_texts():
        path = os.path.join(work, f"adv-{name}.txt")
        with open(path, "wb") as f:
            f.write(text.encode("utf-8"))
        paths.append(path)
        texts.append(text)
    return paths, texts


def main():
    dump, gpt2, work = sys.argv[1], sys.argv[2], sys.argv[3]
    corpus = sys.argv[4:]
    from tokenizers import Tokenizer
    hf, tt = hf_from_files(gpt2), tiktoken_from_files(gpt2)
    decode = hf.decode
    check = Checker()

    # 1. corpus and adversarial text, GPT-2's files: tessera == HF == tiktoken
    paths, texts = write_texts(work)
    n_corpus = 0
    for path in corpus:
        with open(path, "rb") as f:
            try:
                texts.append(f.read().decode("utf-8"))
            except UnicodeDecodeError:
                print(f"note: {path} is not UTF-8; its bytes are checked by the round trip only")
                texts.append(None)
        paths.append(path)
        n_corpus += 1
    ids = tessera_encode(dump, gpt2, paths, os.path.join(work, "gpt2.ids"))
    n_bytes = sum(os.path.getsize(p) for p in paths)
    for path, text, got in zip(paths, texts, ids):
        if text is None:
            continue
        name = os.path.basename(path)
        check.same(f"{name}: tessera vs HF tokenizers", got, hf.encode(text).ids, decode)
        check.same(f"{name}: tessera vs tiktoken", got, tt.encode_ordinary(text), decode)
    print(f"compared {len(paths)} texts ({n_corpus} corpus files, {n_bytes} bytes, "
          f"{sum(map(len, ids))} tokens) with HF tokenizers and tiktoken")

    # 2. the tokenizer.json tessera writes: HF reads it and agrees, so does tessera
    ours = os.path.join(work, "tessera-tokenizer.json")
    subprocess.run([dump, "json", gpt2, ours], check=True)
    hf_ours = Tokenizer.from_file(ours)
    again = tessera_encode(dump, ours, paths, os.path.join(work, "ours.ids"))
    for path, text, want, got in zip(paths, texts, ids, again):
        name = os.path.basename(path)
        check.same(f"{name}: tessera reading its own tokenizer.json", got, want, decode)
        if text is not None and "<|endoftext|>" not in text:  # HF splits added tokens out
            check.same(f"{name}: HF reading tessera's tokenizer.json", hf_ours.encode(text).ids, want, decode)
    check.true("tessera's tokenizer.json holds <|endoftext|> = 50256 as a special added token",
               hf_ours.token_to_id("<|endoftext|>") == 50256 and hf_ours.encode("<|endoftext|>").ids == [50256])

    # 3. the tokenizer.json HF writes (merges as [left, right] pairs)
    os.makedirs(os.path.join(work, "hf"), exist_ok=True)
    hf.save(os.path.join(work, "hf", "tokenizer.json"))
    theirs = tessera_encode(dump, os.path.join(work, "hf"), paths, os.path.join(work, "theirs.ids"))
    check.same("tessera reading HF's tokenizer.json, all texts", sum(theirs, []), sum(ids, []))

    # 4. invalid UTF-8: round trip (tokenize_dump) and the documented rule
    bad = invalid_utf8_texts()
    bad_paths = []
    for name, data in bad.items():
        bad_paths.append(os.path.join(work, f"bad-{name}.bin"))
        with open(bad_paths[-1], "wb") as f:
            f.write(data)
    got = tessera_encode(dump, gpt2, bad_paths, os.path.join(work, "bad.ids"))
    for (name, data), g in zip(bad.items(), got):
        check.same(f"invalid UTF-8 '{name}': invalid bytes as one-byte other characters", g,
                   expected_for_invalid(data, hf, tt))
    print(f"round trip and the invalid-byte rule on {len(bad)} byte strings that are not UTF-8")

    # 5. tokenizers tessera refuses, each with one message naming why
    refuse_unigram_and_split(dump, gpt2, work, hf, check)
    print(f"tokenizer_reference: {check.checks} checks, {check.failures} failed")
    return 1 if check.failures else 0


def refuse_unigram_and_split(dump, gpt2, work, hf, check):
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers
    unigram = Tokenizer(models.Unigram([("<unk>", 0.0), ("a", -1.0), ("b", -2.0)], 0, False))
    llama3 = hf_from_files(gpt2)
    llama3.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"), "isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    prefix = hf_from_files(gpt2)
    prefix.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    for name, tok, words in (("unigram", unigram, "Unigram"), ("split", llama3, "Split (pattern '(?i:'s"),
                             ("prefix", prefix, "add_prefix_space")):
        path = os.path.join(work, f"{name}.json")
        tok.save(path)
        r = subprocess.run([dump, "json", path, os.path.join(work, "unused.json")], capture_output=True, text=True)
        message = r.stderr.strip()
        check.true(f"a {name} tokenizer is refused with one line naming '{words}' (got: {message!r})",
                   r.returncode != 0 and words in message and message.count("\n") == 0 and path in message)


if __name__ == "__main__":
    sys.exit(main())
