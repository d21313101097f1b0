#!/usr/bin/env python3
"""Writes the seed corpora (tests/fuzz/seeds/<target>/) from sdk/test-vectors/vectors.json and
plugins/cases/*/*/prepare.json. Run from anywhere; commit the result."""
import base64, hashlib, json, pathlib, shutil

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
    body = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    put("plugin_prepare", f"{plugin}-{case.parent.name}", bytes([plugins.index(plugin), flags]) + body)
