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
