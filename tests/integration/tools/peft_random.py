#!/usr/bin/env python3
"""Writes a PEFT LoRA folder with random A/B (F32) for the small synthetic
bases the integration tests make with `hestia synth --n-embd 64 --n-layer 2
--n-head 4 --n-head-kv 2 --n-ff 96`: adapter_config.json and
adapter_model.safetensors, every projection of both blocks adapted.

usage: peft_random.py DIR QROWS SEED [STD]
  QROWS  rows of q_proj's B: 64 fits the base, anything else makes an
         adapter for another base model
  STD    standard deviation of the weights (default 0.1)
No packages needed."""
import json
import os
import random
import struct
import sys

d, qrows, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
std = float(sys.argv[4]) if len(sys.argv) > 4 else 0.1
random.seed(seed)
os.makedirs(d, exist_ok=True)
r, E, KV, FF = 4, 64, 32, 96
mods = [(0, "self_attn.q_proj", E, qrows), (0, "self_attn.k_proj", E, KV), (1, "self_attn.v_proj", E, KV),
        (1, "self_attn.o_proj", E, E), (0, "mlp.gate_proj", E, FF), (1, "mlp.up_proj", E, FF),
        (1, "mlp.down_proj", FF, E)]
with open(os.path.join(d, "adapter_config.json"), "w") as f:
    json.dump({"peft_type": "LORA", "r": r, "lora_alpha": 8,
               "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]}, f)
hdr, blobs, off = {}, [], 0
for layer, name, n_in, n_out in mods:
    for half, shape in (("A", [r, n_in]), ("B", [n_out, r])):
        n = shape[0] * shape[1]
        blob = struct.pack("<%df" % n, *[random.gauss(0, std) for _ in range(n)])
        hdr["base_model.model.model.layers.%d.%s.lora_%s.weight" % (layer, name, half)] = {
            "dtype": "F32", "shape": shape, "data_offsets": [off, off + len(blob)]}
        blobs.append(blob)
        off += len(blob)
h = json.dumps(hdr).encode()
h += b" " * (-len(h) % 8)
with open(os.path.join(d, "adapter_model.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
