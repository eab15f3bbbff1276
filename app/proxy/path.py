"""The path a `/proxy/{provider}/{path}` request forwards, and the rules that keep it inside the provider.

The path is taken from the request target exactly as the client sent it (gunicorn's `RAW_URI`,
the dev server's `REQUEST_URI`), because `PATH_INFO` is already percent-decoded: there `%2F` and
`/` look the same. It is forwarded still encoded, so the provider sees what the client wrote.

Every segment is checked raw and after each level of percent-decoding (so `%2e`, `%252e` and
`%25252e` are all a dot). Refused with `UnsafePath` (400), before any connection is made:

    dot segments `.` and `..`      urllib3 and the provider's server resolve them, so
                                   `/v1/../../admin` climbs out of the provider's base path
    an encoded `/` in a segment    a server that decodes before routing sees one more segment,
      (`%2f`, `%252f`)             so `..%2fadmin` climbs too
    backslashes, raw or encoded    many servers treat `\\` as `/`
    empty segments (`//host`,      `//` starts an authority: a URL joiner or server reads the
      a leading `/`)               next segment as another host
    a leading scheme (`http:`,     an absolute URL: anything that joins URLs goes to that host
      `https:/`)
    control characters (NUL,       request splitting and header injection (CR/LF), C-string
      CR, LF, TAB ...)             truncation (NUL)
    invalid UTF-8 (`%c0%ae`)       overlong forms that lenient decoders read as `.` or `/`
    look-alikes (`．．`, `／`)      characters that Unicode normalisation (NFKC) turns into
                                   `.`, `/` or `\\`
    `#`, or more than 3 levels     not a path a client can mean
      of encoding
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from app.errors import UnsafePath

MAX_ENCODING_DEPTH = 3
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:")


def upstream_path(environ: Mapping[str, Any], provider: str) -> str:
    """`/` plus the path after `/proxy/<provider>/`, still percent-encoded; raises UnsafePath."""
    target = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if target is None:  # a server that keeps no raw target: the decoded path is all there is
        target = quote(environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""), safe="/:@!$&'()*+,;=")
    if not target.startswith("/"):  # absolute-form request target, http://gateway/proxy/...
        target = urlsplit(target).path
    path = target.partition("?")[0]
    script_name = environ.get("SCRIPT_NAME", "")
    if script_name and path.startswith(script_name + "/"):
        path = path[len(script_name):]
    segments = path.split("/")
    # ["", "proxy", "<provider>", *tail]; anything else means a `%2f` joined or split the prefix
    if len(segments) < 4 or unquote(segments[1]) != "proxy" or unquote(segments[2]) != provider:
        raise UnsafePath(f"The proxy path must be /proxy/{provider}/<path>, with no encoded `/`.")
    tail = segments[3:]
    check(tail)
    return "/" + "/".join(tail)


def check(segments: list[str]) -> None:
    """Raise UnsafePath unless every segment stays inside the provider's base path."""
    if len(segments) > 1 and "" in segments[:-1]:  # a trailing slash is fine
        raise UnsafePath("Empty path segments (`//`) are not allowed in a proxy path.")
    for segment in segments:
        _check_segment(segment)
    if _SCHEME.fullmatch(_decoded(segments[0])):
        raise UnsafePath("A proxy path may not be an absolute URL.")


def _check_segment(raw: str) -> None:
    text = raw
    for depth in range(MAX_ENCODING_DEPTH + 1):
        if text in (".", ".."):
            raise UnsafePath("Dot segments (`.`, `..`, also percent-encoded) are not allowed in a proxy path.")
        if "\\" in text:
            raise UnsafePath("Backslashes are not allowed in a proxy path.")
        if _CONTROL.search(text):
            raise UnsafePath("Control characters (NUL, CR, LF ...) are not allowed in a proxy path.")
        if depth and "/" in text:
            raise UnsafePath("An encoded `/` (%2F) is not allowed in a proxy path segment.")
        if "#" in text and not depth:
            raise UnsafePath("A raw `#` is not allowed in a proxy path.")
        decoded = unquote(text, encoding="latin-1")
        if decoded == text:
            break
        text = decoded
    else:
        raise UnsafePath(f"A proxy path segment may be percent-encoded at most {MAX_ENCODING_DEPTH} times.")
    try:
        readable = text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        raise UnsafePath("A proxy path must be valid UTF-8 once percent-decoded.") from None
    normal = unicodedata.normalize("NFKC", readable)
    if normal != readable and (normal in (".", "..") or "/" in normal or "\\" in normal or _CONTROL.search(normal)):
        raise UnsafePath("Characters that normalise to `.`, `/` or `\\` are not allowed in a proxy path.")


def _decoded(segment: str) -> str:
    for _ in range(MAX_ENCODING_DEPTH + 1):
        decoded = unquote(segment, encoding="latin-1")
        if decoded == segment:
            break
        segment = decoded
    return segment
