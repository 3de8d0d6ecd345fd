"""Evaluation of representations: kNN and linear probes on frozen h."""

from contrastive.evaluation.features import encode, features_of  # noqa: F401
from contrastive.evaluation.knn import knn_accuracy  # noqa: F401
from contrastive.evaluation.linear import linear_accuracy  # noqa: F401
