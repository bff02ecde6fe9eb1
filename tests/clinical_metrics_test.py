"""Clinical metrics (confusion matrix, sensitivity, specificity, per-class precision/recall)
against hand-computed cases."""

import numpy as np
import pytest

from lie_jax.training import metrics


def _logits(predicted, k):
  return np.eye(k)[np.asarray(predicted)] * 5.0


def test_three_classes_by_hand():
  labels = np.array([0, 0, 1, 1, 2, 2, 2])
  predicted = [0, 1, 1, 1, 2, 0, 2]
  m = metrics.clinical_metrics(_logits(predicted, 3), labels, ("a", "b", "c"))
  assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 2]]
  # a: TP 1, FN 1, FP 1, TN 4; b: TP 2, FN 0, FP 1, TN 4; c: TP 2, FN 1, FP 0, TN 4.
  assert m["per_class"]["a"] == {"precision": 0.5, "recall": 0.5, "specificity": 0.8,
                                 "support": 2}
  assert m["per_class"]["b"] == pytest.approx({"precision": 2 / 3, "recall": 1.0,
                                               "specificity": 0.8, "support": 2})
  assert m["per_class"]["c"] == pytest.approx({"precision": 1.0, "recall": 2 / 3,
                                               "specificity": 1.0, "support": 3})
  assert m["sensitivity"] == pytest.approx((0.5 + 1 + 2 / 3) / 3) == m["balanced_accuracy"]
  assert m["specificity"] == pytest.approx((0.8 + 0.8 + 1.0) / 3)


def test_two_classes_report_the_positive_class():
  # 4 sick (class 1): 3 found; 6 healthy: 1 false alarm.
  labels = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
  predicted = [1, 1, 1, 0, 1, 0, 0, 0, 0, 0]
  m = metrics.clinical_metrics(_logits(predicted, 2), labels, ("normal", "pneumonia"))
  assert m["sensitivity"] == 0.75 and m["specificity"] == pytest.approx(5 / 6)
  assert m["confusion_matrix"] == [[5, 1], [1, 3]]
  assert m["per_class"]["pneumonia"]["precision"] == 0.75


def test_empty_denominators_are_none():
  m = metrics.clinical_metrics(_logits([0, 0], 2), np.array([0, 0]))
  assert m["per_class"]["1"] == {"precision": None, "recall": None, "specificity": 1.0,
                                 "support": 0}
  assert m["sensitivity"] is None and m["specificity"] == 1.0


def test_confusion_figure(tmp_path):
  pytest.importorskip("matplotlib")
  assert metrics.confusion_figure([[3, 1], [0, 2]], ("a", "b"), str(tmp_path / "cm.png"))
  assert (tmp_path / "cm.png").read_bytes()[:4] == b"\x89PNG"
