"""convert_reference — the Python side of tests/convert_*.sh (test-only).

Makes the models and files the tests convert, with the reference libraries
(torch, transformers, safetensors) of jobs/test's venv, and computes what
tessera's results are compared with. Everything is random but seeded, and
nothing is fetched from the network (HF_HUB_OFFLINE=1).

  gpt2 DIR [--untied] [--eps-1e-6]   a random GPT2LMHeadModel (2 layers, 4 heads, C 64, V 300, T 64;
                                tied, layer_norm_epsilon 1e-5 unless the options say otherwise)
  llama DIR [--untied] [--eps-1e-6]  a random LlamaForCausalLM (2 layers, 4 heads, C 64, F 176, V 300,
                                T 64, no GQA; tied, rms_norm_eps 1e-5 unless the options say otherwise)
  gpt2-124m DIR                 GPT-2 small's shape, random (the benchmark)
  gpt2-variants DIR             in DIR: sharded/ (the gpt2 model in shards of 100 kB, with an index),
                                bf16/ (it in bfloat16) and bf16-as-f32/ (that bfloat16 model widened to float32)
  models DIR NAME...            several of the above in one process (importing torch takes seconds):
                                NAME gpt2, llama, gpt2_untied, llama_untied (also eps 1e-6), eps6
                                (gpt2, eps 1e-6), variants (gpt2-variants); each into DIR/NAME
  tokens FILE N VOCAB           an llm.c token file of N random ids (tessera's --data)
  loss DIR TOKENS T             transformers' mean cross-entropy of the first window of T+1 tokens
                                (TOKENS: an llm.c token file, or a PREFIX.bin of tessera prep, uint16)
  logits DIR TOKENS T OUT       transformers' logits [T, V] of the first T tokens, raw fp32
  llmc FILE                     a random llm.c GPT-2 model file (version 3, fp32, Vp = 384 > V = 300)
  same-tensors A B              exit 0 when two safetensors files hold the same tensors, bit for bit
  damage KIND IN OUT            a damaged copy of a safetensors file: truncated | lying-header | overlap
  edit-config DIR KEY JSON      sets KEY of DIR/config.json to the JSON value
  max-diff A B                  the largest |a - b| of two raw fp32 files of the same length
  gpt2-tokenizer SRC DIR        GPT-2's tokenizer (encoder.json + vocab.bpe in SRC) saved into DIR
  same-encoding A B             exit 0 when the tokenizers of folders A and B encode a text alike
"""
import json
import os
import struct
import sys

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def tiny_gpt2(out, layers=2, heads=4, channels=64, vocab=300, positions=64, untied=False, eps=1e-5):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(1)
    config = GPT2Config(n_layer=layers, n_head=heads, n_embd=channels, vocab_size=vocab, n_positions=positions,
                        bos_token_id=0, eos_token_id=0, tie_word_embeddings=not untied, layer_norm_epsilon=eps)
    model = GPT2LMHeadModel(config)
    # biases and norm gains away from their initial 0 and 1, so a mix-up shows
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "ln_" in name:
                p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(out)


def gpt2_variants(out):
    import torch
    from transformers import GPT2LMHeadModel
    tiny_gpt2(out + "/plain")
    model = GPT2LMHeadModel.from_pretrained(out + "/plain")
    model.save_pretrained(out + "/sharded", max_shard_size="100KB")
    model = model.to(torch.bfloat16)
    model.save_pretrained(out + "/bf16")
    model.to(torch.float32).save_pretrained(out + "/bf16-as-f32")


def tiny_llama(out, untied=False, eps=1e-5):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(2)
    config = LlamaConfig(hidden_size=64, intermediate_size=176, num_hidden_layers=2, num_attention_heads=4,
                         num_key_value_heads=4, vocab_size=300, max_position_embeddings=64, rms_norm_eps=eps,
                         tie_word_embeddings=not untied, bos_token_id=0, eos_token_id=0)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(out)


def write_tokens(path, n, vocab):
    rng = np.random.default_rng(3)
    ids = rng.integers(0, vocab, size=n, dtype=np.uint16)
    header = np.zeros(256, dtype=np.int32)
    header[0], header[1], header[2] = 20240520, 1, n
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(ids.tobytes())


def read_tokens(path):
    """An llm.c token file, or the PREFIX.bin of a Megatron dataset of uint16 tokens (tessera prep)."""
    with open(path, "rb") as f:
        data = f.read()
    header = np.frombuffer(data[:1024], dtype=np.int32) if len(data) >= 1024 else None
    if header is not None and header[0] == 20240520:
        return np.frombuffer(data[1024:], dtype=np.uint16)[: header[2]].astype(np.int64)
    return np.frombuffer(data, dtype=np.uint16).astype(np.int64)


def logits_of(model_dir, tokens, T):
    import torch
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    ids = torch.tensor(read_tokens(tokens)[: T + 1]).unsqueeze(0)
    with torch.no_grad():
        return ids, model(ids[:, :T]).logits[0]


def loss(model_dir, tokens, T):
    import torch
    ids, logits = logits_of(model_dir, tokens, T)
    print("%.9g" % torch.nn.functional.cross_entropy(logits.double(), ids[0, 1:T + 1]).item())


def write_llmc(path):
    rng = np.random.default_rng(4)
    T, V, L, NH, C = 64, 300, 2, 4, 64
    Vp = (V + 127) // 128 * 128
    header = np.zeros(256, dtype=np.int32)
    header[:8] = [20240326, 3, T, V, L, NH, C, Vp]
    shapes = [(Vp, C), (T, C), (L, C), (L, C), (L, 3 * C, C), (L, 3 * C), (L, C, C), (L, C), (L, C), (L, C),
              (L, 4 * C, C), (L, 4 * C), (L, C, 4 * C), (L, C), (C,), (C,)]
    with open(path, "wb") as f:
        f.write(header.tobytes())
        for i, shape in enumerate(shapes):
            t = (0.02 * rng.standard_normal(shape)).astype(np.float32)
            if i == 0:
                t[V:] = 0  # llm.c's padding rows
            f.write(t.tobytes())


def same_tensors(a, b):
    from safetensors.numpy import load_file
    x, y = load_file(a), load_file(b)
    if sorted(x) != sorted(y):
        print("different names: %s" % sorted(set(x) ^ set(y)))
        return 1
    bad = [k for k in x if x[k].dtype != y[k].dtype or x[k].shape != y[k].shape or x[k].tobytes() != y[k].tobytes()]
    print("%d tensors, %d differ%s" % (len(x), len(bad), (": " + ", ".join(bad[:5])) if bad else ""))
    return 1 if bad else 0


def damage(kind, src, dst):
    data = open(src, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    if kind == "truncated":
        out = data[: len(data) - 1000]
    elif kind in ("lying-header", "overlap"):
        names = [k for k in header if k != "__metadata__"]
        t = header[names[0]]
        if kind == "lying-header":  # the shape says more elements than the bytes hold
            t["shape"] = [t["shape"][0] + 1] + t["shape"][1:]
        else:  # the second tensor's range moved onto the first's
            u = header[names[1]]
            size = u["data_offsets"][1] - u["data_offsets"][0]
            u["data_offsets"] = [t["data_offsets"][0], t["data_offsets"][0] + size]
        text = json.dumps(header).encode()
        text += b" " * (-len(text) % 8)
        out = struct.pack("<Q", len(text)) + text + data[8 + n:]
    else:
        raise SystemExit("unknown damage " + kind)
    open(dst, "wb").write(out)


def main(argv):
    command = argv[1]
    if command == "gpt2":
        tiny_gpt2(argv[2], untied="--untied" in argv, eps=1e-6 if "--eps-1e-6" in argv else 1e-5)
    elif command == "gpt2-124m":
        tiny_gpt2(argv[2], layers=12, heads=12, channels=768, vocab=50257, positions=1024)
    elif command == "models":
        makers = {"gpt2": lambda d: tiny_gpt2(d), "llama": lambda d: tiny_llama(d),
                  "gpt2_untied": lambda d: tiny_gpt2(d, untied=True),
                  "llama_untied": lambda d: tiny_llama(d, untied=True, eps=1e-6),
                  "eps6": lambda d: tiny_gpt2(d, eps=1e-6), "variants": gpt2_variants}
        for name in argv[3:]:
            makers[name](argv[2] + "/" + name)
    elif command == "gpt2-variants":
        gpt2_variants(argv[2])
    elif command == "llama":
        tiny_llama(argv[2], untied="--untied" in argv, eps=1e-6 if "--eps-1e-6" in argv else 1e-5)
    elif command == "tokens":
        write_tokens(argv[2], int(argv[3]), int(argv[4]))
    elif command == "loss":
        loss(argv[2], argv[3], int(argv[4]))
    elif command == "logits":
        _, logits = logits_of(argv[2], argv[3], int(argv[4]))
        logits.numpy().astype(np.float32).tofile(argv[5])
    elif command == "llmc":
        write_llmc(argv[2])
    elif command == "same-tensors":
        return same_tensors(argv[2], argv[3])
    elif command == "edit-config":
        config = json.load(open(argv[2] + "/config.json"))
        config[argv[3]] = json.loads(argv[4])
        json.dump(config, open(argv[2] + "/config.json", "w"))
    elif command == "max-diff":
        a, b = np.fromfile(argv[2], dtype=np.float32), np.fromfile(argv[3], dtype=np.float32)
        if a.shape != b.shape:
            raise SystemExit("different lengths: %d and %d" % (a.size, b.size))
        print("%.3g" % float(np.max(np.abs(a.astype(np.float64) - b))))
    elif command == "gpt2-tokenizer":
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers
        from transformers import PreTrainedTokenizerFast
        tok = Tokenizer(models.BPE.from_file(argv[2] + "/encoder.json", argv[2] + "/vocab.bpe"))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>").save_pretrained(argv[3])
    elif command == "same-encoding":
        from transformers import AutoTokenizer
        text = "Hello world, tessera's converters carry the tokenizer: 123 ünïcode!"
        ids = [AutoTokenizer.from_pretrained(d)(text)["input_ids"] for d in argv[2:4]]
        print(ids[0][:8])
        return 0 if ids[0] == ids[1] else 1
    elif command == "damage":
        damage(argv[2], argv[3], argv[4])
    else:
        raise SystemExit(__doc__)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
