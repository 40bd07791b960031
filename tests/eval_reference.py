"""eval_reference — `tessera eval --task --verbose` checked independently of
tessera.

usage: eval_reference.py TASK.jsonl GPT2_FOLDER VERBOSE_OUTPUT

For every example of TASK.jsonl (HellaSwag's format) and every ending, the
token count eval printed must be the length of tiktoken's GPT-2 encoding of
" " + ending (llm.c's convention, dev/data/hellaswag.py: the ending's tokens
follow the context's, each ending with its leading space). Then acc and
acc_norm are recomputed from the printed per-ending loss sums as llm.c does
(argmin of the sum, argmin of the mean; the first on ties) and must equal
the counts eval reported. Prints one line; exit status 1 names the first
difference.
"""
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tokenizer_reference import tiktoken_from_files  # noqa: E402


def main():
    task_path, folder, verbose_path = sys.argv[1:4]
    enc = tiktoken_from_files(folder)
    with open(task_path, encoding="utf-8") as f:
        examples = [json.loads(line) for line in f if line.strip()]
    with open(verbose_path, encoding="utf-8") as f:
        text = f.read()
    lines = [line for line in text.splitlines() if line.startswith("example line ")]
    if len(lines) != len(examples):
        sys.exit(f"{len(lines)} example lines printed for {len(examples)} examples")
    right = right_norm = 0
    for number, (example, line) in enumerate(zip(examples, lines), 1):
        endings = re.findall(r"\[sum (\S+) tokens (\d+) mean (\S+)\]", line)
        if len(endings) != len(example["endings"]):
            sys.exit(f"example {number}: {len(endings)} endings printed, {len(example['endings'])} in the file")
        sums = [float(s) for s, _, _ in endings]
        counts = [int(n) for _, n, _ in endings]
        for j, ending in enumerate(example["endings"]):
            want = len(enc.encode_ordinary(" " + ending))
            if counts[j] != want:
                sys.exit(f"example {number} ending {j}: eval scored {counts[j]} tokens, tiktoken makes {want}")
        means = [s / n for s, n in zip(sums, counts)]
        right += min(range(len(sums)), key=lambda j: sums[j]) == example["label"]
        right_norm += min(range(len(means)), key=lambda j: means[j]) == example["label"]
    reported = re.search(r"acc \S+ \((\d+) right\), acc_norm \S+ \((\d+) right\)", text)
    if not reported or (int(reported.group(1)), int(reported.group(2))) != (right, right_norm):
        sys.exit(f"recomputed {right} and {right_norm} right, eval reports: {reported and reported.group(0)}")
    n_endings = sum(len(e["endings"]) for e in examples)
    print(f"{len(examples)} examples, {n_endings} endings: token counts equal tiktoken's, "
          f"acc {right}/{len(examples)} and acc_norm {right_norm}/{len(examples)} recomputed")


if __name__ == "__main__":
    main()
