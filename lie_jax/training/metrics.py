"""Evaluation metrics computed on the host from collected logits."""

from __future__ import annotations

import numpy as np


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
  """Share of examples whose arg-max logit is the label. logits [N, K], labels [N]."""
  return float(np.mean(np.argmax(logits, axis=-1) == labels))


def binary_auc(scores: np.ndarray, labels: np.ndarray) -> float:
  """ROC AUC of scores for labels in {0, 1} (Mann-Whitney U, ties counted half).

  Returns nan when only one class is present.
  """
  scores = np.asarray(scores, np.float64)
  labels = np.asarray(labels).astype(bool)
  n_pos, n_neg = int(labels.sum()), int((~labels).sum())
  if n_pos == 0 or n_neg == 0:
    return float("nan")
  order = np.argsort(scores, kind="mergesort")
  ranks = np.empty(len(scores), np.float64)
  sorted_scores = scores[order]
  # Average ranks over ties.
  _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
  avg = first + (counts - 1) / 2.0 + 1.0
  ranks[order] = np.repeat(avg, counts)
  return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def softmax(logits: np.ndarray) -> np.ndarray:
  z = logits - logits.max(axis=-1, keepdims=True)
  e = np.exp(z)
  return e / e.sum(axis=-1, keepdims=True)


def classification_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
  """accuracy, and auc for binary tasks (one-vs-rest macro AUC for more classes)."""
  out = {"accuracy": accuracy(logits, labels)}
  probs = softmax(logits)
  if logits.shape[-1] == 2:
    out["auc"] = binary_auc(probs[:, 1], labels == 1)
  else:
    aucs = [binary_auc(probs[:, k], labels == k) for k in range(logits.shape[-1])]
    out["auc"] = float(np.nanmean(aucs))
  return out


def confusion_matrix(predicted: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
  """[K, K] int64 counts: entry [t, p] is how many examples of class t were predicted p."""
  out = np.zeros((num_classes, num_classes), np.int64)
  np.add.at(out, (np.asarray(labels, np.int64), np.asarray(predicted, np.int64)), 1)
  return out


def _ratio(num: float, den: float) -> float | None:
  return float(num / den) if den else None


def clinical_metrics(logits: np.ndarray, labels: np.ndarray,
                     label_names: list[str] | tuple[str, ...] | None = None) -> dict:
  """What a clinician asks for first, from logits [N, K] and labels [N].

  Returns:
    A dict: "confusion_matrix" [[...]] (rows: true class, columns: predicted);
    "per_class" {name: {"precision", "recall" (= sensitivity), "specificity", "support"}};
    "sensitivity" and "specificity": for two classes, of the positive class 1 (e.g.
    PneumoniaMNIST's "pneumonia"), for more the means over classes (one vs rest);
    "balanced_accuracy": the mean recall over classes. A ratio with an empty denominator
    (no such example or prediction) is None.
  """
  k = logits.shape[-1]
  names = [str(i) for i in range(k)] if label_names is None else [str(n) for n in label_names]
  cm = confusion_matrix(np.argmax(logits, axis=-1), labels, k)
  total = cm.sum()
  per_class = {}
  for c, name in enumerate(names):
    tp = cm[c, c]
    fn, fp = cm[c].sum() - tp, cm[:, c].sum() - tp
    tn = total - tp - fn - fp
    per_class[name] = {"precision": _ratio(tp, tp + fp), "recall": _ratio(tp, tp + fn),
                       "specificity": _ratio(tn, tn + fp), "support": int(cm[c].sum())}
  recalls = [v["recall"] for v in per_class.values() if v["recall"] is not None]
  specs = [v["specificity"] for v in per_class.values() if v["specificity"] is not None]
  positive = per_class[names[1]] if k == 2 else None
  return {
      "confusion_matrix": cm.tolist(), "per_class": per_class,
      "sensitivity": positive["recall"] if positive else (float(np.mean(recalls)) if recalls
                                                          else None),
      "specificity": positive["specificity"] if positive else (float(np.mean(specs)) if specs
                                                               else None),
      "balanced_accuracy": float(np.mean(recalls)) if recalls else None,
  }


def confusion_figure(cm: list[list[int]], label_names: list[str] | tuple[str, ...],
                     path: str, *, title: str = "") -> bool:
  """Draws the confusion matrix to a PNG (matplotlib, the `notebooks` extra); returns False
  where matplotlib is not installed."""
  try:
    from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  except ImportError:
    return False
  cm = np.asarray(cm)
  k = len(label_names)
  fig = Figure(figsize=(1.2 * k + 2.5, 1.1 * k + 2), layout="constrained")
  ax = fig.subplots()
  ax.imshow(cm, cmap="Blues")
  for t in range(k):
    for p in range(k):
      ax.text(p, t, str(cm[t, p]), ha="center", va="center",
              color="white" if cm[t, p] > cm.max() / 2 else "black")
  ax.set_xticks(range(k), label_names, rotation=30, ha="right")
  ax.set_yticks(range(k), label_names)
  ax.set(xlabel="predicted", ylabel="true", title=title)
  fig.savefig(path, dpi=120, metadata={"Software": None})
  return True
