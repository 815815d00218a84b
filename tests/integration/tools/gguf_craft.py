#!/usr/bin/env python3
"""Writes GGUF v3 files, well-formed or deliberately broken, for hestia's
robustness tests (tests/integration/bad_input.sh).

Written from the GGUF format description (ggml docs/gguf.md): little-endian,
  "GGUF", u32 version, u64 n_tensors, u64 n_kv,
  n_kv x { str key, u32 value_type, value },
  n_tensors x { str name, u32 n_dims, u64 ne[n_dims], u32 ggml_type, u64 offset },
  zero padding to general.alignment (default 32), then the tensor data; each
  tensor's offset is relative to the data section and a multiple of the
  alignment. A str is a u64 byte count and the bytes; an array is a u32
  element type, a u64 count and the elements.

Commands:
  build DESC.json OUT     write the file a JSON description gives (see build())
  edit SRC OUT [EDIT...]  read SRC, apply edits in order, write OUT:
      --set KEY TYPE VALUE    add or replace a key (TYPE: u8 i8 u16 i16 u32 i32
                              f32 bool str u64 i64 f64)
      --del-key KEY           remove a key
      --set-arr KEY T JSON    add or replace an array key: element type T,
                              elements a JSON list (["a b", "c d"], [1, 2])
      --arr-truncate KEY N    keep the first N elements of an array
      --arr-set KEY I VALUE   set element I of an array (VALUE read as the
                              array's element type; str elements take the
                              argument's bytes as given)
      --drop-tensor NAME      remove a tensor
      --tensor-type NAME T    change a tensor's ggml type (number); its data is
                              resized for the new type (filled with a pattern)
      --tensor-shape NAME D,D resize a tensor's shape; data resized likewise
      --tensor-offset NAME N  write N as the tensor's offset (no data moved)
      --version N             header version field
      --n-tensors N, --n-kv N header counts as written (the bodies stay)
      --dup-key KEY           write KEY's entry twice
      --dup-tensor NAME       write NAME's tensor info twice (same offset)
  layout FILE             print "NAME OFFSET" lines: header_end, kv_end,
                          info_end, data_start, file_end, and one
                          "kv:KEY OFFSET" / "tensor:NAME OFFSET" per entry
  flip FILE START END N SEED   flip N random bits of FILE in [START, END),
                          in place, reproducibly from SEED
"""

import json
import random
import struct
import sys

# value types
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
SCALAR_FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i",
              F32: "<f", BOOL: "<?", U64: "<Q", I64: "<q", F64: "<d"}
TYPE_NAMES = {"u8": U8, "i8": I8, "u16": U16, "i16": I16, "u32": U32, "i32": I32,
              "f32": F32, "bool": BOOL, "str": STR, "arr": ARR, "u64": U64,
              "i64": I64, "f64": F64}

# ggml tensor types: number -> (elements per block, bytes per block), from
# the block layouts of the format description.
GGML_TYPES = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24),
    8: (32, 34), 9: (32, 36), 10: (256, 84), 11: (256, 110), 12: (256, 144),
    13: (256, 176), 14: (256, 210), 15: (256, 292), 16: (256, 66),
    17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18), 21: (256, 110),
    22: (256, 82), 23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4),
    27: (1, 8), 28: (1, 8), 29: (256, 56), 30: (1, 2), 34: (256, 54),
    35: (256, 66), 39: (32, 17),
}


def tensor_bytes(ggml_type, shape):
    blck, size = GGML_TYPES[ggml_type]
    n = 1
    for d in shape:
        n *= d
    if shape[0] % blck:
        raise ValueError(f"first dimension {shape[0]} is not a multiple of {blck}")
    return n // blck * size


def pattern(n, seed):
    """n deterministic bytes (a tensor's stand-in data)."""
    rng = random.Random(seed)
    return bytes(rng.getrandbits(8) for _ in range(min(n, 4096))) * (n // 4096 + 1)


# ---- reading ----

class Reader:
    def __init__(self, data):
        self.d = data
        self.o = 0

    def take(self, fmt):
        v = struct.unpack_from(fmt, self.d, self.o)[0]
        self.o += struct.calcsize(fmt)
        return v

    def string(self):
        n = self.take("<Q")
        s = self.d[self.o:self.o + n]
        if len(s) != n:
            raise ValueError("string runs past the end of the file")
        self.o += n
        return s.decode("utf-8", "surrogateescape")

    def value(self, vt):
        if vt == STR:
            return self.string()
        if vt == ARR:
            et = self.take("<I")
            n = self.take("<Q")
            return (et, [self.value(et) for _ in range(n)])
        return self.take(SCALAR_FMT[vt])


def read_gguf(path):
    """Returns (model, layout): model = {"version", "kv": [[key, type, value]],
    "tensors": [{"name", "type", "shape", "data"}]}; layout: offsets."""
    data = open(path, "rb").read()
    r = Reader(data)
    if data[:4] != b"GGUF":
        raise ValueError(f"{path}: not a GGUF file")
    r.o = 4
    version = r.take("<I")
    n_tensors = r.take("<Q")
    n_kv = r.take("<Q")
    layout = [("header_end", r.o)]
    kvs = []
    for _ in range(n_kv):
        start = r.o
        key = r.string()
        vt = r.take("<I")
        kvs.append([key, vt, r.value(vt)])
        layout.append(("kv:" + key, start))
    layout.append(("kv_end", r.o))
    infos = []
    for _ in range(n_tensors):
        start = r.o
        name = r.string()
        nd = r.take("<I")
        shape = [r.take("<Q") for _ in range(nd)]
        tt = r.take("<I")
        off = r.take("<Q")
        infos.append((name, shape, tt, off))
        layout.append(("tensor:" + name, start))
    layout.append(("info_end", r.o))
    align = 32
    for k, vt, v in kvs:
        if k == "general.alignment":
            align = v
    data_start = (r.o + align - 1) // align * align
    layout.append(("data_start", data_start))
    layout.append(("file_end", len(data)))
    tensors = []
    for name, shape, tt, off in infos:
        n = tensor_bytes(tt, shape)
        tensors.append({"name": name, "type": tt, "shape": shape,
                        "data": data[data_start + off:data_start + off + n]})
    return {"version": version, "kv": kvs, "tensors": tensors}, layout


# ---- writing ----

def enc_str(s):
    b = s.encode("utf-8", "surrogateescape") if isinstance(s, str) else bytes(s)
    return struct.pack("<Q", len(b)) + b


def enc_value(vt, v):
    if vt == STR:
        return enc_str(v)
    if vt == ARR:
        et, items = v
        return struct.pack("<IQ", et, len(items)) + b"".join(enc_value(et, x) for x in items)
    return struct.pack(SCALAR_FMT[vt], v)


def write_gguf(path, m):
    """m: {"version" (3), "kv": [[key, type, value]], "tensors": [{"name",
    "type", "shape", "data" (bytes), optional "offset" (written as is)}],
    optional "n_tensors"/"n_kv" (header counts as written), "dup_kv" and
    "dup_tensors" (names whose entries are written twice)}. An alignment key
    that is not a positive integer is written as given, the layout then
    uses 32."""
    align = 32
    for k, vt, v in m["kv"]:
        if k == "general.alignment" and isinstance(v, int) and v > 0:
            align = v
    out = bytearray(b"GGUF")
    out += struct.pack("<I", m.get("version", 3))
    out += struct.pack("<Q", m.get("n_tensors", len(m["tensors"]) + len(m.get("dup_tensors", []))))
    out += struct.pack("<Q", m.get("n_kv", len(m["kv"]) + len(m.get("dup_kv", []))))
    for k, vt, v in m["kv"]:
        entry = enc_str(k) + struct.pack("<I", vt) + enc_value(vt, v)
        out += entry
        if k in m.get("dup_kv", []):
            out += entry
    body = bytearray()
    for t in m["tensors"]:
        off = len(body)
        body += t["data"]
        body += b"\0" * (-len(body) % align)
        entry = (enc_str(t["name"]) + struct.pack("<I", len(t["shape"])) +
                 b"".join(struct.pack("<q" if d < 0 else "<Q", d) for d in t["shape"]) +
                 struct.pack("<IQ", t["type"], t.get("offset", off)))
        out += entry
        if t["name"] in m.get("dup_tensors", []):
            out += entry
    out += b"\0" * (-len(out) % align)
    out += body
    with open(path, "wb") as f:
        f.write(out)


def parse_value(vt, text):
    if vt == STR:
        return text
    if vt == BOOL:
        return text in ("1", "true")
    if vt in (F32, F64):
        return float(text)
    return int(text, 0)


def build(desc_path, out):
    """DESC.json: {"version": 3, "kv": [[key, "u32", 7], [key, "str", "x"],
    [key, "arr", ["str", ["a", "b"]]]], "tensors": [{"name": "w", "type": 0,
    "shape": [4, 2], "data": "zeros" | "pattern" | "<hex>", "offset": N?}]}"""
    d = json.load(open(desc_path))
    kvs = []
    for k, tname, v in d.get("kv", []):
        vt = TYPE_NAMES[tname]
        if vt == ARR:
            et = TYPE_NAMES[v[0]]
            v = (et, v[1])
        kvs.append([k, vt, v])
    tensors = []
    for i, t in enumerate(d.get("tensors", [])):
        n = tensor_bytes(t["type"], t["shape"]) if t["type"] in GGML_TYPES else 0
        src = t.get("data", "pattern")
        data = (bytes(n) if src == "zeros" else pattern(n, i)[:n] if src == "pattern"
                else bytes.fromhex(src))
        tt = {"name": t["name"], "type": t["type"], "shape": t["shape"], "data": data}
        if "offset" in t:
            tt["offset"] = t["offset"]
        tensors.append(tt)
    m = {"version": d.get("version", 3), "kv": kvs, "tensors": tensors}
    for k in ("n_tensors", "n_kv"):
        if k in d:
            m[k] = d[k]
    write_gguf(out, m)


def find_kv(m, key):
    for kv in m["kv"]:
        if kv[0] == key:
            if kv[1] != ARR:
                raise SystemExit(f"gguf_craft: key '{key}' is not an array")
            return kv
    raise SystemExit(f"gguf_craft: no key '{key}'")


def find_tensor(m, name):
    for t in m["tensors"]:
        if t["name"] == name:
            return t
    raise SystemExit(f"gguf_craft: no tensor '{name}'")


def edit(src, out, args):
    m, _ = read_gguf(src)
    i = 0

    def arg():
        nonlocal i
        if i >= len(args):
            raise SystemExit("gguf_craft: an edit is missing its value")
        i += 1
        return args[i - 1]

    while i < len(args):
        op = arg()
        if op == "--set":
            key, tname, text = arg(), arg(), arg()
            vt = TYPE_NAMES[tname]
            val = parse_value(vt, text)
            for kv in m["kv"]:
                if kv[0] == key:
                    kv[1], kv[2] = vt, val
                    break
            else:
                m["kv"].append([key, vt, val])
        elif op == "--set-arr":
            key, et, items = arg(), TYPE_NAMES[arg()], json.loads(arg())
            m["kv"] = [kv for kv in m["kv"] if kv[0] != key]
            m["kv"].append([key, ARR, (et, items)])
        elif op == "--arr-truncate":
            kv = find_kv(m, arg())
            kv[2] = (kv[2][0], kv[2][1][:int(arg(), 0)])
        elif op == "--arr-set":
            kv = find_kv(m, arg())
            idx = int(arg(), 0)
            kv[2][1][idx] = parse_value(kv[2][0], arg())
        elif op == "--del-key":
            key = arg()
            m["kv"] = [kv for kv in m["kv"] if kv[0] != key]
        elif op == "--drop-tensor":
            find_tensor(m, name := arg())
            m["tensors"] = [t for t in m["tensors"] if t["name"] != name]
        elif op == "--tensor-type":
            t = find_tensor(m, arg())
            t["type"] = int(arg(), 0)
            t["data"] = pattern(tensor_bytes(t["type"], t["shape"]), 7)[:tensor_bytes(t["type"], t["shape"])]
        elif op == "--tensor-shape":
            t = find_tensor(m, arg())
            t["shape"] = [int(x) for x in arg().split(",")]
            n = tensor_bytes(t["type"], t["shape"])
            t["data"] = pattern(n, 9)[:n]
        elif op == "--tensor-offset":
            t = find_tensor(m, arg())
            t["offset"] = int(arg(), 0)
        elif op == "--version":
            m["version"] = int(arg(), 0)
        elif op == "--n-tensors":
            m["n_tensors"] = int(arg(), 0)
        elif op == "--n-kv":
            m["n_kv"] = int(arg(), 0)
        elif op == "--dup-key":
            m.setdefault("dup_kv", []).append(arg())
        elif op == "--dup-tensor":
            m.setdefault("dup_tensors", []).append(arg())
        else:
            raise SystemExit(f"gguf_craft: unknown edit '{op}'")
    write_gguf(out, m)


def flip(path, start, end, n, seed):
    data = bytearray(open(path, "rb").read())
    end = min(end, len(data))
    rng = random.Random(seed)
    for _ in range(n):
        pos = rng.randrange(start, end)
        data[pos] ^= 1 << rng.randrange(8)
    open(path, "wb").write(data)


def main(argv):
    if len(argv) >= 3 and argv[0] == "build":
        build(argv[1], argv[2])
    elif len(argv) >= 3 and argv[0] == "edit":
        edit(argv[1], argv[2], argv[3:])
    elif len(argv) == 2 and argv[0] == "layout":
        for name, off in read_gguf(argv[1])[1]:
            print(name, off)
    elif len(argv) == 6 and argv[0] == "flip":
        flip(argv[1], int(argv[2]), int(argv[3]), int(argv[4]), int(argv[5]))
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
