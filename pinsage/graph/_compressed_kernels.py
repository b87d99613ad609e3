"""Compiled (numba) kernels of the compressed adjacency encoding (:mod:`pinsage.graph.compressed`).

One direction of a relation (``n`` source nodes, each with a sorted list of distinct target ids) is a
bit stream ``data`` (uint64 words, bit ``p`` is bit ``p & 63`` of word ``p >> 6``) plus a block table
``blocks`` ``(ceil(n / 64), 4)`` int64. Node ``c`` lies in block ``b = c >> 6`` at row ``r = c & 63``:

* block table row ``b``: ``[bit position of the block's directory (word aligned), base of its
  adjacency positions, minimum degree of the block, wd | wo << 8 | slope << 16]``;
* block directory: one entry per node of the block, ``wd + wo`` bits each: ``degree - dmin`` (``wd``
  bits) then ``o_r`` (``wo`` bits), where the adjacency of row ``r`` starts at bit
  ``base + r * slope + o_r`` (a linear frame of reference: in degree order the nodes of a block have
  about the same size, so ``o_r`` is small); the adjacencies follow the directory, in node order;
* an adjacency of degree ``d`` with sorted neighbours ``a_0 < ... < a_{d-1}`` is cut into chunks of
  ``C = 2**cs`` neighbours, each coded as its first value (the *base*) and the ``len - 1`` gaps
  ``a_{t} - a_{t-1} - 1`` bit-packed at the chunk's width ``w_j = bits(max gap)``:

  - ``d <= C`` (one chunk): ``[6: w][6: wb][wb: a_0][(d - 1) x w: gaps]``;
  - ``d > C``: ``[6: Ww][6: Wb]``, then ``m = ceil(d / C)`` chunk entries ``[Ww: W_j][Wb: base_j]`` with
    ``W_j = w_0 + ... + w_{j-1}`` (the cumulative widths), a last ``[Ww: W_m]``, then the gaps: chunk
    ``j``'s start ``(C - 1) W_j`` bits after the entries (every chunk but the last is full) and its
    width ``W_{j+1} - W_j``.

Neighbour ``k`` is then ``base_j + i + sum_{t < i} gap_t`` with ``j = k >> cs``, ``i = k & (C - 1)``:
a block table row, one directory entry, at most one chunk entry and at most ``C - 1`` fixed-width
fields read 64 bits at a time, all at computed positions (random access without decoding the
adjacency from its start).

Every kernel releases the GIL; encoders work on ranges of blocks, which start on word boundaries, so
disjoint ranges may be written from several threads.
"""
from __future__ import annotations

import numba as nb
import numpy as np

#: nodes per block of the block table (a fixed constant of the format)
BLOCK_SHIFT = 6
BLOCK = 1 << BLOCK_SHIFT

_U1 = np.uint64(1)
_U6 = np.uint64(6)
_U63 = np.uint64(63)


@nb.njit(cache=True, inline="always")
def bit_raw(data, pos):
    """The 64 bits of ``data`` (uint64 words; one word of padding after the last used bit) from bit
    position ``pos`` on, as uint64: two word loads, no branch."""
    p = np.uint64(pos)
    q = np.int64(p >> _U6)
    s = p & _U63
    return (data[q] >> s) | ((data[q + 1] << _U1) << (_U63 - s))


@nb.njit(cache=True, inline="always")
def bit_read(data, pos, w):
    """The ``w`` bits (``0 <= w <= 63``) at bit position ``pos`` of ``data``, as uint64."""
    return bit_raw(data, pos) & ((_U1 << np.uint64(w)) - _U1)


@nb.njit(cache=True, inline="always")
def _field(x, shift, w):
    """Bits ``shift .. shift + w - 1`` of the uint64 ``x`` as int64 (``shift + w <= 64``, ``w <= 63``)."""
    return np.int64((x >> np.uint64(shift)) & ((_U1 << np.uint64(w)) - _U1))


@nb.njit(cache=True, inline="always")
def _bit_write(data, pos, w, v):
    """OR the ``w`` low bits of ``v`` (``w <= 63``) into ``data`` at bit ``pos`` (zero-initialised)."""
    if w == 0:
        return
    p = np.uint64(pos)
    q = np.int64(p >> _U6)
    s = p & _U63
    v = np.uint64(v)
    data[q] |= v << s
    if np.int64(s) + w > 64:
        data[q + 1] |= v >> (np.uint64(64) - s)


@nb.njit(cache=True, inline="always")
def nbits(x):
    """Bits needed to write the non-negative integer ``x`` (0 for 0)."""
    b = 0
    x = np.uint64(x)
    while x != np.uint64(0):
        x >>= _U1
        b += 1
    return b


# ---------------------------------------------------------------------------------------------- reading
@nb.njit(cache=True, inline="always")
def node_entry(blocks, data, c):
    """``(bit position of node c's adjacency, degree of c)`` from the block table and directory."""
    b = c >> BLOCK_SHIFT
    r = c & (BLOCK - 1)
    meta = blocks[b, 3]
    wd = meta & 255
    wo = (meta >> 8) & 255
    e = blocks[b, 0] + r * (wd + wo)
    p = blocks[b, 1] + r * (meta >> 16)
    if wd + wo <= 64:
        x = bit_raw(data, e)
        return p + _field(x, wd, wo), blocks[b, 2] + _field(x, 0, wd)
    return p + np.int64(bit_read(data, e + wd, wo)), blocks[b, 2] + np.int64(bit_read(data, e, wd))


@nb.njit(cache=True, inline="always")
def chunk_of(data, p, d, k, cs):
    """Locate slot ``k`` of the adjacency at bit ``p`` with degree ``d`` (``0 <= k < d``), chunk size
    ``2**cs``: returns ``(bit position of the chunk's gaps, base, gap width, i = gaps to add)``."""
    x = bit_raw(data, p)
    w = _field(x, 0, 6)
    wb = _field(x, 6, 6)
    if d <= (1 << cs):
        if wb <= 52:
            base = _field(x, 12, wb)
        else:
            base = np.int64(bit_read(data, p + 12, wb))
        return p + 12 + wb, base, w, k
    ww = w
    ew = ww + wb
    j = k >> cs
    e = p + 12 + j * ew
    if ew + ww <= 64:
        y = bit_raw(data, e)
        cw = _field(y, 0, ww)
        base = _field(y, ww, wb)
        nw = _field(y, ew, ww)
    else:
        cw = np.int64(bit_read(data, e, ww))
        base = np.int64(bit_read(data, e + ww, wb))
        nw = np.int64(bit_read(data, e + ew, ww))
    nch = (d + (1 << cs) - 1) >> cs
    start = p + 12 + nch * ew + ww
    return start + ((1 << cs) - 1) * cw, base, nw - cw, k & ((1 << cs) - 1)


@nb.njit(cache=True, inline="always")
def gap_sum(data, gpos, base, w, i):
    """``base + i + sum`` of the ``i`` gaps of width ``w`` at bit ``gpos``: the neighbour's id. The gaps
    are read 64 bits (``64 // w`` gaps) at a time."""
    v = base + i
    if w == 0 or i == 0:
        return v
    mask = (_U1 << np.uint64(w)) - _U1
    uw = np.uint64(w)
    per = 64 // w
    p = gpos
    r = i
    acc = np.uint64(0)
    while r > 0:
        x = bit_raw(data, p)
        m = min(r, per)
        for _t in range(m):
            acc += x & mask
            x >>= uw
        p += m * w
        r -= m
    return v + np.int64(acc)


@nb.njit(cache=True, inline="always")
def neighbor(blocks, data, c, k, cs):
    """Neighbour ``k`` (in id order) of node ``c``."""
    p, d = node_entry(blocks, data, c)
    gpos, base, w, i = chunk_of(data, p, d, k, cs)
    return gap_sum(data, gpos, base, w, i)


@nb.njit(cache=True, nogil=True)
def degrees(blocks, data, nodes, out):
    """``out[j] = degree(nodes[j])``."""
    for j in range(len(nodes)):
        _p, d = node_entry(blocks, data, np.int64(nodes[j]))
        out[j] = d


@nb.njit(cache=True, nogil=True)
def neighbors_at(blocks, data, nodes, slots, cs, out):
    """``out[j] = neighbour slots[j] of nodes[j]`` (random access; ``0 <= slots[j] < degree``)."""
    for j in range(len(nodes)):
        out[j] = neighbor(blocks, data, np.int64(nodes[j]), np.int64(slots[j]), cs)


@nb.njit(cache=True, inline="always")
def _decode_adjacency(data, p, d, cs, out, o):
    """Write the ``d`` neighbours of the adjacency at bit ``p`` to ``out[o:o + d]`` in order."""
    if d == 0:
        return
    C = 1 << cs
    w = np.int64(bit_read(data, p, 6))
    wb = np.int64(bit_read(data, p + 6, 6))
    if d <= C:
        v = np.int64(bit_read(data, p + 12, wb))
        out[o] = v
        g = p + 12 + wb
        for t in range(1, d):
            v += 1 + np.int64(bit_read(data, g, w))
            g += w
            out[o + t] = v
        return
    ww = w
    ew = ww + wb
    nch = (d + C - 1) >> cs
    start = p + 12 + nch * ew + ww
    for j in range(nch):
        e = p + 12 + j * ew
        cw = np.int64(bit_read(data, e, ww))
        v = np.int64(bit_read(data, e + ww, wb))
        cw_next = np.int64(bit_read(data, e + ew, ww))
        g = start + (C - 1) * cw
        w = cw_next - cw
        lo = j * C
        hi = min(d, lo + C)
        out[o + lo] = v
        for t in range(lo + 1, hi):
            v += 1 + np.int64(bit_read(data, g, w))
            g += w
            out[o + t] = v


@nb.njit(cache=True, nogil=True)
def decode_range(blocks, data, cs, indptr, out, lo, hi):
    """Decode nodes ``lo..hi-1`` into the CSR ``(indptr, out)`` (``indptr`` already filled)."""
    for c in range(lo, hi):
        p, d = node_entry(blocks, data, c)
        _decode_adjacency(data, p, d, cs, out, indptr[c])


@nb.njit(cache=True, nogil=True)
def decode_node(blocks, data, cs, c, out):
    """Write the neighbours of node ``c`` to ``out`` (at least its degree long); returns the degree."""
    p, d = node_entry(blocks, data, c)
    _decode_adjacency(data, p, d, cs, out, 0)
    return d


@nb.njit(cache=True, nogil=True)
def all_degrees(blocks, data, n, out):
    """``out[c] = degree(c)`` for every node, block by block (``out`` ``(n,)`` int64)."""
    for b in range(len(blocks)):
        pos = blocks[b, 0]
        wd = blocks[b, 3] & 255
        ew = wd + ((blocks[b, 3] >> 8) & 255)
        c0 = b << BLOCK_SHIFT
        for r in range(min(BLOCK, n - c0)):
            out[c0 + r] = blocks[b, 2] + np.int64(bit_read(data, pos + r * ew, wd))


# ---------------------------------------------------------------------------------------------- writing
@nb.njit(cache=True, inline="always")
def _chunk_width(vals, lo, hi):
    """Width of the gaps ``vals[t] - vals[t - 1] - 1`` for ``t`` in ``lo + 1 .. hi - 1``."""
    mg = 0
    for t in range(lo + 1, hi):
        mg = max(mg, vals[t] - vals[t - 1] - 1)
    return nbits(mg)


@nb.njit(cache=True, inline="always")
def _adjacency_bits(vals, d, cs):
    """Bits of the adjacency coding of the sorted ``vals[:d]`` (0 for ``d == 0``)."""
    if d == 0:
        return 0
    C = 1 << cs
    if d <= C:
        return 12 + nbits(vals[0]) + (d - 1) * _chunk_width(vals, 0, d)
    nch = (d + C - 1) >> cs
    total_w = 0
    gaps = 0
    for j in range(nch):
        lo = j * C
        hi = min(d, lo + C)
        w = _chunk_width(vals, lo, hi)
        total_w += w
        gaps += (hi - lo - 1) * w
    ww = nbits(total_w)
    return 12 + nch * (ww + nbits(vals[(nch - 1) * C])) + ww + gaps


@nb.njit(cache=True, inline="always")
def _write_adjacency(data, p, vals, d, cs):
    """Write the coding of the sorted ``vals[:d]`` at bit ``p``; returns the bits written."""
    if d == 0:
        return 0
    C = 1 << cs
    if d <= C:
        w = _chunk_width(vals, 0, d)
        wb = nbits(vals[0])
        _bit_write(data, p, 6, w)
        _bit_write(data, p + 6, 6, wb)
        _bit_write(data, p + 12, wb, vals[0])
        q = p + 12 + wb
        for t in range(1, d):
            _bit_write(data, q, w, vals[t] - vals[t - 1] - 1)
            q += w
        return q - p
    nch = (d + C - 1) >> cs
    total_w = 0
    for j in range(nch):
        lo = j * C
        total_w += _chunk_width(vals, lo, min(d, lo + C))
    ww = nbits(total_w)
    wb = nbits(vals[(nch - 1) * C])
    ew = ww + wb
    _bit_write(data, p, 6, ww)
    _bit_write(data, p + 6, 6, wb)
    start = p + 12 + nch * ew + ww
    g = start
    cw = 0
    for j in range(nch):
        lo = j * C
        hi = min(d, lo + C)
        w = _chunk_width(vals, lo, hi)
        e = p + 12 + j * ew
        _bit_write(data, e, ww, cw)
        _bit_write(data, e + ww, wb, vals[lo])
        for t in range(lo + 1, hi):
            _bit_write(data, g, w, vals[t] - vals[t - 1] - 1)
            g += w
        cw += w
    _bit_write(data, p + 12 + nch * ew, ww, cw)
    return g - p


@nb.njit(cache=True, inline="always")
def _linear_frame(sizes, m):
    """``(slope, bias, wo)`` of the linear frame of reference of the adjacency starts of a block whose
    ``m`` adjacencies have ``sizes[:m]`` bits: ``start_r = r * slope + o_r - bias`` with
    ``0 <= o_r < 2**wo``."""
    rel = np.int64(0)
    for r in range(m - 1):
        rel += sizes[r]
    slope = rel // (m - 1) if m > 1 else np.int64(0)
    lo = np.int64(0)
    hi = np.int64(0)
    cum = np.int64(0)
    for r in range(m):
        res = cum - r * slope
        lo = min(lo, res)
        hi = max(hi, res)
        cum += sizes[r]
    return slope, -lo, nbits(hi - lo)


@nb.njit(cache=True, nogil=True)
def size_blocks(indptr, indices, cs, block_bits, dir_bits, block_dmin, block_meta, block_bias, lo, hi):
    """First encoder pass over blocks ``lo..hi-1``: each block's size in bits (rounded up to whole
    words), its directory's size in bits, minimum degree, ``wd | wo << 8 | slope << 16`` and the bias
    of its linear frame of reference (:func:`_linear_frame`). The CSR ``(indptr, indices)`` must list
    every row's values distinct and increasing."""
    n = len(indptr) - 1
    sizes = np.empty(BLOCK, dtype=np.int64)
    for b in range(lo, hi):
        c0 = b << BLOCK_SHIFT
        m = min(BLOCK, n - c0)
        dmin = np.int64(1) << 62
        dmax = np.int64(0)
        total = np.int64(0)
        for r in range(m):
            a = indptr[c0 + r]
            d = indptr[c0 + r + 1] - a
            sizes[r] = _adjacency_bits(indices[a:a + d], d, cs)
            total += sizes[r]
            dmin = min(dmin, d)
            dmax = max(dmax, d)
        slope, bias, wo = _linear_frame(sizes, m)
        wd = nbits(dmax - dmin)
        total += m * (wd + wo)
        block_bits[b] = (total + 63) & ~np.int64(63)
        dir_bits[b] = m * (wd + wo)
        block_dmin[b] = dmin
        block_meta[b] = wd | (wo << 8) | (slope << 16)
        block_bias[b] = bias


@nb.njit(cache=True, nogil=True)
def write_blocks(indptr, indices, cs, blocks, data, lo, hi):
    """Second encoder pass: write blocks ``lo..hi-1`` at the positions of the block table ``blocks``
    (filled from :func:`size_blocks`) into the zeroed ``data``."""
    n = len(indptr) - 1
    for b in range(lo, hi):
        c0 = b << BLOCK_SHIFT
        m = min(BLOCK, n - c0)
        pos = blocks[b, 0]
        base = blocks[b, 1]
        dmin = blocks[b, 2]
        wd = blocks[b, 3] & 255
        wo = (blocks[b, 3] >> 8) & 255
        slope = blocks[b, 3] >> 16
        ew = wd + wo
        p = pos + m * ew  # the first adjacency
        for r in range(m):
            a = indptr[c0 + r]
            d = indptr[c0 + r + 1] - a
            _bit_write(data, pos + r * ew, wd, d - dmin)
            _bit_write(data, pos + r * ew + wd, wo, p - base - r * slope)
            p += _write_adjacency(data, p, indices[a:a + d], d, cs)


@nb.njit(cache=True, nogil=True)
def renumber_range(indptr, indices, order, rank, out_indptr, out, lo, hi):
    """Rows ``lo..hi-1`` of the renumbered CSR, unsorted: internal node ``u`` is CSR node ``order[u]``,
    its neighbours ``rank[indices[...]]``, written to ``out[out_indptr[u]:out_indptr[u + 1]]``."""
    for u in range(lo, hi):
        src = order[u]
        a = indptr[src]
        d = indptr[src + 1] - a
        o = out_indptr[u]
        for t in range(d):
            out[o + t] = rank[indices[a + t]]


@nb.njit(cache=True, nogil=True)
def edge_permutation(indptr, indices, order, rank, out):
    """``out[e']`` = the original CSR position of the edge at position ``e'`` of the renumbered CSR
    (internal node ``u`` = original ``order[u]``, neighbours sorted by ``rank``): what carries per-edge
    arrays (weights, times) into the compressed store's order."""
    n = len(indptr) - 1
    e = 0
    for u in range(n):
        src = order[u]
        lo = indptr[src]
        d = indptr[src + 1] - lo
        keys = np.empty(d, dtype=np.int64)
        for t in range(d):
            keys[t] = rank[indices[lo + t]]
        idx = np.argsort(keys)
        for t in range(d):
            out[e + t] = lo + idx[t]
        e += d


@nb.njit(cache=True, nogil=True)
def strictly_sorted(indptr, indices):
    """Whether every adjacency of the CSR lists distinct values in increasing order."""
    for u in range(len(indptr) - 1):
        for e in range(indptr[u] + 1, indptr[u + 1]):
            if indices[e] <= indices[e - 1]:
                return False
    return True
