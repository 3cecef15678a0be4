"""Exact intersection-based PSD-ROC of frame scores at every threshold, vectorised.

The same quantities as sed_scores_eval 0.0.4's ``intersection_based.psds`` (J. Ebbers et
al., ICASSP 2022), with no Python loop over clips, classes or thresholds (docs/metrics.md):

1. Scores become integer ranks per class; a frame is active at threshold rank ``u`` when
   its rank is ``>= u``, as sed_scores_eval detects ``score >= threshold``.
2. Every detection of every threshold ("node") comes from one pass over all rows (clip x
   class): its frames ``[a, b)``, alive for threshold ranks in ``(lo, hi]``.
3. Each node is scored once against same-class references (DTC) and, for PSDS2, other-
   class ones (CTTC); it adds +1 FP (or cross-trigger) at ``hi`` and -1 at ``lo``. A
   reference's covered length changes by +- a passing node's intersection there; one
   sort of those changes gives its TP flag at every threshold.
4. Reverse cumulative sums over ranks give the counts per threshold; the ROC clean-up,
   interpolation over classes and staircase area follow sed_scores_eval line by line.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Nodes", "References", "Scored", "level_nodes", "median_filter_ranks",
           "psds_from_nodes", "score_nodes"]

_DECIMALS = 6  # sed_scores_eval's time_decimals
_PER_HOUR = 3600.0


def _batcher_pairs(n: int) -> list[tuple[int, int]]:
    """Compare-exchange pairs of Batcher's odd-even merge sort for n (a power of two) wires."""
    pairs = []
    p = 1
    while p < n:
        k = p
        while k >= 1:
            for j in range(k % p, n - k, 2 * k):
                for i in range(min(k, n - j - k)):
                    if (i + j) // (2 * p) == (i + j + k) // (2 * p):
                        pairs.append((i + j, i + j + k))
            k //= 2
        p *= 2
    return pairs


def median_filter_ranks(ranks: np.ndarray, window: int) -> np.ndarray:
    """Median over ``window`` values along the last axis, scipy's ``reflect`` border.

    Equal to ``scipy.ndimage.median_filter(ranks, size=(1, .., window), mode="reflect")``
    (for an even window, scipy's rank ``window // 2``). A median commutes with the
    monotone map from scores to ranks, so filtering ranks filters the scores. Computed
    with a pruned sorting network of element-wise min/max on small integer arrays.
    """
    if window <= 1:
        return ranks
    n = ranks.shape[-1]
    left, right = window // 2, window - 1 - window // 2
    if max(left, right) >= n:
        import scipy.ndimage as ndimage  # tiny clips only

        size = (1,) * (ranks.ndim - 1) + (window,)
        return ndimage.median_filter(ranks, size=size, mode="reflect")
    padded = np.concatenate(
        [ranks[..., :left][..., ::-1], ranks, ranks[..., n - right:][..., ::-1]], axis=-1)
    width = 1 << (window - 1).bit_length()
    wires: list[np.ndarray | None] = [padded[..., i:i + n] for i in range(window)]
    wires += [None] * (width - window)  # +infinity: a compare-exchange with it is a no-op
    pairs = _batcher_pairs(width)
    need, kept = {window // 2}, []
    for i, j in reversed(pairs):  # keep only what the median's wire depends on
        if i in need or j in need:
            need |= {i, j}
            kept.append((i, j))
    for i, j in reversed(kept):
        x, y = wires[i], wires[j]
        if x is None or y is None:
            continue  # min goes to i, max (the +infinity) to j: nothing moves
        wires[i], wires[j] = np.minimum(x, y), np.maximum(x, y)
    out = wires[window // 2]
    assert out is not None
    return out


@dataclass(frozen=True)
class Nodes:
    """Every distinct detection of every threshold: row (clip * C + class), frames
    ``[a, b)``, alive for threshold ranks in ``(lo, hi]`` (lo = -1: down to the lowest)."""

    row: np.ndarray
    a: np.ndarray
    b: np.ndarray
    hi: np.ndarray
    lo: np.ndarray


def _nearest(values: np.ndarray, live: np.ndarray, step: int, strict: bool) -> np.ndarray:
    """For each live index i of ``values``, the nearest j in direction ``step`` (-1 or +1)
    with ``values[j] < values[i]`` (``strict``) or ``<=``, by pointer jumping: if the
    candidate is still too large, everything between it and its own candidate is too, so
    i may jump there. Chains stop at the padding (-1), so rows never mix."""
    near = np.arange(step, values.size + step, dtype=np.int64)
    neighbour = np.full_like(values, -1)
    if step < 0:
        neighbour[1:] = values[:-1]
    else:
        neighbour[:-1] = values[1:]
    # The first comparison on contiguous arrays; most frames stop there.
    too_big = neighbour >= values if strict else neighbour > values
    todo = np.flatnonzero(too_big & live)
    while len(todo):
        cand = near[todo]
        too_big = values[cand] >= values[todo] if strict else values[cand] > values[todo]
        todo = todo[too_big]
        near[todo] = near[cand[too_big]]
    return near


def level_nodes(ranks: np.ndarray, n_scored: np.ndarray | None = None) -> Nodes:
    """The runs of ``ranks >= u`` for every u, from ranks ``[R rows, T]`` (-1: never active;
    with ``n_scored``, each row's frames from ``n_scored[row]`` on are never active too).

    The run at threshold ``ranks[i]`` that holds frame i spans from just after the
    previous frame ranked lower to just before the next one ranked lower; it is born at
    ``ranks[i]`` (its minimum) and merged away at the larger rank of those two
    neighbours. Frame i stands for the run when no frame of the same rank precedes it
    in it, i.e. when the previous frame ranked at most ``ranks[i]`` ranks lower.
    Plateaus of equal ranks are collapsed first (run-length), which leaves about a
    quarter of the frames of a median-filtered signal.
    """
    n_rows, n = ranks.shape
    width = n + 2  # one never-active frame each side: no chain crosses a row
    padded = np.full((n_rows, width), -1, dtype=np.int32)
    padded[:, 1:-1] = ranks
    if n_scored is not None:
        for n_row in np.unique(n_scored[n_scored < n]):  # a few distinct short lengths
            padded[n_scored == n_row, 1 + n_row:] = -1
    flat = padded.reshape(-1)
    change = np.ones(flat.size, dtype=bool)
    change[1:] = flat[1:] != flat[:-1]
    start = np.flatnonzero(change)  # first position of each plateau
    values = flat[start]
    live = values >= 0
    prev_le = _nearest(values, live, -1, strict=False)
    first = live & (values[prev_le] < values)
    idx = np.flatnonzero(first)
    next_lt = _nearest(values, first, +1, strict=True)[idx]
    prev = prev_le[idx]
    row = start[idx] // width
    base = row * width + 1
    return Nodes(row, start[prev + 1] - base, start[next_lt] - base,
                 values[idx].astype(np.int64),
                 np.maximum(values[prev], values[next_lt]).astype(np.int64))


def _pairs(key_nodes: np.ndarray, key_refs: np.ndarray,
           n_keys: int) -> tuple[np.ndarray, np.ndarray]:
    """All (node, reference) index pairs with equal keys; ``key_refs`` sorted, keys small
    non-negative integers (a table lookup instead of a search)."""
    per_key = np.bincount(key_refs, minlength=n_keys)
    first_of_key = np.cumsum(per_key) - per_key
    count = per_key[key_nodes]
    node = np.repeat(np.arange(len(key_nodes)), count)
    ends = np.cumsum(count)
    offset = np.arange(len(node)) - np.repeat(ends - count, count)
    return node, np.repeat(first_of_key[key_nodes], count) + offset


def _overlap(on: np.ndarray, off: np.ndarray, ref_on: np.ndarray, ref_off: np.ndarray):
    return np.maximum(np.minimum(off, ref_off) - np.maximum(on, ref_on), 0.0)


@dataclass(frozen=True)
class References:
    """Reference events sorted by (clip, class, onset), disjoint per clip and class."""

    clip: np.ndarray
    cls: np.ndarray
    onset_s: np.ndarray
    offset_s: np.ndarray


@dataclass(frozen=True)
class Scored:
    """What both PSDS scenarios share: the nodes (ranks renumbered per class to the ones
    where something changes), their times, and their intersections with same-class
    references (pair arrays, summed per node in reference order)."""

    nodes: Nodes
    cls: np.ndarray
    clip: np.ndarray
    on_s: np.ndarray
    off_s: np.ndarray
    n_ranks: np.ndarray
    pair_node: np.ndarray
    pair_ref: np.ndarray
    inter: np.ndarray
    covered: np.ndarray


def score_nodes(nodes: Nodes, on_s: np.ndarray, off_s: np.ndarray, refs: References,
                n_classes: int, n_ranks: np.ndarray) -> Scored:
    """Renumber the ranks and intersect the nodes with same-class references, once."""
    cls = nodes.row % n_classes
    width = int(n_ranks.max())
    if width <= 1024:  # few ranks (a threshold grid): nothing worth renumbering
        return _scored(nodes, cls, on_s, off_s, refs, n_classes, n_ranks)
    used = np.zeros(n_classes * width, dtype=bool)
    used[cls * width + nodes.hi] = True
    dead = nodes.lo >= 0
    used[cls[dead] * width + nodes.lo[dead]] = True
    new = np.cumsum(used) - 1
    per_class = used.reshape(n_classes, width).sum(axis=1)
    offset = np.concatenate([[0], np.cumsum(per_class)[:-1]])
    hi = new[cls * width + nodes.hi] - offset[cls]
    lo = np.where(dead, new[cls * width + np.maximum(nodes.lo, 0)] - offset[cls], -1)
    nodes = Nodes(nodes.row, nodes.a, nodes.b, hi, lo)
    return _scored(nodes, cls, on_s, off_s, refs, n_classes, np.maximum(per_class, 1))


def _scored(nodes: Nodes, cls: np.ndarray, on_s: np.ndarray, off_s: np.ndarray,
            refs: References, n_classes: int, n_ranks: np.ndarray) -> Scored:
    n_rows = int(nodes.row.max()) + 1 if len(nodes.row) else 0
    pn, pr = _pairs(nodes.row, refs.clip * n_classes + refs.cls, n_rows)
    inter = _overlap(on_s[pn], off_s[pn], refs.onset_s[pr], refs.offset_s[pr])
    covered = np.bincount(pn, weights=inter, minlength=len(cls))
    return Scored(nodes, cls, nodes.row // n_classes, on_s, off_s, n_ranks, pn, pr, inter,
                  covered)


def psds_from_nodes(
    scored: Scored, refs: References, *, n_classes: int, dataset_s: float,
    dtc: float, gtc: float, cttc: float | None, alpha_ct: float, alpha_st: float,
    max_efpr: float,
) -> tuple[float, np.ndarray]:
    """PSDS and per-class PSDS (NaN where a class has no reference) of one scenario."""
    nodes, cls, clip = scored.nodes, scored.cls, scored.clip
    on_s, off_s, n_ranks = scored.on_s, scored.off_s, scored.n_ranks
    pn, pr, inter = scored.pair_node, scored.pair_ref, scored.inter
    length = off_s - on_s
    # DTC: intersection with same-class references, summed in reference order.
    ref_key = refs.clip * n_classes + refs.cls
    passes = np.round(scored.covered, _DECIMALS) >= np.round(dtc * length, _DECIMALS)

    present = np.zeros(n_classes, dtype=bool)
    present[np.unique(refs.cls)] = True
    n_ref = np.bincount(refs.cls, minlength=n_classes)
    t_ref = np.bincount(refs.cls, weights=refs.offset_s - refs.onset_s, minlength=n_classes)
    ranks_all = int(n_ranks.max())
    # Deltas per (class, rank): TP, FP and, per other class, cross-triggers.
    tp = np.zeros((n_classes, ranks_all))
    fp = np.zeros((n_classes, ranks_all))

    def add(target: np.ndarray, k: np.ndarray, hi: np.ndarray, lo: np.ndarray) -> None:
        """+1 at each node's birth rank, -1 at its death rank, into target[k, rank]."""
        width = target.shape[1]
        target += np.bincount(k * width + hi, minlength=target.size).reshape(target.shape)
        dead = lo >= 0
        target -= np.bincount(k[dead] * width + lo[dead],
                              minlength=target.size).reshape(target.shape)

    fails = ~passes
    add(fp, cls[fails], nodes.hi[fails], nodes.lo[fails])

    # TP: a reference's covered length changes by +-intersection where a passing node is
    # born or dies; its TP flag is evaluated after all changes at one rank.
    good = passes[pn] & (inter > 0)
    g = np.concatenate([pr[good], pr[good]])
    rank = np.concatenate([nodes.hi[pn[good]], nodes.lo[pn[good]]])
    amount = np.concatenate([inter[good], -inter[good]])
    real = rank >= 0
    g, rank, amount = g[real], rank[real], amount[real]
    order = np.argsort(g * ranks_all + (ranks_all - 1 - rank), kind="stable")
    g, rank, amount = g[order], rank[order], amount[order]
    last = np.ones(len(g), dtype=bool)
    last[:-1] = (g[1:] != g[:-1]) | (rank[1:] != rank[:-1])
    total = np.cumsum(amount)
    first_of_g = np.ones(len(g), dtype=bool)
    first_of_g[1:] = g[1:] != g[:-1]
    g_start = np.maximum.accumulate(np.where(first_of_g, np.arange(len(g)), 0))
    before = np.where(g_start > 0, total[np.maximum(g_start - 1, 0)], 0.0)
    cov = (total - before)[last]
    g_l, rank_l = g[last], rank[last]
    ref_len = refs.offset_s - refs.onset_s
    flag = (np.round(cov, _DECIMALS) >= np.round(gtc * ref_len[g_l], _DECIMALS)).astype(float)
    prev = np.concatenate([[0.0], flag[:-1]])
    prev[np.flatnonzero(np.r_[True, g_l[1:] != g_l[:-1]])] = 0.0
    change = flag - prev
    tp += np.bincount(refs.cls[g_l] * ranks_all + rank_l, weights=change,
                      minlength=tp.size).reshape(tp.shape)
    # A zero-length reference meets any GTC: found from the row's top rank on.
    zero = ref_len <= 0
    if zero.any():
        top = np.full(int(nodes.row.max()) + 1 if len(nodes.row) else 0, -1)
        np.maximum.at(top, nodes.row, nodes.hi)
        rows = ref_key[zero]
        found = rows < len(top)
        top_z = top[rows[found]]
        ok = top_z >= 0
        np.add.at(tp, (refs.cls[zero][found][ok], top_z[ok]), 1.0)

    ct: tuple[np.ndarray, ...] | None = None
    if cttc is not None:
        # Cross-triggers: failing nodes against other-class references of their clip.
        fidx = np.flatnonzero(fails)
        qn, qr = _pairs(clip[fidx], refs.clip, int(clip.max()) + 1 if len(clip) else 0)
        node_q = fidx[qn]
        inter_q = _overlap(on_s[node_q], off_s[node_q], refs.onset_s[qr], refs.offset_s[qr])
        # Only other-class references that intersect can make a cross-trigger, unless
        # the detection is so short (< 2 us) that its rounded CTTC length is 0.
        keep = inter_q > 0
        zero_ct = np.round(cttc * length, _DECIMALS) <= 0
        if zero_ct.any():
            keep |= zero_ct[node_q]
        qn, qr, inter_q = qn[keep], qr[keep], inter_q[keep]
        other = refs.cls[qr] != cls[fidx[qn]]
        qn, qr, inter_q = qn[other], qr[other], inter_q[other]
        # Sum per (node, other class) in reference order (a clip's references are sorted
        # by class, so each node's pairs come grouped by class).
        key = qn * n_classes + refs.cls[qr]
        brk = np.ones(len(key), dtype=bool)
        brk[1:] = key[1:] != key[:-1]
        tot = np.bincount(np.cumsum(brk) - 1, weights=inter_q)
        uniq = key[brk]
        n_u, uk = fidx[uniq // n_classes], uniq % n_classes
        hit = np.round(tot, _DECIMALS) >= np.round(cttc * length[n_u], _DECIMALS)
        ct = (cls[n_u][hit], uk[hit], nodes.hi[n_u][hit], nodes.lo[n_u][hit])

    rocs = []
    per_class = np.full(n_classes, np.nan)
    kept = np.flatnonzero(present)
    for k in kept:
        u = int(n_ranks[k])
        # Counts at each threshold rank (highest first), then the no-detection point.
        tps = np.concatenate([np.cumsum(tp[k, :u][::-1]), [0.0]])
        fps = np.concatenate([np.cumsum(fp[k, :u][::-1]), [0.0]])
        tpr = tps / max(int(n_ref[k]), 1)
        fpr = fps / dataset_s
        if alpha_ct != 0.0:
            assert ct is not None
            mine = ct[0] == k
            cts = np.zeros((n_classes, u))  # [other class, rank] deltas
            add(cts, ct[1][mine], ct[2][mine], ct[3][mine])
            rates = [np.concatenate([np.cumsum(cts[j][::-1]), [0.0]])
                     / max(float(t_ref[j]), 1e-12) for j in kept if j != k]
            fpr = fpr + alpha_ct * np.mean(rates, axis=0)
        roc = _unique_cummax_sort(tpr, fpr * _PER_HOUR, max_efpr)
        rocs.append(roc)
        per_class[k] = _staircase_auc(roc[0], roc[1], max_efpr) / max_efpr
    etpr, efpr = _multi_class_roc(rocs, alpha_st, max_efpr)
    return _staircase_auc(etpr, efpr, max_efpr) / max_efpr, per_class


def _unique_cummax_sort(tpr: np.ndarray, efpr: np.ndarray, max_efpr: float):
    """sed_scores_eval's ``_unique_cummax_sort``: sort by (eFPR, TPR), keep the points
    where TPR's running maximum rises, the last of equal eFPRs, up to max_efpr."""
    order = np.lexsort((tpr, efpr))
    tpr, efpr = tpr[order], efpr[order]
    running = np.maximum.accumulate(tpr)
    idx = np.concatenate([[0], np.flatnonzero(running[1:] > running[:-1]) + 1])
    tpr, efpr = tpr[idx], efpr[idx]
    efpr, first = np.unique(efpr[::-1], return_index=True)
    tpr = tpr[::-1][first]
    cut = int(np.searchsorted(efpr, max_efpr, side="right"))
    return tpr[:cut], efpr[:cut]


def _multi_class_roc(rocs: list[tuple[np.ndarray, np.ndarray]], alpha_st: float,
                     max_efpr: float) -> tuple[np.ndarray, np.ndarray]:
    """Mean minus alpha_st x std of the per-class TPRs ('previous' interpolation)."""
    grid = np.unique(np.sort(np.concatenate([efpr for _, efpr in rocs])))
    at = [(tpr, np.searchsorted(efpr, grid, side="right") - 1) for tpr, efpr in rocs]
    curves = [np.where(i >= 0, tpr[np.maximum(i, 0)], 0.0) for tpr, i in at]
    etpr = np.maximum(np.mean(curves, axis=0) - alpha_st * np.std(curves, axis=0), 0.0)
    return np.concatenate([etpr, [etpr[-1]]]), np.concatenate([grid, [max_efpr]])


def _staircase_auc(y: np.ndarray, x: np.ndarray, max_x: float) -> float:
    order = np.argsort(x)
    x, y = x[order], y[order]
    cut = int(np.searchsorted(x, max_x, side="right"))
    x = np.concatenate([x[:cut], [max_x]])
    return float(sum((y[:cut] * (x[1:] - x[:-1])).tolist()))
