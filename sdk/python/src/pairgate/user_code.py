"""Device-flow user codes `XXXX-XXXX` (docs/protocol.md section 2.1): normalising typed input."""

from __future__ import annotations

ALPHABET = "BCDFGHJKLMNPQRSTVWXZ"


def normalize_user_code(text: str) -> str | None:
    """The canonical `XXXX-XXXX` form of typed input, or None when it is not a user code."""
    if len(text.encode("utf-8")) > 64:
        return None
    chars = [c for c in text if c != "-" and not c.isspace()]
    code = "".join(c.upper() if "a" <= c <= "z" else c for c in chars)
    if len(code) != 8 or any(c not in ALPHABET for c in code):
        return None
    return f"{code[:4]}-{code[4:]}"
