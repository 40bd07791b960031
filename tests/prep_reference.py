"""prep_reference — a dataset `tessera prep --tokenizer` wrote, against
Hugging Face `tokenizers`.

usage: prep_reference.py PREFIX GPT2_FOLDER SEPARATOR FILE...

Reads PREFIX.idx/.bin as doc/data-format.md specifies (independently of
tessera), splits FILE... into documents as prep does (a line equal to
SEPARATOR ends a document and is dropped; empty documents are skipped), and
checks that every document's ids are HF's encoding of its text (GPT-2's
encoder.json + vocab.bpe loaded into HF, tests/tokenizer_reference.py)
followed by the end-of-text id 50256; and that HF loads the sidecar
PREFIX.tokenizer.json and encodes the documents the same. Prints one line
with the counts; exit status 1 names the first difference.
"""
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tokenizer_reference import hf_from_files  # noqa: E402

EOT = 50256


def read_dataset(prefix):
    with open(prefix + ".idx", "rb") as f:
        idx = f.read()
    assert idx[:9] == b"MMIDIDX\x00\x00", "bad magic"
    version, = struct.unpack_from("<Q", idx, 9)
    code = idx[17]
    n_seq, n_doc = struct.unpack_from("<QQ", idx, 18)
    assert version == 1 and n_doc == n_seq + 1, "bad header"
    lengths = struct.unpack_from("<%di" % n_seq, idx, 34)
    width, fmt = {8: (2, "H"), 4: (4, "i")}[code]
    with open(prefix + ".bin", "rb") as f:
        data = f.read()
    assert len(data) == sum(lengths) * width, "the .bin size disagrees with the index"
    ids = struct.unpack("<%d%s" % (len(data) // width, fmt), data)
    docs, at = [], 0
    for n in lengths:
        docs.append(list(ids[at:at + n]))
        at += n
    return docs


def split_documents(paths, separator):
    sep = separator.encode()
    docs = []
    for path in paths:
        with open(path, "rb") as f:
            text = f.read()
        start, pos = 0, 0
        while pos < len(text):
            end = text.find(b"\n", pos)
            line_end, nxt = (len(text), len(text)) if end < 0 else (end, end + 1)
            if text[pos:line_end] == sep:
                if pos > start:
                    docs.append(text[start:pos])
                start = nxt
            pos = nxt
        if len(text) > start:
            docs.append(text[start:])
    return docs


def main():
    prefix, folder, separator, paths = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    from tokenizers import Tokenizer
    ours = read_dataset(prefix)
    texts = split_documents(paths, separator)
    if len(ours) != len(texts):
        sys.exit("FAIL: %d documents in the dataset, %d in the text" % (len(ours), len(texts)))
    reference = hf_from_files(folder)
    sidecar = Tokenizer.from_file(prefix + ".tokenizer.json")
    compared = skipped = tokens = 0
    for i, (ids, raw) in enumerate(zip(ours, texts)):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:  # HF takes Unicode text only; tests/tokenizer_reference.py covers bytes
            skipped += 1
            continue
        want = reference.encode(text).ids + [EOT]
        if ids != want:
            sys.exit("FAIL: document %d: tessera %s..., HF %s..." % (i, ids[:12], want[:12]))
        if sidecar.encode(text).ids + [EOT] != want:
            sys.exit("FAIL: document %d: HF with the sidecar encodes differently" % i)
        compared += 1
        tokens += len(ids)
    print("%d documents (%d tokens) equal to HF tokenizers, by GPT-2's files and by the sidecar; "
          "%d not UTF-8 skipped" % (compared, tokens, skipped))


if __name__ == "__main__":
    main()
