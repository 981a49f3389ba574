"""Online duplicate and conflict detection: each new text is checked against every text kept so far.

Exact duplicates are found by a 16-byte digest of the normalized text; near duplicates by MinHash
LSH (datasketch) over word shingles. A match under a different label is a cross-label conflict:
the same (or nearly the same) text cannot teach a classifier two labels.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import Enum

from sdgen.text import normalize_text

_WORD = re.compile(r"\w+")
MIN_RESERVED_WORDS = 5  # a reserved text this long or longer may not appear inside a generated one either


def text_digest(text: str) -> bytes:
    return _digest(normalize_text(text))


def _digest(normalized: str) -> bytes:
    return hashlib.blake2b(normalized.encode(), digest_size=16).digest()


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


class _BandIndex:
    """MinHash signatures in one uint32 matrix, LSH band keys in plain dicts.

    datasketch's MinHashLSH keeps ~6 KB of Python objects per key (band byte strings, sets, key
    lists); this keeps a 4-byte value per permutation plus one dict entry per band (~1.3 KB per
    row at 128 permutations), so a 100k-row run indexes in ~130 MB. Band sizes are datasketch's.
    """

    def __init__(self, threshold: float, num_perm: int) -> None:
        import numpy as np
        from datasketch.lsh import _optimal_param

        # favour recall: candidates are verified against the estimated Jaccard, so false positives are cheap
        self.bands, self.rows = _optimal_param(threshold, num_perm, 0.1, 0.9)
        self._np = np
        self._sigs = np.zeros((1024, num_perm), dtype=np.uint32)
        self._n = 0
        self._tables: list[dict[int, int | list[int]]] = [{} for _ in range(self.bands)]

    def _keys(self, sig) -> list[int]:
        r = self.rows
        return [hash(sig[i * r : (i + 1) * r].tobytes()) for i in range(self.bands)]

    def candidates(self, sig) -> set[int]:
        found: set[int] = set()
        for table, key in zip(self._tables, self._keys(sig)):
            hit = table.get(key)
            if hit is not None:
                found.update(hit) if isinstance(hit, list) else found.add(hit)
        return found

    def insert(self, sig) -> int:
        if self._n == len(self._sigs):
            self._sigs = self._np.concatenate([self._sigs, self._np.zeros_like(self._sigs)])
        slot = self._n
        self._sigs[slot] = sig
        self._n += 1
        for table, key in zip(self._tables, self._keys(sig)):
            hit = table.get(key)
            if hit is None:
                table[key] = slot
            elif isinstance(hit, list):
                hit.append(slot)
            else:
                table[key] = [hit, slot]
        return slot

    def jaccard(self, slot: int, sig) -> float:
        """The Jaccard similarity the two signatures estimate."""
        return float(self._np.count_nonzero(self._sigs[slot] == sig)) / len(sig)


class TextIndex:
    """The texts kept so far: `check` a new one, `add` it if it is kept.

    Memory per kept row: a 16-byte digest and its row/label (~200 B), plus with ``near`` its
    MinHash signature and band keys (~1.3 KB at 128 permutations).
    """

    def __init__(self, *, near: bool = True, threshold: float = 0.8, shingle_size: int = 3, num_perm: int = 128) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"near-duplicate threshold must be in (0, 1], got {threshold}")
        if shingle_size < 1:
            raise ValueError(f"shingle size must be >= 1, got {shingle_size}")
        self.near, self.threshold, self.shingle_size, self.num_perm = near, threshold, shingle_size, num_perm
        self._exact: dict[bytes, tuple[int, str]] = {}
        self._labels: dict[int, str] = {}
        self._bands = _BandIndex(threshold, num_perm) if near else None
        self._slot_rows: list[int] = []  # band-index slot -> row
        self._slots: dict[int, int] = {}  # row -> slot
        self._pending: dict[int, object] = {}  # row -> signature computed by check(), reused by add()
        self._inside: dict[str, list[tuple[str, int, str]]] = {}  # first words -> reserved (text, row, label)
        self._permutations = None
        self._scheme = None

    def __len__(self) -> int:
        return len(self._exact)

    def check(self, row: int, text: str, label: str) -> Check:
        """What `text` (for `row`, under `label`) is relative to the kept texts. Same label wins over conflicts.
        A text that holds a whole reserved text is its near duplicate."""
        if not self._exact:  # nothing kept or reserved yet: no text to match (and no signature to compute)
            return Check(Verdict.UNIQUE)
        normalized = normalize_text(text)
        inside = self._reserved_inside(normalized)
        if inside is not None:
            kept_row, kept_label = inside
            return Check(Verdict.NEAR if kept_label == label else Verdict.CONFLICT, kept_row, kept_label)
        exact = self._exact.get(_digest(normalized))
        if exact is not None:
            kept_row, kept_label = exact
            verdict = Verdict.EXACT if kept_label == label else Verdict.CONFLICT
            return Check(verdict, kept_row, kept_label)
        if self._bands is None:
            return Check(Verdict.UNIQUE)
        sig = self._signature(text)
        self._pending[row] = sig
        slots = [s for s in self._bands.candidates(sig) if self._bands.jaccard(s, sig) >= self.threshold]
        matches = sorted(self._slot_rows[s] for s in slots)
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
        if self._bands is not None and row not in self._slots:
            sig = self._pending.pop(row, None)
            self._slots[row] = self._bands.insert(sig if sig is not None else self._signature(text))
            self._slot_rows.append(row)

    def reserve(self, row: int, text: str, label: str) -> None:
        """Keep `text` (an example) so that no later text repeats it, nearly repeats it or holds it whole."""
        self.add(row, text, label)
        normalized = normalize_text(text)
        words = normalized.split()
        if len(words) >= MIN_RESERVED_WORDS:
            self._inside.setdefault(" ".join(words[:MIN_RESERVED_WORDS]), []).append((normalized, row, label))

    def _reserved_inside(self, normalized: str) -> tuple[int, str] | None:
        """(row, label) of a reserved text that a normalized text holds whole, found by its first words
        (O(words) per text)."""
        if not self._inside:
            return None
        words = normalized.split()
        padded = f" {normalized} "
        for i in range(len(words) - MIN_RESERVED_WORDS + 1):
            for reserved, row, label in self._inside.get(" ".join(words[i : i + MIN_RESERVED_WORDS]), ()):
                if f" {reserved} " in padded:
                    return row, label
        return None

    def discard(self, row: int) -> None:
        """Forget a checked text that was not kept (frees its pending signature)."""
        self._pending.pop(row, None)

    def _signature(self, text: str):
        from datasketch import MinHash

        if self._permutations is None:
            minhash = MinHash(num_perm=self.num_perm)
            self._permutations, self._scheme = minhash.permutations, minhash.scheme  # generated once, then shared
        else:
            minhash = MinHash(num_perm=self.num_perm, permutations=self._permutations, scheme=self._scheme)
        minhash.update_batch(shingles(text, self.shingle_size))
        return minhash.hashvalues
