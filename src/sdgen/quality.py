"""Online duplicate and conflict detection: each new text is checked against every text kept so far.

Exact duplicates are found by a 16-byte digest of the normalized text; near duplicates by MinHash
LSH (datasketch) over word shingles. A match under a different label is a cross-label conflict:
the same (or nearly the same) text cannot teach a classifier two labels.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from enum import Enum

_WORD = re.compile(r"\w+")


def normalize_text(text: str) -> str:
    """The key for exact-duplicate detection: case, accents' composition, spacing and punctuation folded."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def text_digest(text: str) -> bytes:
    return hashlib.blake2b(normalize_text(text).encode(), digest_size=16).digest()


def shingles(text: str, size: int) -> set[bytes]:
    """Word n-grams of the normalized text (the whole text when it is shorter than `size` words)."""
    words = _WORD.findall(normalize_text(text))
    if len(words) <= size:
        return {" ".join(words).encode()}
    return {" ".join(words[i : i + size]).encode() for i in range(len(words) - size + 1)}


class Verdict(str, Enum):
    UNIQUE = "unique"
    EXACT = "exact_duplicate"
    NEAR = "near_duplicate"
    CONFLICT = "conflict"  # the same or a near text was kept under another label


@dataclass(frozen=True)
class Check:
    verdict: Verdict
    match: int | None = None  # the kept row it matched
    match_label: str | None = None


class TextIndex:
    """The texts kept so far: `check` a new one, `add` it if it is kept.

    Memory per kept row: a 16-byte digest, its MinHash and the LSH's band keys (num_perm 128: ~2.5 KB).
    """

    def __init__(self, *, near: bool = True, threshold: float = 0.8, shingle_size: int = 3, num_perm: int = 128) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"near-duplicate threshold must be in (0, 1], got {threshold}")
        if shingle_size < 1:
            raise ValueError(f"shingle size must be >= 1, got {shingle_size}")
        self.near, self.threshold, self.shingle_size, self.num_perm = near, threshold, shingle_size, num_perm
        self._exact: dict[bytes, tuple[int, str]] = {}
        self._labels: dict[int, str] = {}
        self._lsh = None
        if near:
            from datasketch import MinHashLSH

            # favour recall: candidates are verified against the estimated Jaccard below, so false positives are cheap
            self._lsh = MinHashLSH(threshold=threshold, num_perm=num_perm, weights=(0.1, 0.9))
        self._pending: dict[int, object] = {}  # row -> MinHash computed by check(), reused by add()
        self._minhashes: dict[int, object] = {}

    def __len__(self) -> int:
        return len(self._exact)

    def check(self, row: int, text: str, label: str) -> Check:
        """What `text` (for `row`, under `label`) is relative to the kept texts. Same label wins over conflicts."""
        exact = self._exact.get(text_digest(text))
        if exact is not None:
            kept_row, kept_label = exact
            verdict = Verdict.EXACT if kept_label == label else Verdict.CONFLICT
            return Check(verdict, kept_row, kept_label)
        if self._lsh is None:
            return Check(Verdict.UNIQUE)
        minhash = self._minhash(text)
        self._pending[row] = minhash
        # LSH candidates include false positives: keep those whose estimated Jaccard reaches the threshold
        matches = sorted(m for m in self._lsh.query(minhash) if self._minhashes[m].jaccard(minhash) >= self.threshold)
        same = [m for m in matches if self._labels[m] == label]
        if same:
            return Check(Verdict.NEAR, same[0], label)
        if matches:
            return Check(Verdict.CONFLICT, matches[0], self._labels[matches[0]])
        return Check(Verdict.UNIQUE)

    def add(self, row: int, text: str, label: str) -> None:
        """Keep `text`: later texts are checked against it."""
        self._exact.setdefault(text_digest(text), (row, label))
        self._labels[row] = label
        if self._lsh is not None:
            minhash = self._pending.pop(row, None) or self._minhash(text)
            if row not in self._minhashes:
                self._lsh.insert(row, minhash)
                self._minhashes[row] = minhash

    def discard(self, row: int) -> None:
        """Forget a checked text that was not kept (frees its pending MinHash)."""
        self._pending.pop(row, None)

    def _minhash(self, text: str):
        from datasketch import MinHash

        minhash = MinHash(num_perm=self.num_perm)
        minhash.update_batch(shingles(text, self.shingle_size))
        return minhash
