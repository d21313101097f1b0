#!/usr/bin/env python3
"""Writes the seed corpora (tests/fuzz/seeds/<target>/) from sdk/test-vectors/vectors.json and
plugins/cases/*/*/prepare.json, and plugin_prepare's libFuzzer dictionary (the JSON keys and
word-like values of those request bodies). Run from anywhere; commit the result."""
import base64, hashlib, json, pathlib, re, shutil

here = pathlib.Path(__file__).resolve().parent
root = here.parent.parent
seeds = here / "seeds"
shutil.rmtree(seeds, ignore_errors=True)
vectors = json.loads((root / "sdk/test-vectors/vectors.json").read_text())


def put(target, name, data):
    d = seeds / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())


for kind in ("ed25519", "p256"):
    proof = vectors[kind]["proof"]
    put("dpop_verify", kind, proof["compact"])
    put("dpop_signed", kind, proof["header_json"].encode() + b"\xff" + proof["claims_json"].encode())
    put("dpop_signed", kind + "-claims", proof["claims_json"])
pairing = vectors["pairing"]
put("pairing_string", "vector", pairing["encoded"])
raw = bytes.fromhex(pairing["id_hex"]) + bytes.fromhex(pairing["secret_hex"]) + pairing["gateway_url"].encode()
put("pairing_string", "raw", raw)
for i, case in enumerate(vectors["user_codes"]):
    put("user_code", f"vector-{i}", case["input"])
put("framer", "sse", b"\x00event: message_start\ndata: {\"a\":1}\n\n: keep-alive\n\ndata: line1\ndata: line2\r\n\r\ndata: [DONE]\n\n")
put("framer", "ndjson", b"\x01{\"x\":1}\n\n{\"x\":2}\n{\"x\":3}")
plugins = ["openai", "anthropic", "gemini", "ollama", "openai-compatible", "resend"]
actions = ["chat", "embeddings", "models", "passthrough", "send-email"]
tokens = {"true", "false", "null", "[]", "{}", "-1", "1e999", "4294967296"}


def collect(value):
    """The keys and word-like string values (roles, types, models) of a request body."""
    if isinstance(value, dict):
        for k, v in value.items():
            tokens.add(json.dumps(k) + ":")
            collect(v)
    elif isinstance(value, list):
        for v in value:
            collect(v)
    elif isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9_.:/-]{1,40}", value):
        tokens.add(json.dumps(value))


for case in sorted(root.glob("plugins/cases/*/*/prepare.json")):
    plugin = case.parent.parent.name
    if plugin not in plugins:
        continue
    spec = json.loads(case.read_text())
    action = spec.get("action", "chat")
    flags = actions.index(action) if action in actions else 0
    if spec.get("grant"):
        flags |= 8
    if spec.get("model"):
        flags |= 16
    if spec.get("method") == "GET":
        flags |= 32
    if spec.get("path"):
        flags |= 64
    body = spec.get("body", {})
    collect(body)
    body = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    put("plugin_prepare", f"{plugin}-{case.parent.name}", bytes([plugins.index(plugin), flags]) + body)

# libFuzzer dictionary: one quoted token a line, `"` and `\\` escaped.
dictionary = "".join('"' + t.replace("\\", "\\\\").replace('"', '\\"') + '"\n' for t in sorted(tokens))
(here / "plugin_prepare.dict").write_text("# Written by seeds.py: JSON keys and values of the plugin cases' request bodies.\n" + dictionary)
