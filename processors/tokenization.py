"""Google's text helpers, where processors written for Google's BERT import them from.

`from processors import tokenization` makes `tokenization.convert_to_unicode(...)`
in a processor ported from Google's code run as written. The tokenizer itself is
the fast WordPiece tokenizer in `modeling.tokenization`.
"""


def convert_to_unicode(text) -> str:
    """`text` as str: bytes are decoded as UTF-8 (bad bytes dropped, as in Google's)."""
    if isinstance(text, str):
        return text
    if isinstance(text, bytes):
        return text.decode("utf-8", "ignore")
    raise ValueError(f"Unsupported string type: {type(text)}")


def printable_text(text) -> str:
    """`text` in a form fit for print or logging: on Python 3, the same as convert_to_unicode."""
    return convert_to_unicode(text)
