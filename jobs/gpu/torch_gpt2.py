#!/usr/bin/env python3
"""torch_gpt2 — the PyTorch reference of jobs/bench-gpu: GPT-2 (124M by
default) trained in bf16 autocast with fp32 master weights, fused AdamW,
FlashAttention through scaled_dot_product_attention and torch.compile, the
way a PyTorch user would write it. Benchmark only, never part of tessera.

Reads an llm.c token shard (256 int32 header, magic 20240520, then uint16
tokens), accumulates micro-batches up to --batch-tokens per step, and prints
one line per step and a summary:  torch tokens_per_s=... ms_per_step=...
"""
import argparse
import math
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d, n_head):
        super().__init__()
        self.n_head = n_head
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 4 * d)
        self.out = nn.Linear(4 * d, d)

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        shape = (B, T, self.n_head, C // self.n_head)
        q, k, v = (t.view(shape).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, C))
        return x + self.out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))


class GPT(nn.Module):
    def __init__(self, n_layer, n_head, d, vocab, seq_len):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(seq_len, d)
        self.blocks = nn.ModuleList(Block(d, n_head) for _ in range(n_layer))
        self.lnf = nn.LayerNorm(d)
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                std = 0.02 / math.sqrt(2 * n_layer) if name.endswith(("proj.weight", "out.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx, targets):
        T = idx.shape[1]
        x = self.wte(idx) + self.wpe(torch.arange(T, device=idx.device))
        for block in self.blocks:
            x = block(x)
        logits = F.linear(self.lnf(x), self.wte.weight)  # tied head
        return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.view(-1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--micro-batch", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--batch-tokens", type=int, default=524288)
    ap.add_argument("--n-layer", type=int, default=12)
    ap.add_argument("--n-head", type=int, default=12)
    ap.add_argument("--d-model", type=int, default=768)
    ap.add_argument("--no-compile", action="store_true")
    a = ap.parse_args()

    header = np.fromfile(a.data, dtype=np.int32, count=256)
    assert header[0] == 20240520, "not an llm.c token shard"
    tokens = np.memmap(a.data, dtype=np.uint16, mode="r", offset=256 * 4)
    B, T = a.micro_batch, a.seq_len
    accum = a.batch_tokens // (B * T)
    torch.manual_seed(1234)
    torch.backends.cuda.matmul.allow_tf32 = True
    model = GPT(a.n_layer, a.n_head, a.d_model, 50257, T).cuda()
    opt = torch.optim.AdamW(model.parameters(), lr=6e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    step_model = model if a.no_compile else torch.compile(model)
    position = 0

    def batch():
        nonlocal position
        need = B * T + 1
        if position + need > len(tokens):
            position = 0
        chunk = torch.from_numpy(tokens[position:position + need].astype(np.int64))
        position += B * T
        return chunk[:-1].view(B, T).cuda(non_blocking=True), chunk[1:].view(B, T).cuda(non_blocking=True)

    times = []
    for step in range(1, a.steps + 1):
        torch.cuda.synchronize()
        start = time.time()
        opt.zero_grad(set_to_none=True)
        loss_sum = 0.0
        for _ in range(accum):
            x, y = batch()
            with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
                loss = step_model(x, y) / accum
            loss.backward()
            loss_sum += loss.detach()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        torch.cuda.synchronize()
        seconds = time.time() - start
        times.append(seconds)
        print(f"step {step} loss {float(loss_sum):.4f} {1000 * seconds:.1f} ms {accum * B * T / seconds:.0f} tok/s", flush=True)
    later = sorted(times[1:]) if len(times) > 1 else times
    median = later[len(later) // 2]
    print(f"torch tokens_per_s={accum * B * T / median:.0f} ms_per_step={1000 * median:.1f} "
          f"torch_version={torch.__version__} compiled={not a.no_compile} peak_mem_gib={torch.cuda.max_memory_allocated() / 2**30:.1f}")


if __name__ == "__main__":
    main()
