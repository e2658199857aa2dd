"""Disparity accuracy against ground truth: EPE, bad-N %, KITTI D1.

Which pixels count: ground truth is valid where it is finite and > 0 (PFM
inf, KITTI 0 and NaN all mean "no ground truth"). Each region ('all' valid
pixels, 'noc' valid and not occluded) is evaluated separately.

A pixel the method left invalid (NaN) is counted as an error for bad-N and
D1, so a method cannot improve its score by discarding hard pixels; EPE is
averaged over the pixels the method did predict, and `density` says how many
those were.

`sparsification` ranks predicted pixels by a confidence map and reports the
accuracy of the pixels kept as the least confident are removed in steps, so a
confidence threshold can be chosen from it.
"""
from dataclasses import dataclass

import numpy as np

from ..errors import InputError

BAD_THRESHOLDS = (1.0, 2.0, 3.0)
D1_ABSOLUTE = 3.0   # KITTI 2015: an outlier errs by > 3 px ...
D1_RELATIVE = 0.05  # ... and by > 5 % of the true disparity


@dataclass(frozen=True)
class DisparityMetrics:
    epe: float        # mean |d - d_gt| over predicted pixels, px
    bad1: float       # % of pixels with error > 1 px (or no prediction)
    bad2: float
    bad3: float
    d1: float         # % KITTI outliers (> 3 px and > 5 %, or no prediction)
    density: float    # % of ground-truth pixels that have a prediction
    pixels: int       # ground-truth pixels evaluated

    def as_dict(self):
        return dict(self.__dict__)


def valid_ground_truth(ground_truth):
    return np.isfinite(ground_truth) & (ground_truth > 0)


def evaluate(prediction, ground_truth, mask=None):
    """DisparityMetrics of `prediction` over valid ground truth (and `mask`)."""
    prediction = np.asarray(prediction, np.float32)
    ground_truth = np.asarray(ground_truth, np.float32)
    if prediction.shape != ground_truth.shape:
        raise InputError(f'prediction is {_size(prediction)} but ground truth is {_size(ground_truth)}: '
                         'evaluate disparity at the ground truth resolution')
    region = valid_ground_truth(ground_truth)
    if mask is not None:
        region &= mask
    count = int(region.sum())
    if count == 0:
        nan = float('nan')
        return DisparityMetrics(nan, nan, nan, nan, nan, nan, 0)
    truth = ground_truth[region]
    error = np.abs(prediction[region] - truth)
    predicted = np.isfinite(error)
    error_or_inf = np.where(predicted, error, np.inf)
    bad = [_percent(error_or_inf > threshold) for threshold in BAD_THRESHOLDS]
    outliers = (error_or_inf > D1_ABSOLUTE) & (error_or_inf > D1_RELATIVE * truth)
    epe = float(error[predicted].mean()) if predicted.any() else float('nan')
    return DisparityMetrics(epe=epe, bad1=bad[0], bad2=bad[1], bad3=bad[2], d1=_percent(outliers),
                            density=_percent(predicted), pixels=count)


def evaluate_regions(prediction, ground_truth, occlusion=None):
    """{'all': metrics, 'noc': metrics}; 'noc' only when an occlusion mask is given."""
    results = {'all': evaluate(prediction, ground_truth)}
    if occlusion is not None:
        occlusion = np.asarray(occlusion, bool)
        if occlusion.shape != np.shape(ground_truth):
            raise InputError(f'occlusion mask is {_size(occlusion)} but ground truth is '
                             f'{_size(ground_truth)}: use the mask that belongs to this ground truth')
        results['noc'] = evaluate(prediction, ground_truth, ~occlusion)
    return results


REGION_LABELS = {'all': 'all valid', 'noc': 'non-occluded'}


def format_table(results):
    """Plain-text table, one row per region."""
    header = f"{'region':<14}{'EPE px':>8}{'bad-1 %':>9}{'bad-2 %':>9}{'bad-3 %':>9}{'D1 %':>8}" \
             f"{'density %':>11}{'pixels':>9}"
    lines = [header, '-' * len(header)]
    for region, m in results.items():
        lines.append(f'{REGION_LABELS.get(region, region):<14}{m.epe:>8.3f}{m.bad1:>9.2f}{m.bad2:>9.2f}'
                     f'{m.bad3:>9.2f}{m.d1:>8.2f}{m.density:>11.1f}{m.pixels:>9d}')
    return '\n'.join(lines)


def _percent(flags):
    return float(100.0 * np.count_nonzero(flags) / flags.size)


def _size(array):
    return 'x'.join(str(n) for n in np.shape(array)[::-1][-2:]) if np.ndim(array) >= 2 else str(np.shape(array))


#: fractions of the least-confident pixels removed, one row of the sparsification curve each
SPARSIFICATION_STEPS = tuple(step / 10 for step in range(10))


@dataclass(frozen=True)
class SparsificationRow:
    removed: float     # fraction of the least-confident predicted pixels removed
    threshold: float   # confidence of the least-confident pixel kept
    kept: int          # pixels kept
    epe: float         # mean |d - d_gt| of the kept pixels, px
    bad2: float        # % of kept pixels with error > 2 px


def sparsification(prediction, ground_truth, confidence, mask=None, steps=SPARSIFICATION_STEPS):
    """Accuracy of the kept pixels as the least-confident `steps` fractions are removed.

    Only pixels with valid ground truth (and `mask`) that the method predicted
    (finite disparity and confidence) take part: the curve ranks predictions,
    it does not score missing ones (`evaluate` does). Ties in confidence are
    broken by pixel order (a stable sort), so equal-confidence pixels leave in
    scan order. Returns a list of SparsificationRow, one per step; an empty
    list when no pixel takes part.
    """
    prediction = np.asarray(prediction, np.float32)
    ground_truth = np.asarray(ground_truth, np.float32)
    confidence = np.asarray(confidence, np.float32)
    if not prediction.shape == ground_truth.shape == confidence.shape:
        raise InputError(f'prediction {_size(prediction)}, ground truth {_size(ground_truth)} and confidence '
                         f'{_size(confidence)} must be the same size: give the confidence written with this '
                         'disparity')
    region = valid_ground_truth(ground_truth) & np.isfinite(prediction) & np.isfinite(confidence)
    if mask is not None:
        region &= mask
    count = int(region.sum())
    if count == 0:
        return []
    order = np.argsort(-confidence[region], kind='stable')    # most confident first
    error = np.abs(prediction[region] - ground_truth[region])[order].astype(np.float64)
    ranked_confidence = confidence[region][order]
    error_sum = np.cumsum(error)
    bad_count = np.cumsum(error > 2.0)
    rows = []
    for removed in steps:
        kept = max(1, count - int(round(removed * count)))
        rows.append(SparsificationRow(removed=float(removed), threshold=float(ranked_confidence[kept - 1]),
                                      kept=kept, epe=float(error_sum[kept - 1] / kept),
                                      bad2=float(100.0 * bad_count[kept - 1] / kept)))
    return rows


def format_sparsification(rows):
    """Plain-text sparsification table: one row per removed share, EPE and bad-2 of the kept pixels."""
    header = f"{'removed %':>9}{'confidence >=':>15}{'kept':>10}{'EPE px':>9}{'bad-2 %':>9}"
    lines = [header, '-' * len(header)]
    for row in rows:
        lines.append(f'{100 * row.removed:>9.0f}{row.threshold:>15.4f}{row.kept:>10d}{row.epe:>9.3f}{row.bad2:>9.2f}')
    return '\n'.join(lines)
