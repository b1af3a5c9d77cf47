"""Telling a person a CSV file's text encoding is not the one declared, and where.

CSV is read as ``data.source.encoding`` (default UTF-8). Two ways that goes wrong
are caught before anything is landed: a file in UTF-16/32 (a byte-order mark or
NUL bytes near the start, which a UTF-8 reader would split into junk lines), and
bytes the declared codec cannot decode (a Latin-1 ``é`` in a "UTF-8" file). The
error names the file, the line and byte offset of the first bad byte, and the
``encoding:`` to declare.

Example:
    >>> sniff_text(fs, "/data/flights.csv", "/data/flights.csv", "utf-8")  # raises if UTF-16
    >>> raise encoding_error(fs, path, name, "utf-8", None)
    BadInput: data file d.csv is not utf-8 text — line 3 (byte offset 41): byte 0xe9 ...
"""

from __future__ import annotations

import codecs
from typing import Any

from mlcycle.errors import BadInput

_SNIFF = 1 << 16  # bytes looked at for a byte-order mark or NUL bytes
_SCAN = 1 << 20  # bytes decoded at a time when looking for the first bad byte
_BOMS = (  # longest first: the UTF-32 LE mark starts with the UTF-16 LE one
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_FIX = (
    "save the file as UTF-8, or declare its encoding in mlcycle.yaml "
    "(data.source.encoding: {guess}); nothing was landed"
)


def sniff_text(fs: Any, path: str, name: str, encoding: str) -> None:
    """Refuse a UTF-16/32 file read with a single-byte or UTF-8 ``encoding``.

    Example:
        >>> sniff_text(fs, path, path, "utf-8")   # a UTF-16 file
        BadInput: data file d.csv is not utf-8 text — it starts with a UTF-16 byte-order mark ...
    """
    if _wide(encoding):
        return
    with fs.open(path, "rb", compression="infer") as fh:
        head = fh.read(_SNIFF)
    for bom, guess in _BOMS:
        if head.startswith(bom):
            raise BadInput(
                f"data file {name} is not {encoding.upper()} text",
                f"it starts with a {guess.upper()} byte-order mark",
                _FIX.format(guess=guess),
            )
    nul = head.find(b"\x00")
    if nul >= 0:
        line = head.count(b"\n", 0, nul) + 1
        raise BadInput(
            f"data file {name} is not {encoding.upper()} text",
            f"it holds a NUL byte at byte offset {nul} (line {line}), "
            "as UTF-16 or UTF-32 text without a byte-order mark does",
            _FIX.format(guess="utf-16-le"),
        )


def encoding_error(
    fs: Any, path: str, name: str, encoding: str, cause: BaseException | None
) -> BadInput:
    """The error for a file whose bytes ``encoding`` cannot decode, naming the first bad one.

    The file is decoded again from the start (only on this error path), so the
    line and byte offset are the file's (its decompressed text for .gz/.bz2/.xz), not
    those of a block inside the reader.

    Example:
        >>> encoding_error(fs, path, path, "utf-8", None).why
        "line 3 (byte offset 41): byte 0xe9 cannot be decoded as utf-8 (invalid continuation byte)"
    """
    where = _first_bad_byte(fs, path, encoding)
    if where is not None:
        why = where
    elif cause is not None:
        why = f"{cause}"
    else:
        why = "some of its text cannot be decoded"
    guess = "latin-1" if not _wide(encoding) else "utf-8"
    return BadInput(
        f"data file {name} is not {encoding.upper()} text", why, _FIX.format(guess=guess)
    )


def _wide(encoding: str) -> bool:
    return codecs.lookup(encoding).name.startswith(("utf-16", "utf-32"))


def _first_bad_byte(fs: Any, path: str, encoding: str) -> str | None:
    """Where decoding ``path`` as ``encoding`` first fails, as text; None if it does not."""
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    offset = 0  # bytes before ``block`` in the (decompressed) file
    lines = 1
    try:
        with fs.open(path, "rb", compression="infer") as fh:
            while block := fh.read(_SCAN):
                # The decoder keeps the bytes of a character cut by the block's end;
                # its error positions count from them, not from the block.
                pending = decoder.getstate()[0]
                try:
                    decoder.decode(block)
                except UnicodeDecodeError as exc:
                    start = max(exc.start, 0)
                    at = offset - len(pending) + start
                    line = lines - pending.count(b"\n") + exc.object.count(b"\n", 0, start)
                    bad = exc.object[start : start + 1].hex()
                    return (
                        f"line {line} (byte offset {at}): byte 0x{bad} cannot be decoded as "
                        f"{encoding} ({exc.reason})"
                    )
                offset += len(block)
                lines += block.count(b"\n")
            decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        return f"the file ends inside a character ({exc.reason})"
    except (OSError, UnicodeError):
        return None
    return None
