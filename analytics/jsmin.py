"""A small, conservative JavaScript minifier for the insert (no node tooling in the build).

It drops comments and whitespace and keeps one space only where two words would
otherwise merge (or ``+ +`` / ``- -`` would become ``++`` / ``--``). It does not
rename anything and does not understand regular expression literals, so the
insert's source must not contain any (it uses ``new RegExp``), and it must end
statements with semicolons (newlines are removed). :func:`minify` refuses a
source that breaks these rules instead of emitting broken code.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pricing.skus import SKU

SOURCE = Path(__file__).resolve().parent / "static" / "storefabric" / "storefabric.js"
MINIFIED = SOURCE.with_name("storefabric.min.js")
BANNER = "/*! storefabric.js | source sha256:{digest} | https://storefabric.example */\n"
_WORD = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_$")
_REGEX_CONTEXT = frozenset("(,=:[!&|?{};")
# Rules written once on the server and put into the insert by the build (a quoted placeholder in the source).
INJECTED = {"'@SKU_PATTERN@'": SKU.ecmascript}


class MinifyError(ValueError):
    """The source uses something this minifier would break (a regex literal, an unterminated string)."""


def source_digest(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def _string_end(source: str, start: int) -> int:
    quote = source[start]
    index = start + 1
    while index < len(source):
        char = source[index]
        if char == "\\":
            index += 2
            continue
        if char == quote:
            return index + 1
        if char == "\n":
            break
        index += 1
    raise MinifyError(f"unterminated string at offset {start}")


def _needs_space(before: str, after: str) -> bool:
    if before in _WORD and after in _WORD:
        return True
    return before == after and before in "+-"


def _last_significant(out: list[str]) -> str:
    for chunk in reversed(out):
        if chunk.strip():
            return chunk.strip()[-1]
    return ""


def minify(source: str) -> str:
    out: list[str] = []
    index = 0
    pending_space = False
    while index < len(source):
        char = source[index]
        pair = source[index : index + 2]
        if pair == "/*":
            end = source.find("*/", index + 2)
            if end < 0:
                raise MinifyError(f"unterminated comment at offset {index}")
            index, pending_space = end + 2, True
        elif pair == "//":
            end = source.find("\n", index)
            index, pending_space = (len(source) if end < 0 else end), True
        elif char.isspace():
            index, pending_space = index + 1, True
        else:
            if char == "/" and _last_significant(out) in _REGEX_CONTEXT:
                raise MinifyError(f"regular expression literal at offset {index}; use new RegExp(...)")
            if char == "`":
                raise MinifyError(f"template literal at offset {index}; use string concatenation")
            end = _string_end(source, index) if char in "'\"" else index + 1
            token = source[index:end]
            if pending_space and out and _needs_space(out[-1][-1], token[0]):
                out.append(" ")
            out.append(token)
            index, pending_space = end, False
    return "".join(out)


def _inject(source: str) -> str:
    """Put the server's rules into the source where it names them, each as a JavaScript string literal."""
    for placeholder, value in INJECTED.items():
        if placeholder not in source:
            raise MinifyError(f"the source no longer names {placeholder}")
        source = source.replace(placeholder, json.dumps(value))
    return source


def build(source: str) -> str:
    """The committed ``storefabric.min.js`` for ``source``: banner with the source hash, then the code.

    The banner's hash is of the source as written; the code carries the injected rules, so a
    change of a rule makes the committed build stale (``test_insert_asset`` says so).
    """
    return BANNER.format(digest=source_digest(source)) + minify(_inject(source)) + "\n"
