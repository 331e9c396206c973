"""Hostile strings for the renderer properties, and the tally that scripts/hostile reports.

Every property test calls ``tally(RENDERER)`` once per generated input; a failing test is
counted against the renderers it tallied (tests/property/conftest.py).
"""

from __future__ import annotations

from collections import Counter

from hypothesis import strategies as st

# Characters that mean something to one of the formats vmshare writes: line and field breaks
# (the Unicode ones Python's splitlines and split also break at), quotes of every kind (the
# PowerShell ones too), shell, exports, smb.conf, ganesha, .vmx and XML syntax.
SPECIAL = (
    "\n\r\x00\t \x0b\x0c\x1c\x85\u2028\u2029\xa0\u3000"
    "\"'`\u2018\u2019\u201a\u201b\u201c\u201d\u201e"
    "$;#=[]{}()<>|&*?!~%@,:\\/-.+^"
)
# the escapes formats use, so a value can pose as one: \040 (fstab), \043 (exports), |22 (.vmx)
FRAGMENTS = [
    "\\040", "\\134", "\\012", "\\043", "|22", "|0A", "|7C", "$(id)", "`id`", "${IFS}",
    "'@", "@'", "\"@", "--", "-o", "-oProxyCommand=x", "&amp;", "]]>", "<!--", "%S", "%u",
    "\\\n", "include = /etc/passwd", "[global]", "EXPORT {", "};", "# vmshare:x",
    "# END vmshare", "\r\n",
]  # fmt: skip

_char = st.one_of(
    st.sampled_from(SPECIAL),
    st.characters(codec="utf-8"),  # any code point but lone surrogates
    st.characters(min_codepoint=0x20, max_codepoint=0x7E),
)
_piece = st.one_of(st.text(_char, min_size=1, max_size=8), st.sampled_from(FRAGMENTS))


def _join(parts: list[str], lead: str, repeat: int) -> str:
    return lead + "".join(parts) * repeat


text = st.builds(
    _join,
    st.lists(_piece, max_size=8),
    st.sampled_from(["", "", "", "-", "--", "#", " ", "\\", "'"]),
    st.sampled_from([1, 1, 1, 1, 1, 1, 40, 400]),  # now and then very long
)
nonempty = text.filter(bool)
path = st.builds(lambda t: "/" + t, text)  # an absolute POSIX path (host folder, guest target)
windows_path = st.builds(lambda t: "C:\\" + t, text)


TALLY: Counter[str] = Counter()
SEEN: dict[str, set[str]] = {}  # test id -> renderers it exercised
CURRENT: list[str] = [""]


def tally(renderer: str) -> None:
    """Count one generated input for ``renderer``."""
    TALLY[renderer] += 1
    SEEN.setdefault(CURRENT[0], set()).add(renderer)
