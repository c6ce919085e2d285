"""Property tests (hypothesis) of the active-set solver on small random problems."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from audioconcepts.decompose import certify, make_solver
from conftest import random_problem

problems = st.builds(
    lambda seed, k, d, n: random_problem(seed, k=k, d=d, n=n),
    st.integers(0, 10_000),
    st.integers(2, 60),
    st.integers(2, 16),
    st.integers(1, 6),
)
penalties = st.floats(0.01, 1.0)


@settings(max_examples=60, deadline=None)
@given(problems, penalties)
def test_solutions_are_nonnegative_and_satisfy_kkt(problem, lam):
    C, Z = problem
    result = make_solver("active-set", C).solve(Z, [lam])[0]
    assert (result.codes.data > 0).all()
    assert (result.status == 0).all()
    gap, kkt = certify(Z, C, result.codes, lam)
    assert (kkt < 1e-9).all()
    assert (gap < 1e-10).all()


@settings(max_examples=40, deadline=None)
@given(problems, st.lists(penalties, min_size=2, max_size=5, unique=True))
def test_path_is_monotone(problem, lams):
    """Along decreasing lambda the l1 norm never falls and the residual never grows (lasso theory).

    The number of non-zeros need not be monotone for the lasso in general, so it is not asserted.
    """
    C, Z = problem
    lams = sorted(lams, reverse=True)
    results = make_solver("active-set", C).solve(Z, lams)
    l1 = np.array([np.asarray(r.codes.sum(axis=1)).ravel() for r in results])
    res = np.array([np.linalg.norm(Z - r.codes @ C, axis=1) for r in results])
    assert (np.diff(l1, axis=0) >= -1e-9).all()
    assert (np.diff(res, axis=0) <= 1e-9).all()


@settings(max_examples=30, deadline=None)
@given(problems, penalties, st.randoms(use_true_random=False), st.integers(1, 4))
def test_invariant_to_row_order_and_batch_size(problem, lam, rnd, batch):
    C, Z = problem
    perm = list(range(len(Z)))
    rnd.shuffle(perm)
    whole = make_solver("active-set", C).solve(Z, [lam])[0].codes.toarray()
    shuffled = make_solver("active-set", C, batch_size=batch).solve(Z[perm], [lam])[0].codes.toarray()
    np.testing.assert_allclose(shuffled, whole[perm], atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(problems, st.lists(penalties, min_size=2, max_size=4, unique=True))
def test_warm_started_path_equals_independent_solves(problem, lams):
    C, Z = problem
    lams = sorted(lams, reverse=True)
    solver = make_solver("active-set", C)
    for lam, r in zip(lams, solver.solve(Z, lams)):
        np.testing.assert_allclose(r.codes.toarray(), solver.solve(Z, [lam])[0].codes.toarray(), atol=1e-10)
