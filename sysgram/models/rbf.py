"""A fitted RBF one-class SVM's decision function, in numpy: what scoring needs of it.

    decision(x) = sum_i dual_coef_i * exp(-gamma * ||x - sv_i||^2) + intercept

which is what libsvm computes for `OneClassSVM.decision_function`. Training still uses
scikit-learn's `OneClassSVM` (libsvm); right after fitting, its support vectors, dual
coefficients, intercept and gamma are kept as an `RBFDecision` and the SVM dropped, so a
profile's pickle holds no scikit-learn object and a watcher that loads and scores it
never imports scikit-learn (~75 MiB, issue #14). Sparse support vectors (presence rows)
stay sparse.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp


class RBFDecision:
    """The decision function of a fitted RBF one-class SVM (higher = more normal)."""

    def __init__(self, support_vectors: np.ndarray | sp.csr_matrix, dual_coef: np.ndarray,
                 intercept: float, gamma: float) -> None:
        self.support_vectors = support_vectors
        self.dual_coef = np.asarray(dual_coef, dtype=np.float64).ravel()
        self.intercept = float(intercept)
        self.gamma = float(gamma)
        self._sv_squares = _row_squares(support_vectors)

    @classmethod
    def from_svm(cls, svm: Any) -> RBFDecision:
        """The scorer of a fitted `sklearn.svm.OneClassSVM` with an RBF kernel."""
        if svm.kernel != "rbf":
            raise ValueError(f"only an RBF kernel has a numpy scorer here, not {svm.kernel!r}")
        support = svm.support_vectors_
        support = sp.csr_matrix(support) if sp.issparse(support) else np.asarray(support)
        dual = svm.dual_coef_
        dual = dual.toarray() if sp.issparse(dual) else np.asarray(dual)
        return cls(support, dual, float(np.ravel(svm.intercept_)[0]), float(svm._gamma))

    def decision_function(self, x: np.ndarray | sp.spmatrix) -> np.ndarray:
        """The SVM's decision value of each row of `x` (dense or sparse)."""
        if x.shape[0] == 0:
            return np.zeros(0, dtype=np.float64)
        cross = x @ self.support_vectors.T
        cross = cross.toarray() if sp.issparse(cross) else np.asarray(cross)
        # ||x - sv||^2 expanded; rounding can leave a hair below 0 for a row equal to a
        # support vector, which the kernel must read as distance 0.
        distances = np.maximum(_row_squares(x)[:, None] + self._sv_squares[None, :]
                               - 2.0 * cross, 0.0)
        return np.exp(-self.gamma * distances) @ self.dual_coef + self.intercept

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        del state["_sv_squares"]  # derived: recomputed on load, not stored
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._sv_squares = _row_squares(self.support_vectors)

    @property
    def n_support(self) -> int:
        return int(self.support_vectors.shape[0])


def _row_squares(x: np.ndarray | sp.spmatrix) -> np.ndarray:
    """Squared L2 norm of each row."""
    if sp.issparse(x):
        x = sp.csr_matrix(x)
        return np.asarray(x.multiply(x).sum(axis=1), dtype=np.float64).ravel()
    x = np.asarray(x, dtype=np.float64)
    return np.einsum("ij,ij->i", x, x)
