"""Evaluation of representations: kNN, linear probes and fine-tuning of h."""

from contrastive.evaluation.evaluate import PROTOCOLS, evaluate, frozen_features  # noqa: F401
from contrastive.evaluation.features import encode, features_of  # noqa: F401
from contrastive.evaluation.knn import (  # noqa: F401
    knn_accuracies,
    knn_accuracy,
    knn_classify,
    nearest_neighbors,
)
from contrastive.evaluation.linear import augmented_linear_accuracy, linear_accuracy  # noqa: F401
