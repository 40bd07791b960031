"""hf_generate.py FOLDER PROMPT — loads a model tessera exported (config.json,
model.safetensors, tokenizer.json) with transformers, offline, and prints a
greedy continuation: the proof that the folder is a Hugging Face model."""
import sys

from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

folder, prompt = sys.argv[1], sys.argv[2]
model = AutoModelForCausalLM.from_pretrained(folder)
tokenizer = PreTrainedTokenizerFast(tokenizer_file=f"{folder}/tokenizer.json")
ids = tokenizer(prompt, return_tensors="pt").input_ids
out = model.generate(ids, max_new_tokens=30, do_sample=False, pad_token_id=tokenizer.eos_token_id or 0)
print(f"transformers {type(model).__name__}: {tokenizer.decode(out[0])!r}")
