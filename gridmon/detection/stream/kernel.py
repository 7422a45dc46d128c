"""The compiled per-device loop of the streaming detector (numba).

`run_kernel` walks one device's readings in time order and updates its state arrays in place
(`state.py` names every slot). For each reading and metric:

1. Expectation. Two models: the *recent level* (Huber-clipped exponential mean, time constant
   `tau_recent_s`) and the *seasonal* one (a slow level plus the median of the same
   time-of-day slot over the previous `season_days` days, or, once two weeks are stored and
   it fits better by the same margin, of the same hour of the same weekday over the previous
   weeks). The seasonal model is used once it exists and cuts the residual scale to
   `season_gain` of the recent model's.
2. Scores of the residual z = (x − expected) / scale: point |z|, short shift |EWM(z)|·√span,
   spread EWM(min(|z|, 10)), flat run (identical consecutive values) and long shift. Across
   metrics the device shift energy D = mean EWM(z)²·span; optionally a forest score on the
   relation residuals (`forest.py`).
3. Each score is compared with its own calibrated threshold (`calib.py`) and with its recent
   peak; exceeding both opens an alarm, if the deviation in the metric's units is also beyond
   the largest normal one and the second largest peak of earlier short alarms (an event that
   keeps repeating pages twice, `repeat_readings`). On a device reporting faster than
   `on_delay_s`, an alarm whose score is less than twice its threshold opens only when the next
   reading is still beyond a threshold or outside the band (on-delay). An alarm clears after `off_readings` consecutive
   readings inside the expected band (short smoothed |z| and flat run below their band values)
   in which no score exceeds both (a condition still growing keeps its alarm: no chatter) and,
   once the alarm episode is longer than a short event (`repeat_readings`), no score beyond its
   threshold stands within a histogram bin of its recent peak (a condition still standing).
4. Learning. A metric's levels, scale and score histograms learn from its readings outside its
   own alarm (a device-level alarm holds only the device-level histograms); a condition older
   than `accept_after_s` is learnt again (accepted as normal). The seasonal rings (daily slots,
   weekly hours) always record:
   its median over days ignores one bad day, and a new daily pattern that repeats for two days
   becomes the expectation.

Strictly causal: a reading's verdict depends on it and on earlier readings only, so scoring a
series in one call or reading by reading gives the same flags.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from gridmon.detection.stream import state as S
from gridmon.detection.stream.calib import hbin, thresholds
from gridmon.domain.units import DAY_S

# Parameter positions (DetectorParams declaration order).
P_TAU_RECENT, P_TAU_SLOW, P_SEASON_DAYS, P_SEASON_GAIN, P_SPAN, P_SPAN_LONG, P_CLOSE_SPAN = 0, 1, 2, 3, 4, 5, 6
P_BUDGET, P_BAND_P, P_CAL_HALFLIFE, P_TAIL_Q, P_GAMMA_MAX, P_MIN_CAL, P_OFF_N = 7, 8, 9, 10, 11, 12, 13
P_OFF_S, P_ACCEPT, P_REC_S, P_REC_N, P_ALARM_WEIGHT, P_CLIP, P_FLOOR = 14, 15, 16, 17, 18, 19, 20
P_RATE_HALF, P_RATE_PRIOR, P_REFIT_PHASE, P_REPEAT_N, P_ON_S = 21, 22, 23, 24, 25

SLOT_S = DAY_S / S.SEASON_SLOTS
RECOMPUTE_EVERY = 32.0  # thresholds move slowly: refit a score's tail every 32 normal readings
# (the first fit when the score has `min_calibration` readings, the next `refit_phase` later)
# An alarm episode peaking below this ratio is 'low' severity (episodes.RATIO_STEPS[0]).
NUISANCE_RATIO = 2.0
# squared: a score at least this far past its threshold (not a low alarm) opens without the on-delay
STRONG2 = NUISANCE_RATIO * NUISANCE_RATIO
FLAT_FACTOR2 = 4.0  # squared: a stuck stretch is at least twice the longest completed normal run
# squared: a repeat of a short event is 'no larger' within the resolution of the score histograms
# (a bin is a factor 2^(3/16), about 14 %, in the metric's units); the scale a deviation is measured
# against moves by a few per cent between occurrences
REPEAT_TOLERANCE2 = 2.0 ** (2.0 * 3.0 / 16.0)
# Readings before the Huber clip of levels and scales applies (the running mean of the first ones
# sets them unclipped).
WARMUP = 20.0
SLOTS_PER_HOUR = S.SEASON_SLOTS // S.HOURS

# Trigger codes written to `out_trigger` at an onset: metric * 8 + score, or these.
TRIGGER_DEVICE = 1000
TRIGGER_FOREST = 1001
TRIGGER_RELATION = 1002
# The relation score's covariance: ridge added to its diagonal before inverting (a share of each
# variance: two metrics that always move together stay invertible); the floor of each variance (a
# metric's z has a mean square of about 1 or more by construction, its scale being the mean
# absolute residual: a variance far below it is a metric that hardly moved, whose first move must
# not count as hundreds of standard deviations); and the clip of the z it learns from (a wild
# reading moves it no more than a 10-scale one)
RELATION_RIDGE = 0.05
RELATION_VAR_FLOOR = 0.1
RELATION_CLIP = 10.0


@nb.njit(cache=True, inline="always")
def _median_small(buf: np.ndarray, n: int) -> float:
    for i in range(1, n):
        v = buf[i]
        k = i - 1
        while k >= 0 and buf[k] > v:
            buf[k + 1] = buf[k]
            k -= 1
        buf[k + 1] = v
    if n % 2 == 1:
        return buf[n // 2]
    return 0.5 * (buf[n // 2 - 1] + buf[n // 2])


@nb.njit(cache=True)
def _forest_score(
    feats: np.ndarray,
    w_feature: np.ndarray,
    w_threshold: np.ndarray,
    w_left: np.ndarray,
    w_right: np.ndarray,
    w_weight: np.ndarray,
    w_roots: np.ndarray,
    depth: int,
    norm: float,
    f32: np.ndarray,
    at: np.ndarray,
) -> float:
    """The forest's score of one feature row, walking every tree a level per step
    (`forest.ForestWalk`); `f32` (one per feature) and `at` (one per tree) are scratch space."""
    for i in range(feats.shape[0]):
        f32[i] = np.float64(np.float32(feats[i]))  # scikit-learn compares float32 features
    trees = w_roots.shape[0] - 1
    for tree in range(trees):
        at[tree] = w_roots[tree]
    for _ in range(depth):
        for tree in range(trees):
            node = at[tree]
            at[tree] = w_left[node] if f32[w_feature[node]] <= w_threshold[node] else w_right[node]
    total = 0.0
    for tree in range(trees):
        total += w_weight[at[tree]]
    return 2.0 ** (-total / norm)


@nb.njit(cache=True, inline="always")
def _relation_residuals(feats, rel, mean, k, out):  # type: ignore[no-untyped-def]
    """The forest's inputs (`forest.relation_features`): per block b (z, short shift) and metric
    j, rel[b, j] · (x_b − mean[b]), with x_b the block's column of the context features."""
    for b in range(rel.shape[0]):
        for j in range(k):
            acc = 0.0
            for i in range(k):
                acc += rel[b, j, i] * (feats[3 * i + b] - mean[b, i])
            out[b * k + j] = acc


@nb.njit(cache=True, inline="always")
def _relation_size(rfeats, j, k):  # type: ignore[no-untyped-def]
    """Metric j's largest relation residual (of z and of the short shift), in absolute value."""
    return max(abs(rfeats[j]), abs(rfeats[k + j]))


@nb.njit(cache=True)
def _renormalise(dev, hist, cal, dhist, dcal, fhist, fcal, rhist, rcal):  # type: ignore[no-untyped-def]
    w = dev[S.D_WEIGHT]
    inv = 1.0 / w
    hist *= np.float32(inv)
    dhist *= np.float32(inv)
    fhist *= np.float32(inv)
    rhist *= np.float32(inv)
    rcal[S.C_TOTAL] *= inv
    cal[:, :, :, S.C_TOTAL] *= inv
    cal[:, :, :, S.C_REP1] *= inv
    cal[:, :, :, S.C_REP2] *= inv
    dcal[S.C_TOTAL] *= inv
    fcal[S.C_TOTAL] *= inv
    dev[S.D_WEIGHT] = 1.0


@nb.njit(cache=True)
def _forget_variation(met, fam, cal, hist, j):  # type: ignore[no-untyped-def]
    """Metric j's learnt variation starts again (levels and seasonal ring are kept)."""
    met[j, S.M_NJ] = 0.0
    met[j, S.M_NU] = 0.0
    met[j, S.M_AAB0] = 0.0
    met[j, S.M_AAB1] = 0.0
    met[j, S.M_NAB] = 0.0
    met[j, S.M_ALARM] = 0.0  # a constant that ended (a stuck start) is over
    met[j, S.M_BELOW] = 0.0
    met[j, S.M_EP_CLEAR] = 0.0
    for f in range(S.FAMILIES):
        _forget_family(fam, cal, hist, j, f)


@nb.njit(cache=True, inline="always")
def _clear_new_days(ring, cur_day, day):  # type: ignore[no-untyped-def]
    """Empty the rows of a day ring (k × days × slots) for the days after `cur_day` up to `day`."""
    size = ring.shape[1]
    first = day - size + 1 if cur_day < 0 or day - cur_day >= size else cur_day + 1
    for dd in range(int(first), int(day) + 1):
        ring[:, int(dd) % size, :] = np.nan


@nb.njit(cache=True)
def _forget_family(fam, cal, hist, j, f):  # type: ignore[no-untyped-def]
    """Metric j's expectation model f learns its residuals afresh."""
    fam[j, f, :] = 0.0
    fam[j, f, S.F_EA] = 1.0
    cal[j, f, :, :] = 0.0
    hist[j, f, :, :] = 0.0


@nb.njit(cache=True, inline="always")
def _learn_score(h, c, x2, raw2, w, count_min, q, p_on, band_p, gmax, max_decay, phase):  # type: ignore[no-untyped-def]
    h[hbin(x2)] += np.float32(w)
    c[S.C_RAW] = max(c[S.C_RAW] * max_decay, raw2)  # the same, in the metric's own units
    c[S.C_TOTAL] += w
    c[S.C_COUNT] += 1.0
    c[S.C_MAX] = max(c[S.C_MAX] * max_decay, x2)  # the largest normal value, forgotten like the histogram
    c[S.C_SINCE] += 1.0
    if c[S.C_COUNT] >= count_min and (c[S.C_SINCE] >= RECOMPUTE_EVERY or c[S.C_THR] == 0.0):
        c[S.C_SINCE] = -phase if c[S.C_THR] == 0.0 else 0.0
        qq = min(max(50.0 / c[S.C_COUNT], 1e-3), q)
        c[S.C_THR], c[S.C_BAND] = thresholds(h, c[S.C_TOTAL], w, qq, p_on, band_p, gmax, c[S.C_MAX])


@nb.njit(cache=True, inline="always")
def _record_repeat(cal, j, w):  # type: ignore[no-untyped-def]
    """Metric j's short alarm episode is over: its peaks (metric's units, per model and score)
    join the two largest of earlier short episodes. A new event must beat the second of them to
    alarm: the first two occurrences of a repeating event page, later ones do not. They are
    stored times the decay weight `w` of now (divided by the weight of the time they are read,
    they have decayed like the histograms, at no cost per reading)."""
    for f in range(S.FAMILIES):
        for i in range(S.N_SCORES):
            c = cal[j, f, i]
            peak = c[S.C_EPK] * w
            if peak > c[S.C_REP1]:
                c[S.C_REP2] = c[S.C_REP1]
                c[S.C_REP1] = peak
            elif peak > c[S.C_REP2]:
                c[S.C_REP2] = peak


@nb.njit(cache=True, inline="always")
def _nuisance_factor(dev, gap, P):  # type: ignore[no-untyped-def]
    """How many times the budget this device's nuisance alarms come (at least 1): every tail
    probability is divided by it. Counts and watched days decay with `rate_halflife_s`; a prior of
    `rate_prior_s` at the budget's rate keeps a few early alarms from moving it."""
    if P[P_RATE_HALF] <= 0.0:
        return 1.0
    if gap > 0.0:
        keep = 2.0 ** (-gap / P[P_RATE_HALF])
        dev[S.D_NUISANCE] *= keep
        dev[S.D_WATCHED] = dev[S.D_WATCHED] * keep + gap / DAY_S
    prior = P[P_RATE_PRIOR] / DAY_S
    rate = (dev[S.D_NUISANCE] + P[P_BUDGET] * prior) / (dev[S.D_WATCHED] + prior)
    return max(1.0, rate / P[P_BUDGET])


@nb.njit(cache=True, inline="always")
def _count_nuisance(dev, any_alarm, ratio, span):  # type: ignore[no-untyped-def]
    """Episode bookkeeping for the nuisance rate. Alarms less than `span` readings apart are one
    episode (chatter is one condition); an episode is a nuisance when it stayed low (peak ratio
    below NUISANCE_RATIO) and short (first onset to last clear within `span` readings). It is
    judged `span` readings after its last alarm cleared."""
    n = dev[S.D_N]
    if any_alarm:
        if dev[S.D_IN_ALARM] == 0.0 and (dev[S.D_EPISODE_N] == 0.0 or n - dev[S.D_CLEAR_N] > span):
            dev[S.D_EPISODE_N] = n
            dev[S.D_EPISODE_PEAK] = ratio
        else:
            dev[S.D_EPISODE_PEAK] = max(dev[S.D_EPISODE_PEAK], ratio)
    elif dev[S.D_IN_ALARM] > 0.0:
        dev[S.D_CLEAR_N] = n
    elif (
        dev[S.D_EPISODE_N] > 0.0
        and n - dev[S.D_CLEAR_N] == span + 1.0
        and dev[S.D_EPISODE_PEAK] < NUISANCE_RATIO
        and dev[S.D_CLEAR_N] - dev[S.D_EPISODE_N] <= span
    ):
        dev[S.D_NUISANCE] += 1.0
    dev[S.D_IN_ALARM] = 1.0 if any_alarm else 0.0


@nb.njit(cache=True, inline="always")
def _device_alarm(dev, slots, score, c, off_n, on_n, may_open, now, rec_dec2):  # type: ignore[no-untyped-def]
    """The alarm of a device-level score (shift energy, forest, relation): `slots` is the first of
    its four consecutive slots (alarm, readings inside the band, opening time, recent peak) and the
    slot of its on-delay count.
    It opens when the score is beyond its threshold and its recent peak (and `may_open`) and then
    stays outside its band for `on_n` readings in all, or is twice past its threshold; clears
    after `off_n` readings inside its band. True when it opened at this reading."""
    a, pending = slots
    opened = False
    hit = score > c[S.C_THR] and score > dev[a + 3]
    if dev[a] > 0.0:
        dev[a + 1] = dev[a + 1] + 1.0 if score <= c[S.C_BAND] else 0.0
        if dev[a + 1] >= off_n:
            dev[a] = 0.0
    elif may_open and (hit or (dev[pending] > 0.0 and score > c[S.C_BAND])):
        dev[pending] += 1.0
        if dev[pending] >= on_n or score > STRONG2 * c[S.C_THR]:
            dev[a] = 1.0
            dev[a + 1] = 0.0
            dev[a + 2] = now
            dev[pending] = 0.0
            opened = True
    else:
        dev[pending] = 0.0
    dev[a + 3] = max(dev[a + 3] * rec_dec2, score)
    return opened


@nb.njit(cache=True)
def _forget_relation(dev, rel, rhist, rcal):  # type: ignore[no-untyped-def]
    """The relation score starts again: its covariance, histogram, calibration and alarm."""
    rel[:, :] = 0.0
    rhist[:] = 0.0
    rcal[:] = 0.0
    for slot in S.R_SLOTS:
        dev[slot] = 0.0


@nb.njit(cache=True, inline="always")
def _learn_relation(rel, dev, feats, k, a, first, m):  # type: ignore[no-untyped-def]
    """One normal reading into the running mean and covariance of the metrics' z (exponentially
    weighted with `a`); the precision is refitted after `first` readings and then every
    RECOMPUTE_EVERY, from the covariance with a floor and a ridge on its diagonal (by Gauss-Jordan
    elimination in place: the matrix is symmetric positive definite, so no pivoting is needed,
    and nothing is allocated)."""
    mc = 2 * k
    for i in range(k):
        zi = min(max(feats[3 * i], -RELATION_CLIP), RELATION_CLIP)
        m[i, 0] = zi - rel[i, mc]  # the deviation from the mean before this reading
    keep = 1.0 - a
    for i in range(k):
        adi = a * m[i, 0]
        for j in range(i, k):
            v = keep * (rel[i, j] + adi * m[j, 0])
            rel[i, j] = v
            rel[j, i] = v
        rel[i, mc] += adi
    dev[S.R_N] += 1.0
    dev[S.R_SINCE] += 1.0
    if dev[S.R_N] == first or (dev[S.R_N] > first and dev[S.R_SINCE] >= RECOMPUTE_EVERY):
        dev[S.R_SINCE] = 0.0
        for i in range(k):
            for j in range(k):
                m[i, j] = rel[i, j]
            m[i, i] = max(rel[i, i], RELATION_VAR_FLOOR) * (1.0 + RELATION_RIDGE)
        for i in range(k):
            for j in range(k):
                rel[i, k + j] = 1.0 if i == j else 0.0
        for c in range(k):
            piv = 1.0 / m[c, c]
            for j in range(k):
                m[c, j] *= piv
                rel[c, k + j] *= piv
            for r in range(k):
                f = m[r, c]
                if r != c and f != 0.0:
                    for j in range(k):
                        m[r, j] -= f * m[c, j]
                        rel[r, k + j] -= f * rel[c, k + j]


@nb.njit(cache=True)
def run_kernel(  # type: ignore[no-untyped-def]
    ts,
    X,
    start,
    P,
    dev,
    met,
    fam,
    hist,
    cal,
    ring,
    wring,
    dhist,
    dcal,
    fhist,
    fcal,
    rel,
    rhist,
    rcal,
    f_feature,
    f_threshold,
    f_left,
    f_right,
    f_weight,
    f_roots,
    f_depth,
    f_norm,
    f_rel,
    f_rel_mean,
    out_flag,
    out_mflag,
    out_ratio,
    out_expected,
    out_halfband,
    out_trigger,
    out_features,
):
    n, k = X.shape
    span = P[P_SPAN]
    a_s = 2.0 / (span + 1.0)
    a_l = 2.0 / (P[P_SPAN_LONG] + 1.0)
    a_c = 2.0 / (P[P_CLOSE_SPAN] + 1.0)
    sq_s = math.sqrt(span)
    sq_l = math.sqrt(P[P_SPAN_LONG])
    wc = 2.0 * P[P_SPAN_LONG]
    season_days = int(P[P_SEASON_DAYS])
    clip = P[P_CLIP]
    min_cal = P[P_MIN_CAL]
    q = P[P_TAIL_Q]
    gmax = P[P_GAMMA_MAX]
    band_p = P[P_BAND_P]
    phase = P[P_REFIT_PHASE]
    accept = P[P_ACCEPT]
    has_forest = f_norm > 0.0
    # per metric its scores; per device of two metrics or more the shift energy and the relation
    ntests = k * S.N_SCORES + (2 if k >= 2 else 0) + (1 if has_forest else 0)
    R = ring.shape[1]
    RW = wring.shape[1]
    nfeat = 3 * k
    sc = np.zeros((k, 2, S.N_SCORES))
    resid = np.zeros((k, 2))
    seas = np.zeros(k)
    has_s = np.zeros(k, np.bool_)
    valid = np.zeros(k, np.bool_)
    ended = np.zeros(k)  # length of a run of equal values that ended at this reading (0: none)
    sel = np.zeros(k, np.int64)
    feats = np.zeros(max(nfeat, 1))
    nrel = f_rel.shape[0] * k  # the forest's inputs: relation residuals of z and of the short shift
    rfeats = np.zeros(max(nrel, 1))
    f32 = np.zeros(max(nrel, 1))
    f_at = np.zeros(max(f_roots.shape[0] - 1, 1), np.int64)
    buf = np.zeros(max(season_days, 1))
    wbuf = np.zeros(S.WEEK_WEEKS)
    seas_d = np.zeros(k)
    seas_w = np.zeros(k)
    has_w = np.zeros(k, np.bool_)
    zr = np.zeros(k)  # the metrics' z less their running mean (relation score)
    pz = np.zeros(k)  # the precision times zr: (P·zr)ⱼ·zrⱼ is metric j's share of T²
    rfit = np.zeros((k, k))
    for t in range(n):
        now = ts[t]
        # ---- clock: cadence, decay weight, seasonal slots
        gap = 0.0
        # A late reading (older than one already seen) is scored, but does not move the clock
        # or the seasonal ring.
        late = dev[S.D_N] > 0 and now < dev[S.D_LAST_TS]
        if dev[S.D_N] > 0:
            gap = now - dev[S.D_LAST_TS]
            if gap > 0.0:
                dt0 = dev[S.D_DT]
                dev[S.D_DT] = gap if dt0 == 0.0 else dt0 + 0.05 * (min(gap, 4.0 * dt0) - dt0)
            else:
                gap = 0.0
        dev[S.D_N] += 1.0
        dev[S.D_LAST_TS] = max(dev[S.D_LAST_TS], now) if dev[S.D_N] > 1 else now
        dt = dev[S.D_DT] if dev[S.D_DT] > 0.0 else 1.0
        if gap > 0.0:
            dev[S.D_WEIGHT] *= 2.0 ** (gap / P[P_CAL_HALFLIFE])
            if dev[S.D_WEIGHT] > 1e20:
                _renormalise(dev, hist, cal, dhist, dcal, fhist, fcal, rhist, rcal)
        w = dev[S.D_WEIGHT]
        inv_w = 1.0 / w
        rec_half = max(P[P_REC_S], P[P_REC_N] * dt)
        rec_dec2 = 2.0 ** (-2.0 * gap / rec_half)
        day = math.floor(now / DAY_S)
        slot = int((now - day * DAY_S) / SLOT_S) % S.SEASON_SLOTS
        cur_day = dev[S.D_DAY]
        if not late and (day != cur_day or slot != dev[S.D_SLOT]):
            if dev[S.D_SLOT] >= 0.0 and cur_day >= 0.0:
                old = int(dev[S.D_SLOT])
                for j in range(k):
                    if met[j, S.M_SLOT_CNT] > 0.0:
                        ring[j, int(cur_day) % R, old] = met[j, S.M_SLOT_SUM] / met[j, S.M_SLOT_CNT]
                if day != cur_day or slot // SLOTS_PER_HOUR != old // SLOTS_PER_HOUR:
                    # the hour just ended: its mean (of the slots that had readings) for the weekly profile
                    h = old // SLOTS_PER_HOUR
                    for j in range(k):
                        tot = 0.0
                        cnt = 0
                        for q2 in range(h * SLOTS_PER_HOUR, (h + 1) * SLOTS_PER_HOUR):
                            v = ring[j, int(cur_day) % R, q2]
                            if not math.isnan(v):
                                tot += v
                                cnt += 1
                        wring[j, int(cur_day) % RW, h] = tot / cnt if cnt > 0 else np.nan
            for j in range(k):
                met[j, S.M_SLOT_SUM] = 0.0
                met[j, S.M_SLOT_CNT] = 0.0
            if day != cur_day:
                _clear_new_days(ring, cur_day, day)
                _clear_new_days(wring, cur_day, day)
            dev[S.D_DAY] = day
            dev[S.D_SLOT] = slot
        off_n = max(1.0, min(P[P_OFF_N], math.ceil(P[P_OFF_S] / dt)))
        # on-delay: a second reading confirms a low alarm where readings come faster than it
        on_n = 2.0 if dt < P[P_ON_S] else 1.0
        p_on = P[P_BUDGET] * dt / DAY_S / ntests
        p_on /= _nuisance_factor(dev, gap, P)
        max_decay = 0.5 ** (dt / P[P_CAL_HALFLIFE])
        # ---- per metric: expectation, scores, alarm state
        ratio = 0.0
        dsum = 0.0
        dcount = 0
        trigger = -1
        for j in range(k):
            x = X[t, j]
            valid[j] = not math.isnan(x)
            out_mflag[t, j] = met[j, S.M_ALARM] > 0.0
            out_expected[t, j] = np.nan
            out_halfband[t, j] = np.nan
            if not valid[j]:
                continue
            met[j, S.M_SEEN] += 1.0
            if met[j, S.M_SEEN] == 1.0:
                met[j, S.M_L0] = x
                met[j, S.M_L1] = x
            floor = max(P[P_FLOOR] * met[j, S.M_NU], 1e-12)
            nb_ = 0
            for d in range(1, season_days + 1):
                v = ring[j, int(day - d) % R, slot]
                if not math.isnan(v):
                    buf[nb_] = v
                    nb_ += 1
            has_s[j] = nb_ >= 2
            seas_d[j] = _median_small(buf, nb_) if has_s[j] else 0.0
            nw = 0
            hour = slot // SLOTS_PER_HOUR
            for wk in range(1, S.WEEK_WEEKS + 1):
                v = wring[j, int(day - 7 * wk) % RW, hour]
                if not math.isnan(v):
                    wbuf[nw] = v
                    nw += 1
            has_w[j] = has_s[j] and nw >= 2
            seas_w[j] = _median_small(wbuf, nw) if has_w[j] else 0.0
            # The weekly profile (same hour, same weekday) replaces the daily one once its track
            # record is better by the margin the seasonal model needs over the recent one, and
            # stays until it is no better at all (hysteresis: no flapping between the two).
            if met[j, S.M_NAW] > 50.0:
                bar = 1.0 if met[j, S.M_WEEK] > 0.0 else P[P_SEASON_GAIN]
                week = 1.0 if met[j, S.M_AABW] < bar * met[j, S.M_AABD] else 0.0
                if week != met[j, S.M_WEEK]:
                    # The seasonal model's residuals change with its profile: what its scale,
                    # histograms and records learnt describes the other profile. It learns anew
                    # (the recent model watches meanwhile).
                    _forget_family(fam, cal, hist, j, 1)
                    met[j, S.M_WEEK] = week
            seas[j] = seas_w[j] if (has_w[j] and met[j, S.M_WEEK] > 0.0) else seas_d[j]
            ended[j] = 0.0
            if x == met[j, S.M_PREV]:
                met[j, S.M_RUN] += 1.0
            else:
                ended[j] = met[j, S.M_RUN]
                met[j, S.M_RUN] = 1.0
                if ended[j] > WARMUP and ended[j] >= met[j, S.M_SEEN] - 1.0:
                    # The first change of a metric constant for longer than the warm-up: all it
                    # learnt of its variation is a scale at the floor, which the Huber clip would
                    # let grow by a fraction per reading, and scores of astronomic size would
                    # fill its histograms: it would be blind for days. It starts learning afresh.
                    _forget_variation(met, fam, cal, hist, j)
                    # and so does the relation score: its covariance learnt the metric constant
                    _forget_relation(dev, rel, rhist, rcal)
            met[j, S.M_PREV] = x
            for f in range(2):
                if f == 1 and not has_s[j]:
                    continue
                r = x - (met[j, S.M_L0] if f == 0 else met[j, S.M_L1] + seas[j])
                resid[j, f] = r
                z = r / max(fam[j, f, S.F_SCALE], floor)
                fam[j, f, S.F_EWZ] += a_s * (z - fam[j, f, S.F_EWZ])
                fam[j, f, S.F_EA] += a_s * (min(abs(z), 10.0) - fam[j, f, S.F_EA])
                fam[j, f, S.F_EWL] += a_l * (z - fam[j, f, S.F_EWL])
                fam[j, f, S.F_EWC] += a_c * (z - fam[j, f, S.F_EWC])
                sc[j, f, S.S_POINT] = abs(z)
                sc[j, f, S.S_SHIFT] = abs(fam[j, f, S.F_EWZ]) * sq_s
                sc[j, f, S.S_SPREAD] = fam[j, f, S.F_EA]
                sc[j, f, S.S_FLAT] = met[j, S.M_RUN]
                sc[j, f, S.S_LONG] = abs(fam[j, f, S.F_EWL]) * sq_l
            seasonal_better = met[j, S.M_AAB1] < P[P_SEASON_GAIN] * met[j, S.M_AAB0]
            # the seasonal model takes over only once its scores are calibrated (until then its
            # alarms could not open, and the device would be unwatched)
            calibrated = cal[j, 1, S.S_POINT, S.C_COUNT] >= min_cal
            s = 1 if (has_s[j] and met[j, S.M_NAB] > 50.0 and seasonal_better and calibrated) else 0
            sel[j] = s
            met[j, S.M_SEL] = s
            if fam[j, s, S.F_COUNT] >= wc:
                # device-level scores (shift energy, forest, relation) judge the metrics past their
                # warm-up: a metric new to the device, or learning its variation afresh, has no
                # meaningful z yet (its first readings against a level that starts at one value)
                dsum += fam[j, s, S.F_EWZ] ** 2
                dcount += 1
            feats[3 * j] = resid[j, s] / max(fam[j, s, S.F_SCALE], floor)
            feats[3 * j + 1] = fam[j, s, S.F_EWZ] * sq_s
            feats[3 * j + 2] = fam[j, s, S.F_EA]
            hit = False
            stand = False
            over = False  # a score beyond its threshold and its record guard
            strong = False  # a score that would open an alarm is twice past its threshold
            scl = max(fam[j, s, S.F_SCALE], floor)
            for i in range(S.N_SCORES):
                c = cal[j, s, i]
                if c[S.C_COUNT] >= min_cal and c[S.C_THR] > 0.0:
                    x2 = sc[j, s, i] ** 2
                    ratio = max(ratio, math.sqrt(x2 / c[S.C_THR]))
                    # Record guard in the metric's own units: a deviation no larger than one seen
                    # in normal operation does not alarm, however much the scale has shrunk since
                    # (sparse, spiky series), nor one no larger than two earlier short alarms
                    # (a repeating event); a flat run must outlast every normal one FLAT_FACTOR times.
                    if i == S.S_FLAT:
                        beyond = x2 > FLAT_FACTOR2 * c[S.C_RAW]
                    else:
                        beyond = x2 * scl * scl > max(c[S.C_RAW], REPEAT_TOLERANCE2 * c[S.C_REP2] * inv_w)
                    # The recent-peak guard keeps the tail of one event from re-opening an alarm;
                    # a flat run starts from 1 with every new stuck stretch, so it needs none.
                    if t >= start and x2 > c[S.C_THR] and beyond:
                        over = True
                        # within the histograms' resolution of its recent peak: still standing
                        stand = stand or i == S.S_FLAT or x2 * REPEAT_TOLERANCE2 > c[S.C_REC]
                        if i == S.S_FLAT or x2 > c[S.C_REC]:
                            hit = True
                            strong = strong or x2 > STRONG2 * c[S.C_THR]
                            if trigger < 0:
                                trigger = j * 8 + i
            scale = max(fam[j, s, S.F_SCALE], floor)
            out_expected[t, j] = met[j, S.M_L0] if s == 0 else met[j, S.M_L1] + seas[j]
            bp = cal[j, s, S.S_POINT, S.C_BAND]
            out_halfband[t, j] = math.sqrt(bp) * scale if bp > 0.0 else np.nan
            seen = met[j, S.M_SEEN]
            # A run of equal values is over when it is within the flat run's band and no longer than
            # a stuck one (FLAT_FACTOR times the longest normal run that has ended): once a stuck
            # stretch is older than `accept` its growing run enters the histogram and lifts the
            # band, but the run is stuck for as long as it lasts.
            run2 = sc[j, s, S.S_FLAT] ** 2
            cf = cal[j, s, S.S_FLAT]
            flat_ok = run2 <= cf[S.C_BAND] and (cf[S.C_RAW] <= 0.0 or run2 <= FLAT_FACTOR2 * cf[S.C_RAW])
            inband = abs(fam[j, s, S.F_EWC]) <= math.sqrt(bp) and flat_ok
            if met[j, S.M_ALARM] > 0.0:
                # A condition still growing (a score beyond its threshold and its recent peak: what
                # would open an alarm) keeps the alarm: otherwise a slow rise that the band no
                # longer sees would clear and re-open it every few readings (chatter). So does one
                # still standing at its peak, once the episode is longer than a short event: a
                # plateau beyond the threshold clears whenever three readings happen not to top
                # the peak, and re-opens at the next that does. A short event is never held, so it
                # stays short and can be learnt as a repeat.
                held = stand and seen - met[j, S.M_EP_START] > P[P_REPEAT_N]
                met[j, S.M_BELOW] = met[j, S.M_BELOW] + 1.0 if inband and not (hit or held) else 0.0
                if met[j, S.M_BELOW] >= off_n:
                    met[j, S.M_ALARM] = 0.0
                    met[j, S.M_EP_CLEAR] = seen
            elif hit or (met[j, S.M_PENDING] > 0.0 and (over or not inband)):
                # On-delay: a low alarm on a fast device opens once the next reading is still beyond
                # a threshold or outside the band (a glitch of one reading is back inside). A slow
                # creep confirms on its smoothed scores.
                met[j, S.M_PENDING] += 1.0
                if met[j, S.M_PENDING] >= on_n or strong:
                    met[j, S.M_PENDING] = 0.0
                    met[j, S.M_ALARM] = 1.0
                    met[j, S.M_BELOW] = 0.0
                    met[j, S.M_OPEN] = now
                    if not (met[j, S.M_EP_CLEAR] > 0.0 and seen - met[j, S.M_EP_CLEAR] <= span):
                        # a new episode (alarms fewer than `span` readings apart are one: chatter)
                        met[j, S.M_EP_START] = seen
                        cal[j, :, :, S.C_EPK] = 0.0
                    met[j, S.M_EP_CLEAR] = 0.0
            else:
                met[j, S.M_PENDING] = 0.0
            if met[j, S.M_ALARM] > 0.0:
                for f in range(2):
                    if f == 0 or has_s[j]:
                        sf = max(fam[j, f, S.F_SCALE], floor) ** 2
                        for i in range(S.N_SCORES):
                            cal[j, f, i, S.C_EPK] = max(cal[j, f, i, S.C_EPK], sc[j, f, i] ** 2 * sf)
            elif met[j, S.M_EP_CLEAR] > 0.0 and seen - met[j, S.M_EP_CLEAR] > span:
                # the episode is over; short ones (first onset to last clear) are repeat candidates
                if met[j, S.M_EP_CLEAR] - met[j, S.M_EP_START] <= P[P_REPEAT_N]:
                    _record_repeat(cal, j, w)
                met[j, S.M_EP_CLEAR] = 0.0
            out_mflag[t, j] = met[j, S.M_ALARM] > 0.0
            for f in range(2):
                if f == 1 and not has_s[j]:
                    continue
                for i in range(S.N_SCORES):
                    if cal[j, f, i, S.C_COUNT] >= min_cal:
                        cal[j, f, i, S.C_REC] = max(cal[j, f, i, S.C_REC] * rec_dec2, sc[j, f, i] ** 2)
        # ---- device shift energy (a relation across metrics: with one metric it would only
        # repeat that metric's shift score, without its record guard)
        dscore = dsum * span / dcount if dcount > 0 else 0.0
        if dcount > 0 and dcal[S.C_COUNT] >= min_cal and dcal[S.C_THR] > 0.0 and (dcount >= 2 or dev[S.D_ALARM] > 0.0):
            ratio = max(ratio, math.sqrt(dscore / dcal[S.C_THR]))
            alarm = S.D_ALARM, S.D_PENDING
            if _device_alarm(dev, alarm, dscore, dcal, off_n, on_n, t >= start, now, rec_dec2) and trigger < 0:
                trigger = TRIGGER_DEVICE
        # ---- forest on the relation residuals of the context features
        fscore2 = 0.0
        for j in range(k):
            if not valid[j]:
                feats[3 * j] = 0.0
                feats[3 * j + 1] = 0.0
                feats[3 * j + 2] = 1.0
        # A relation is judged only on readings that carry every metric: with one side missing,
        # its relation residuals would measure the gap, not the device (the alarm stays as it is)
        if has_forest and dcount == k:
            _relation_residuals(feats, f_rel, f_rel_mean, k, rfeats)
            fs = _forest_score(
                rfeats, f_feature, f_threshold, f_left, f_right, f_weight, f_roots, f_depth, f_norm, f32, f_at
            )
            # as odds s/(1 − s): the score is bounded below 1 and crowds its largest values just
            # under the bound, closer together than the histograms resolve; the odds spread them
            fo = fs / max(1.0 - fs, 1e-9)
            fscore2 = fo * fo
            if fcal[S.C_COUNT] >= min_cal and fcal[S.C_THR] > 0.0:
                ratio = max(ratio, math.sqrt(fscore2 / fcal[S.C_THR]))
                alarm = S.F_ALARM, S.F_PENDING
                if _device_alarm(dev, alarm, fscore2, fcal, off_n, on_n, t >= start, now, rec_dec2) and trigger < 0:
                    trigger = TRIGGER_FOREST
        elif not has_forest:
            dev[S.F_ALARM] = 0.0  # the forest it came from is no longer in use
            dev[S.F_PENDING] = 0.0
        if out_features.shape[0] == n:
            for c2 in range(nfeat):
                out_features[t, c2] = feats[c2]
        # ---- relation: Hotelling's T² of the metrics' z on their running covariance. A reading
        # whose metrics have each moved within their own band, but not as they move together
        # (a temperature at its expected value while the load it follows has dropped), is far
        # out here. Judged, like the forest, on readings that carry every metric.
        rscore = 0.0
        r_scored = k >= 2 and dcount == k and dev[S.R_N] >= P[P_SPAN_LONG]
        if r_scored:
            for j in range(k):
                zr[j] = feats[3 * j] - rel[j, 2 * k]
            for i2 in range(k):
                acc = 0.0
                for j in range(k):
                    acc += rel[i2, k + j] * zr[j]
                pz[i2] = acc
                rscore += zr[i2] * acc
            rscore = max(rscore, 0.0)
            if rcal[S.C_COUNT] >= min_cal and rcal[S.C_THR] > 0.0:
                ratio = max(ratio, math.sqrt(rscore / rcal[S.C_THR]))
                alarm = S.R_ALARM, S.R_PENDING
                if _device_alarm(dev, alarm, rscore, rcal, off_n, on_n, t >= start, now, rec_dec2) and trigger < 0:
                    trigger = TRIGGER_RELATION
        # ---- outputs
        device_alarm = dev[S.D_ALARM] > 0.0 or dev[S.F_ALARM] > 0.0 or dev[S.R_ALARM] > 0.0
        any_alarm = device_alarm
        for j in range(k):
            if met[j, S.M_ALARM] > 0.0:
                any_alarm = True
            elif (
                device_alarm
                and valid[j]
                and dev[S.D_ALARM] > 0.0
                and fam[j, sel[j], S.F_EWZ] ** 2 * span >= 0.5 * dcal[S.C_THR]
            ):
                # A metric carries the device-level deviation when its own shift energy is at
                # least half the device threshold (alone it would need k times that).
                out_mflag[t, j] = True
        if dev[S.F_ALARM] > 0.0:
            # The forest's alarm names the relation: the metrics whose relation residuals are
            # at least half the largest one's (the two sides of a broken relation).
            top = 0.0
            for j in range(k):
                top = max(top, _relation_size(rfeats, j, k))
            for j in range(k):
                if valid[j] and _relation_size(rfeats, j, k) >= 0.5 * top:
                    out_mflag[t, j] = True
        if dev[S.R_ALARM] > 0.0 and r_scored:
            # T²'s alarm names the metrics carrying at least half of the largest share of it
            top = 0.0
            for j in range(k):
                top = max(top, zr[j] * pz[j])
            for j in range(k):
                if zr[j] * pz[j] >= 0.5 * top:
                    out_mflag[t, j] = True
        out_flag[t] = any_alarm
        _count_nuisance(dev, any_alarm, ratio, span)
        out_ratio[t] = ratio
        out_trigger[t] = trigger
        # ---- learning (normal readings; conditions older than `accept` again)
        # (a reading that waits for the on-delay's confirmation is held like one in alarm: learnt,
        # the first readings of a slow creep lift its thresholds at the next refit and the young
        # alarm clears; a glitch that is not confirmed stays out of the histograms)
        d_frozen = (dev[S.D_ALARM] > 0.0 and now - dev[S.D_OPEN] <= accept) or dev[S.D_PENDING] > 0.0
        f_frozen = (dev[S.F_ALARM] > 0.0 and now - dev[S.F_OPEN] <= accept) or dev[S.F_PENDING] > 0.0
        r_frozen = (dev[S.R_ALARM] > 0.0 and now - dev[S.R_OPEN] <= accept) or dev[S.R_PENDING] > 0.0
        # (dcount == k: every metric valid and past its warm-up)
        r_learn = k >= 2 and dcount == k and not r_frozen and dev[S.D_N] > wc
        for j in range(k):
            if not valid[j]:
                continue
            x = X[t, j]
            if not late:
                met[j, S.M_SLOT_SUM] += x - met[j, S.M_L1]
                met[j, S.M_SLOT_CNT] += 1.0
            # Only a metric's own alarm stops its learning. A device-level alarm (shift energy,
            # forest) does not: it sums small deviations of several metrics, and holding those
            # metrics' levels let their ordinary drift pile up against the held levels, so the
            # device alarm could not clear once the fault was over.
            frozen = (met[j, S.M_ALARM] > 0.0 and now - met[j, S.M_OPEN] <= accept) or met[j, S.M_PENDING] > 0.0
            if frozen:
                r_learn = False  # a metric's fault is not how the metrics move together
                wa = w * P[P_ALARM_WEIGHT]
                if wa > 0.0:
                    for f in range(2):
                        if (f == 0 or has_s[j]) and fam[j, f, S.F_COUNT] > wc:
                            for i in range(S.N_SCORES):
                                hist[j, f, i, hbin(sc[j, f, i] ** 2)] += np.float32(wa)
                                cal[j, f, i, S.C_TOTAL] += wa
                continue
            met[j, S.M_NJ] += 1.0
            nj = met[j, S.M_NJ]
            a = max(1.0 / nj, dt / P[P_TAU_SLOW])
            met[j, S.M_NU] += a * (abs(x - met[j, S.M_L1]) - met[j, S.M_NU])
            floor = max(P[P_FLOOR] * met[j, S.M_NU], 1e-12)
            for f in range(2):
                if f == 1 and not has_s[j]:
                    continue
                fam[j, f, S.F_COUNT] += 1.0
                cnt = fam[j, f, S.F_COUNT]
                r = resid[j, f]
                sd = max(fam[j, f, S.F_SCALE], floor)
                cl = clip * sd if cnt > WARMUP else abs(r) + 1e-12
                rc = min(max(r, -cl), cl)
                fam[j, f, S.F_SCALE] += max(a, 1.0 / cnt) * (abs(rc) - fam[j, f, S.F_SCALE])
                if cnt == wc:
                    fam[j, f, S.F_EWZ] = 0.0
                    fam[j, f, S.F_EWL] = 0.0
                    fam[j, f, S.F_EA] = 1.0
                    fam[j, f, S.F_EWC] = 0.0
                elif cnt > wc:
                    for i in range(S.N_SCORES):
                        x2 = sc[j, f, i] ** 2
                        # a run of equal values is a record once it has ended (not while it grows)
                        raw2 = ended[j] ** 2 if i == S.S_FLAT else x2 * sd * sd
                        _learn_score(
                            hist[j, f, i], cal[j, f, i], x2, raw2, w, min_cal, q, p_on, band_p, gmax, max_decay, phase
                        )
            if has_w[j]:
                met[j, S.M_NAW] += 1.0
                g = max(0.005, 1.0 / met[j, S.M_NAW])
                sd = max(fam[j, 1, S.F_SCALE], floor)
                rd = x - met[j, S.M_L1] - seas_d[j]
                rw = x - met[j, S.M_L1] - seas_w[j]
                met[j, S.M_AABD] += g * (min(abs(rd), clip * sd) - met[j, S.M_AABD])
                met[j, S.M_AABW] += g * (min(abs(rw), clip * sd) - met[j, S.M_AABW])
            if has_s[j]:
                met[j, S.M_NAB] += 1.0
                g = max(0.005, 1.0 / met[j, S.M_NAB])
                for f in range(2):
                    sd = max(fam[j, f, S.F_SCALE], floor)
                    met[j, S.M_AAB0 + f] += g * (min(abs(resid[j, f]), clip * sd) - met[j, S.M_AAB0 + f])
            for f in range(2):
                tau = P[P_TAU_RECENT] if f == 0 else P[P_TAU_SLOW]
                af = max(1.0 / nj, dt / tau)
                r = x - (met[j, S.M_L0] if f == 0 else met[j, S.M_L1] + (seas[j] if has_s[j] else 0.0))
                sd = max(fam[j, f, S.F_SCALE], floor)
                cl = clip * sd if nj > WARMUP else abs(r) + 1e-12
                rc = min(max(r, -cl), cl)
                if f == 0:
                    met[j, S.M_L0] += af * rc
                else:
                    met[j, S.M_L1] += af * rc
        if dcount >= 2 and (not d_frozen) and dev[S.D_N] > wc + P[P_SPAN_LONG]:
            _learn_score(dhist, dcal, dscore, dscore, w, min_cal, q, p_on, band_p, gmax, max_decay, phase)
        if has_forest and dcount == k and (not f_frozen) and dev[S.D_N] > wc + P[P_SPAN_LONG]:
            _learn_score(fhist, fcal, fscore2, fscore2, w, min_cal, q, p_on, band_p, gmax, max_decay, phase)
        if r_learn:
            if r_scored:
                _learn_score(rhist, rcal, rscore, rscore, w, min_cal, q, p_on, band_p, gmax, max_decay, phase)
            _learn_relation(rel, dev, feats, k, max(1.0 / (dev[S.R_N] + 1.0), dt / P[P_TAU_SLOW]), P[P_SPAN_LONG], rfit)
