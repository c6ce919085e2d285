"""ConceptDecomposer: dense embeddings to sparse non-negative mixes of named concepts."""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from audioconcepts.decompose.certificate import certify
from audioconcepts.decompose.preprocess import center, l2_normalize, recompose
from audioconcepts.decompose.solvers import SOLVERS, ActiveSetSolver, make_solver
from audioconcepts.embeddings import check_fingerprint
from audioconcepts.vocab import Vocabulary

#: Row status codes in a Decomposition.
SOLVED, DEGENERATE, BUDGET, INVALID = 0, 1, 2, 3
STATUS_NAMES = {SOLVED: "solved", DEGENERATE: "degenerate concept skipped", BUDGET: "iteration budget exhausted", INVALID: "invalid input row"}


@dataclass
class Decomposition:
    """Codes for a batch plus, per row, what a careful user checks before trusting them."""

    codes: sp.csr_matrix  #: (n, k) non-negative concept weights
    concepts: list[str]  #: column names of codes
    l1_penalty: np.ndarray  #: (n,) lambda behind each row (reached lambda under target_l0)
    nnz: np.ndarray  #: (n,) number of concepts used
    cosine: np.ndarray  #: (n,) cosine(recomposed, original)
    duality_gap: np.ndarray  #: (n,) upper bound on objective - optimum (NaN if not certified)
    kkt_violation: np.ndarray  #: (n,) largest violation of the optimality conditions (NaN if not certified)
    status: np.ndarray  #: (n,) see STATUS_NAMES

    def __len__(self) -> int:
        return self.codes.shape[0]

    def explain(self, i: int, top: int = 10) -> list[tuple[str, float]]:
        """Row i's largest concepts as (concept, weight), largest first."""
        row = self.codes.getrow(i)
        order = np.argsort(-row.data, kind="stable")[:top]
        return [(self.concepts[row.indices[j]], float(row.data[j])) for j in order]

    def _repr_html_(self) -> str:
        """Notebook view: the first rows' top concepts as bars, with nnz, cosine and status."""
        from audioconcepts.display import decomposition_html

        return decomposition_html(self)

    def summary(self):
        """One pandas row of diagnostics per embedding."""
        import pandas as pd

        return pd.DataFrame(
            {
                "l1_penalty": self.l1_penalty,
                "nnz": self.nnz,
                "cosine": self.cosine,
                "duality_gap": self.duality_gap,
                "kkt_violation": self.kkt_violation,
                "status": [STATUS_NAMES[s] for s in self.status],
            }
        )


class ConceptDecomposer(TransformerMixin, BaseEstimator, auto_wrap_output_keys=None):
    """Rewrite embeddings as sparse non-negative combinations of a vocabulary's concepts.

    Solves, per embedding,  w* = argmin_{w >= 0} ||C~^T w - z~||^2 + l1_penalty ||w||_1
    in SpLiCE's lambda units (0.05 gives roughly 100 concepts of 2,000, 0.25 about 15), where
    C~ and z~ are the preprocessed concepts and embeddings: L2-normalised, centred on the
    concept mean / the audio modality mean (estimated by fit), L2-normalised again.

    Parameters
    ----------
    vocabulary : Vocabulary
    l1_penalty : float, the lambda of the objective (> 0).
    target_l0 : int or None. If set, each row gets the solution on its exact regularisation path
        at the point where the path would first exceed target_l0 non-zeros (it overrides
        l1_penalty; the lambda reached is reported per row). Always solved by the compiled
        homotopy of the active-set solver, whatever `solver` says.
    solver : "auto", "active-set", "torch" or "sklearn" (the paper's solver).
    normalize, center_concepts, center_embeddings : switch each preprocessing step.
    device : torch device for solver="torch" ("cuda", "cpu", ...).
    batch_size : rows processed at a time; memory is bounded by it, not by n.
    n_jobs : threads for the active-set solver (default: all cores).
    """

    def __init__(
        self,
        vocabulary: Vocabulary,
        l1_penalty: float = 0.15,
        target_l0: int | None = None,
        *,
        solver: str = "auto",
        normalize: bool = True,
        center_concepts: bool = True,
        center_embeddings: bool = True,
        device: str | None = None,
        batch_size: int = 4096,
        n_jobs: int | None = None,
    ) -> None:
        self.vocabulary = vocabulary
        self.l1_penalty = l1_penalty
        self.target_l0 = target_l0
        self.solver = solver
        self.normalize = normalize
        self.center_concepts = center_concepts
        self.center_embeddings = center_embeddings
        self.device = device
        self.batch_size = batch_size
        self.n_jobs = n_jobs

    # ------------------------------------------------------------------ fitting
    def fit(self, X=None, y=None, *, modality_mean: np.ndarray | None = None) -> ConceptDecomposer:
        """Estimate the modality mean from X (audio embeddings of this model), or take it as given."""
        self._check_params()
        vocab = self.vocabulary
        d = vocab.dim
        if self.center_embeddings:
            if modality_mean is not None:
                mean = np.asarray(modality_mean, dtype=np.float64)
                if mean.shape != (d,) or not np.isfinite(mean).all():
                    raise ValueError(f"modality_mean must be a finite vector of length {d}; got shape {mean.shape}")
            elif X is None:
                raise ValueError(
                    "fit() needs audio embeddings to estimate the modality mean, or "
                    "modality_mean=...; or set center_embeddings=False"
                )
            else:
                mean = self._modality_mean(X)
            self.modality_mean_ = mean
        else:
            self.modality_mean_ = None
        E = l2_normalize(vocab.embeddings) if self.normalize else vocab.embeddings.astype(np.float64)
        self.concept_mean_ = E.mean(axis=0) if self.center_concepts else None
        self.components_ = center(vocab.embeddings, self.concept_mean_, self.normalize)
        if not np.any(self.components_, axis=1).all():
            raise ValueError("after centering some concept embeddings are zero: the vocabulary is degenerate")
        self.n_features_in_ = d
        options = {} if self.solver == "sklearn" else {"batch_size": self.batch_size}
        if self.n_jobs is not None and self.solver in ("auto", "active-set"):
            options["n_jobs"] = self.n_jobs
        self.solver_ = make_solver(self.solver, self.components_, device=self.device, **options)
        if self.target_l0 is not None and not isinstance(self.solver_, ActiveSetSolver):
            self.solver_ = ActiveSetSolver(self.components_)  # the exact path needs the homotopy
        return self

    def _modality_mean(self, X) -> np.ndarray:
        """Mean of the (normalised) usable rows of X, accumulated batch by batch."""
        X = self._check_array(X, "fit")
        total, count = np.zeros(X.shape[1]), 0
        for lo in range(0, X.shape[0], self.batch_size):
            Zb, ok = self._validate_rows(X[lo : lo + self.batch_size], "fit")
            total += (l2_normalize(Zb[ok]) if self.normalize else Zb[ok]).sum(axis=0)
            count += int(ok.sum())
        if count == 0:
            raise ValueError("fit() got no usable embeddings (every row is NaN, inf or all zero)")
        return total / count

    def _check_params(self) -> None:
        if not isinstance(self.vocabulary, Vocabulary):
            raise TypeError(f"vocabulary must be an audioconcepts.Vocabulary; got {type(self.vocabulary).__name__}")
        if self.target_l0 is None:
            _check_penalty(self.l1_penalty)
        elif not isinstance(self.target_l0, numbers.Integral) or self.target_l0 < 1:
            raise ValueError(f"target_l0 must be a positive integer; got {self.target_l0!r}")
        if self.solver not in SOLVERS:
            raise ValueError(f"unknown solver {self.solver!r}; choose one of {', '.join(SOLVERS)}")
        if not isinstance(self.batch_size, numbers.Integral) or self.batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer; got {self.batch_size!r}")

    def _check_array(self, X, where: str) -> np.ndarray:
        """The (n, d) array inside X, as given (no copy); wrong shape or dimension is an error."""
        X = check_fingerprint(X, self.vocabulary.fingerprint)
        if sp.issparse(X):
            raise TypeError(f"{where}() expects dense embeddings, not a sparse matrix")
        Z = np.asarray(X)
        if Z.ndim == 1:
            Z = Z[None, :]
        d = self.vocabulary.dim
        if Z.ndim != 2 or Z.shape[1] != d or not np.issubdtype(Z.dtype, np.number):
            raise ValueError(
                f"{where}() got embeddings of shape {Z.shape} and dtype {Z.dtype}, but the vocabulary is "
                f"{d}-dimensional ({self.vocabulary.fingerprint!r}); embed with the same model as the vocabulary"
            )
        return Z

    def _validate_rows(self, X, where: str) -> tuple[np.ndarray, np.ndarray]:
        """(float64 array, mask of usable rows: finite and not all zero)."""
        Z = np.asarray(self._check_array(X, where), dtype=np.float64)
        with np.errstate(invalid="ignore", over="ignore"):
            valid = np.isfinite(Z).all(axis=1) & np.any(Z != 0, axis=1)
        return Z, valid

    # --------------------------------------------------------------- decomposing
    def decompose(self, X, *, certify: bool = True) -> Decomposition:
        """Codes plus per-row diagnostics (nnz, cosine, duality gap, KKT violation, status)."""
        if self.target_l0 is not None:
            return self._decompose([None], X, certify)[0]
        return self._decompose([self.l1_penalty], X, certify)[0]

    def decompose_path(self, X, l1_penalties: Sequence[float], *, certify: bool = True) -> list[Decomposition]:
        """One Decomposition per lambda, solved largest lambda first with warm starts."""
        lams = [float(_check_penalty(l)) for l in l1_penalties]
        order = np.argsort(lams)[::-1]
        if len(set(lams)) != len(lams):
            raise ValueError("l1_penalties must be distinct")
        out = self._decompose([lams[i] for i in order], X, certify)
        result: list[Decomposition] = [None] * len(lams)  # type: ignore[list-item]
        for pos, i in enumerate(order):
            result[i] = out[pos]
        return result

    def _decompose(self, lambdas: list, X, want_certificate: bool) -> list[Decomposition]:
        check_is_fitted(self, "components_")
        X = self._check_array(X, "transform")
        n, k = X.shape[0], len(self.vocabulary)
        parts: list[list[Decomposition]] = [[] for _ in lambdas]
        bad: list[np.ndarray] = []
        for lo in range(0, n, self.batch_size):
            hi = min(n, lo + self.batch_size)
            Zb, ok = self._validate_rows(X[lo:hi], "transform")  # one batch in float64 at a time
            bad.append(lo + np.flatnonzero(~ok))
            Zt = np.zeros_like(Zb)
            Zt[ok] = center(Zb[ok], self.modality_mean_, self.normalize)  # invalid rows stay zero
            if lambdas == [None]:
                codes, lam, status = self.solver_.solve_path(Zt, int(self.target_l0))
                results = [(codes, lam, status)]
            else:
                results = [(r.codes, np.full(hi - lo, lam), r.status) for r, lam in zip(self.solver_.solve(Zt, lambdas), lambdas)]
            original = l2_normalize(np.where(ok[:, None], Zb, 0.0))
            for s, (codes, lam, status) in enumerate(results):
                status = np.where(ok, status, INVALID).astype(np.int8)
                cos = np.einsum("ij,ij->i", recompose(codes, self.components_, self.modality_mean_), original)
                if want_certificate:
                    gap, kkt = certify(Zt, self.components_, codes, lam)
                    gap[~ok] = kkt[~ok] = np.nan
                else:
                    gap = kkt = np.full(hi - lo, np.nan)
                parts[s].append(
                    Decomposition(codes, self.vocabulary.concepts, lam, codes.getnnz(axis=1), np.where(ok, cos, np.nan), gap, kkt, status)
                )
        bad = np.concatenate(bad) if bad else np.zeros(0, int)
        if bad.size:
            warnings.warn(
                f"{bad.size} of {n} rows are not usable embeddings (NaN, inf or all zero), e.g. rows "
                f"{bad[:5].tolist()}; their codes are empty and their status is {INVALID} ('invalid input row')",
                RuntimeWarning,
                stacklevel=3,
            )
        return [_concat(p, self.vocabulary.concepts, k) for p in parts]

    def transform(self, X):
        """Concept codes: scipy.sparse CSR (n, k), or a sparse pandas DataFrame after set_output(transform="pandas")."""
        codes = self.decompose(X, certify=False).codes
        if getattr(self, "_output_transform", None) == "pandas":
            import pandas as pd

            return pd.DataFrame.sparse.from_spmatrix(codes, columns=self.get_feature_names_out())
        return codes

    def set_output(self, *, transform: str | None = None) -> ConceptDecomposer:
        """transform="pandas" makes transform() return a DataFrame with one column per concept."""
        if transform not in (None, "default", "pandas"):
            raise ValueError(f"transform output must be 'default' or 'pandas'; got {transform!r}")
        if transform is not None:
            self._output_transform = transform
        return self

    def inverse_transform(self, W) -> np.ndarray:
        """Recomposed dense embeddings, float32, unit-norm rows: normalise(normalise(W C~) + mean)."""
        check_is_fitted(self, "components_")
        if hasattr(W, "sparse"):
            W = W.sparse.to_coo().tocsr()
        W = sp.csr_matrix(W) if not sp.issparse(W) else W.tocsr()
        if W.shape[1] != len(self.vocabulary):
            raise ValueError(f"codes have {W.shape[1]} columns but the vocabulary has {len(self.vocabulary)} concepts")
        out = np.empty((W.shape[0], self.vocabulary.dim), np.float32)
        for lo in range(0, W.shape[0], self.batch_size):
            out[lo : lo + self.batch_size] = recompose(W[lo : lo + self.batch_size], self.components_, self.modality_mean_)
        return out

    def explain(self, z, top: int = 5) -> list[tuple[str, float]]:
        """The top concepts of one embedding as (concept, weight), largest first."""
        z = np.asarray(check_fingerprint(z, self.vocabulary.fingerprint))
        if z.ndim != 1:
            raise ValueError(f"explain() takes one embedding (a vector); got shape {z.shape}; use decompose() for a batch")
        return self.decompose(z[None, :], certify=False).explain(0, top)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """The concept strings, one per column of the codes."""
        return np.asarray(self.vocabulary.concepts, dtype=object)


def _check_penalty(value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value) or value <= 0:
        raise ValueError(
            f"l1_penalty must be a positive number (SpLiCE units: 0.05 ~ 100 concepts, 0.25 ~ 15); got {value!r}"
        )
    return float(value)


def _concat(parts: list[Decomposition], concepts: list[str], k: int) -> Decomposition:
    if not parts:
        e = np.zeros(0)
        return Decomposition(sp.csr_matrix((0, k)), concepts, e, e.astype(int), e, e, e, e.astype(np.int8))
    cat = lambda name: np.concatenate([getattr(p, name) for p in parts])
    return Decomposition(
        sp.vstack([p.codes for p in parts], format="csr"),
        concepts,
        cat("l1_penalty"),
        cat("nnz"),
        cat("cosine"),
        cat("duality_gap"),
        cat("kkt_violation"),
        cat("status"),
    )


__all__ = ["ConceptDecomposer", "Decomposition"]
