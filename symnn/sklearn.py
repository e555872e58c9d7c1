"""scikit-learn estimators: :class:`SymnnClassifier` and :class:`SymnnRegressor`.

Drop-in for :class:`sklearn.neural_network.MLPClassifier` / ``MLPRegressor``: the same
parameter names where they apply (``hidden_layer_sizes``, ``activation``, ``solver``,
``alpha``, ``batch_size``, ``learning_rate``, ``learning_rate_init``, ``power_t``,
``max_iter``, ``shuffle``, ``random_state``, ``tol``, ``verbose``, ``momentum``,
``nesterovs_momentum``, ``early_stopping``, ``validation_fraction``, ``beta_1``,
``beta_2``, ``epsilon``, ``n_iter_no_change``, ``max_fun``), the same stopping rules, and
the usual ``fit`` / ``predict`` / ``predict_proba`` / ``score``.  Underneath, the network is
declared in SymPy, its gradient derived exactly, and each epoch runs as one compiled call
(:func:`symnn.train.fit`).

Also as MLPClassifier: ``fit(X, y, sample_weight=…)`` (the loss of each mini-batch is the
weighted mean of the per-sample losses), ``partial_fit`` (one epoch over the given data,
continuing from the current parameters; for the stochastic solvers only, as scikit-learn's;
the classifier needs ``classes=`` on its first call) and ``warm_start=True`` (``fit``
continues from the parameters of the previous ``fit``).  Unlike MLPClassifier, the
optimizer's state (Adam's moments, momentum) restarts with every ``fit`` / ``partial_fit``
call; the parameters carry over.

Beyond MLPClassifier: ``solver`` also accepts ``"newton-cg"``, ``"lm"``
(Levenberg–Marquardt), ``"newton"`` and ``"kfac"`` (:class:`symnn.train.KFAC`, full batch);
``dtype="float32"`` (trains and predicts in float32: ``predict`` and ``predict_proba``
return float32, as MLPRegressor fitted on float32 data); ``check_every`` (finite-difference
checks, as in :func:`symnn.train.fit`: ``None``, the default, checks the gradient once
before training; ``k`` also every k epochs; ``0`` runs none).

Repeated fits cost no derivation or compilation: compiled models are cached in the process
by their canonical declaration (input width, hidden widths, output width, activation,
output, loss, dtype — :func:`compiled_mlp`), and on disk by the kernel cache, so a grid
search over one architecture derives and compiles it once.

Mapping of the regularisation: ``alpha`` is scikit-learn's L2 term
``alpha/(2·n_batch)·Σ‖W‖²`` on the weight matrices (not the biases) — here the optimizer's
weight decay ``λ = alpha / batch_size`` on the weights (``alpha / n_samples`` for the
full-batch solvers), which has exactly that gradient; with ``sample_weight`` the batch size
and ``n_samples`` count weight (``batch_size · mean(w)``, ``Σ w``), as scikit-learn's
``alpha / Σ w_batch``.  Classification uses a softmax output with cross-entropy (two units
for two classes, equivalent to the logistic output); regression an identity output with the
mean squared error.

scikit-learn is optional: this module imports without it, and the estimators say how to
install it when constructed.

Examples
--------
>>> from sklearn.datasets import load_iris
>>> X, y = load_iris(return_X_y=True)
>>> clf = SymnnClassifier(hidden_layer_sizes=(16,), solver="lbfgs", random_state=0)
>>> clf.fit(X / 8.0, y).score(X / 8.0, y) > 0.9
True
"""

from __future__ import annotations

import warnings

import numpy as np

from symnn.declare.layers import param_specs
from symnn.errors import DataError, DeclarationError

try:  # scikit-learn is an optional dependency
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.utils import check_random_state
    from sklearn.utils.metaestimators import available_if
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

    _SKLEARN_ERROR: Exception | None = None
except ImportError as _err:  # pragma: no cover - exercised only without scikit-learn
    _SKLEARN_ERROR = _err
    BaseEstimator = object  # type: ignore[assignment,misc]

    class ClassifierMixin:  # type: ignore[no-redef]
        pass

    class RegressorMixin:  # type: ignore[no-redef]
        pass

    def available_if(check):  # type: ignore[no-redef]
        return lambda fn: fn

__all__ = ["SymnnClassifier", "SymnnRegressor", "compiled_mlp"]

#: scikit-learn activation names → symnn activations.
ACTIVATIONS = {"identity": "identity", "logistic": "sigmoid", "tanh": "tanh", "relu": "relu"}
SOLVERS = ("adam", "sgd", "lbfgs", "newton-cg", "lm", "newton", "kfac")
STOCHASTIC_SOLVERS = ("adam", "sgd")

#: The in-process cache: canonical declaration → compiled model.
_COMPILED: dict = {}


def compiled_mlp(sizes: tuple[int, ...], activation: str, output: str | None, loss: str,
                 dtype: str = "float64"):
    """The compiled ``symnn.mlp(sizes, …)``, derived and compiled once per process.

    The key is the declaration's canonical form ``(sizes, activation, output, loss,
    dtype)``; a second estimator of the same architecture pays one dict lookup.
    """
    key = (tuple(int(s) for s in sizes), activation, output, loss, np.dtype(dtype).name)
    model = _COMPILED.get(key)
    if model is None:
        import symnn

        net = symnn.mlp(list(key[0]), activation=activation, output=output, loss=loss,
                        name="sklearn_mlp")
        model = net.compile(dtype=key[4])
        _COMPILED[key] = model
    return model


def _require_sklearn() -> None:
    if _SKLEARN_ERROR is not None:  # pragma: no cover
        raise ImportError(
            "symnn.sklearn needs scikit-learn, which is not installed: pip install "
            "scikit-learn (or pip install 'symnn[test]')"
        ) from _SKLEARN_ERROR


class _Weighted:
    """A compiled model trained on batches whose last input column is the sample weight.

    Every method returns the *weighted* mean over the batch, ``Σ wᵢ ℓᵢ / Σ wᵢ``, exactly:
    the rows are grouped by weight value, each group's mean comes from the model's own
    kernel, and the means are combined with weights ``w_g · n_g / Σ w``.  Class weights and
    integer weights make few groups (a few kernel calls per batch); all-distinct weights
    make one call per row — exact, and slower.  Without a ``kernels`` attribute, the
    training loop runs its Python engine around these methods.
    """

    def __init__(self, model) -> None:
        self.inner = model
        self.n_inputs = model.n_inputs + 1

    def __getattr__(self, name: str):
        if name in ("kernels", "generated", "inner") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.inner, name)

    @staticmethod
    def _groups(X: np.ndarray):
        X = np.asarray(X)
        w = X[:, -1]
        total = float(w.sum())
        values, inverse = np.unique(w, return_inverse=True)
        groups = []
        for k, v in enumerate(values):
            if v == 0 or total <= 0:
                continue
            idx = np.flatnonzero(inverse == k)
            groups.append((idx, float(v) * idx.size / total))
        return np.ascontiguousarray(X[:, :-1]), groups

    def _combine(self, method: str, theta, X, Y, *extra):
        Xi, groups = self._groups(X)
        Y = np.asarray(Y)
        fn = getattr(self.inner, method)
        out = None
        for idx, c in groups:
            r = fn(theta, *extra, Xi[idx], Y[idx])
            if isinstance(r, tuple):
                r = tuple(c * np.asarray(part, np.float64) for part in r)
                out = r if out is None else tuple(a + b for a, b in zip(out, r))
            else:
                r = c * np.asarray(r, np.float64)
                out = r if out is None else out + r
        return out

    def loss(self, theta, X, y) -> float:
        r = self._combine("loss", theta, X, y)
        return 0.0 if r is None else float(r)

    def loss_and_grad(self, theta, X, y):
        r = self._combine("loss_and_grad", theta, X, y)
        if r is None:
            return 0.0, np.zeros(self.inner.n_params, self.inner.dtype)
        return float(r[0]), r[1].astype(self.inner.dtype)

    def _product(self, kind, theta, v, X, y):
        r = self._combine(kind, theta, X, y, v)
        if r is None:
            return np.zeros(np.shape(v), self.inner.dtype)
        return r.astype(self.inner.dtype)

    def hvp(self, theta, v, X, y):
        return self._product("hvp", theta, v, X, y)

    def gnvp(self, theta, v, X, y):
        return self._product("gnvp", theta, v, X, y)

    def hessian(self, theta, X, y):
        r = self._combine("hessian", theta, X, y)
        P = self.inner.n_params
        return np.zeros((P, P), self.inner.dtype) if r is None else r.astype(self.inner.dtype)

    def predict(self, theta, X):
        return self.inner.predict(theta, np.asarray(X)[:, :-1])


def _weighted_r2(Y, P, w=None) -> float:
    Yf = np.asarray(Y, np.float64)
    P = np.asarray(P, np.float64)
    w = np.ones(Yf.shape[0]) if w is None else np.asarray(w, np.float64)
    w = w[:, None]
    mean = (w * Yf).sum(axis=0) / w.sum()
    ss_res = np.sum(w * (Yf - P) ** 2, axis=0)
    ss_tot = np.sum(w * (Yf - mean) ** 2, axis=0)
    r2 = 1 - ss_res / np.where(ss_tot > 0, ss_tot, 1.0)
    return float(np.mean(np.where(ss_tot > 0, r2, 0.0)))


def _sample_weights(sample_weight, X) -> np.ndarray | None:
    """Validated sample weights; None when there are none or all are equal (the
    unweighted mean, on the fast path)."""
    if sample_weight is None:
        return None
    weights = _check_sample_weight(sample_weight, X, dtype=np.float64)
    if np.any(weights < 0) or not np.all(np.isfinite(weights)):
        raise DataError("sample_weight must be finite and ≥ 0")
    if not weights.sum() > 0:
        raise DataError("sample_weight sums to 0: give at least one sample a positive "
                        "weight")
    if np.all(weights == weights[0]):
        return None
    return weights


class _SymnnMLP(BaseEstimator):
    """Shared implementation of the two estimators."""

    _is_classifier = False

    def __init__(self, hidden_layer_sizes=(100,), activation="relu", *, solver="adam",
                 alpha=0.0001, batch_size="auto", learning_rate="constant",
                 learning_rate_init=0.001, power_t=0.5, max_iter=200, shuffle=True,
                 random_state=None, tol=1e-4, verbose=False, warm_start=False, momentum=0.9,
                 nesterovs_momentum=True, early_stopping=False, validation_fraction=0.1,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10, max_fun=15000,
                 dtype="float64", check_every=None):
        _require_sklearn()
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dtype = dtype
        self.check_every = check_every

    # -- validation of the hyperparameters --------------------------------------------------
    def _hidden(self) -> list[int]:
        h = self.hidden_layer_sizes
        if isinstance(h, (int, np.integer)):
            h = [h]
        # walk: (2.5,) was width 2, "4" width 4 and (True,) width 1, silently
        if isinstance(h, (str, bytes)) or not hasattr(h, "__iter__") or not all(
                isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))
                for v in h):
            raise DeclarationError(
                f"hidden_layer_sizes must be a sequence of positive integers, e.g. (100,) or "
                f"(64, 32), got {self.hidden_layer_sizes!r}")
        h = [int(v) for v in h]
        if any(v <= 0 for v in h):
            raise DeclarationError(
                f"hidden_layer_sizes must be > 0, got {self.hidden_layer_sizes!r}")
        return h

    def _check_params(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise DeclarationError(f"activation must be one of {sorted(ACTIVATIONS)}, got "
                                   f"{self.activation!r}")
        if self.solver not in SOLVERS:
            raise DeclarationError(f"solver must be one of {list(SOLVERS)}, got "
                                   f"{self.solver!r}")
        if self.learning_rate not in ("constant", "invscaling"):
            raise DeclarationError(
                f"learning_rate must be 'constant' or 'invscaling' (symnn does not implement "
                f"'adaptive'), got {self.learning_rate!r}")
        for name in ("max_iter", "n_iter_no_change"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise DeclarationError(f"{name} must be an integer ≥ 1, got {v!r}")
        if not (isinstance(self.alpha, (int, float)) and self.alpha >= 0):
            raise DeclarationError(f"alpha must be ≥ 0, got {self.alpha!r}")
        if not 0 < self.validation_fraction < 1:
            raise DeclarationError(f"validation_fraction must be in (0, 1), got "
                                   f"{self.validation_fraction!r}")

    def _optimizer(self, batch: int, total_weight: float):
        from symnn.train import (
            KFAC,
            LBFGS,
            SGD,
            Adam,
            InverseScaling,
            LevenbergMarquardt,
            Momentum,
            Nesterov,
            Newton,
            NewtonCG,
        )

        sched = InverseScaling(self.power_t) if self.learning_rate == "invscaling" else None
        if self.solver == "adam":
            return Adam(self.learning_rate_init, beta1=self.beta_1, beta2=self.beta_2,
                        eps=self.epsilon, weight_decay=self.alpha / batch, decay="weights",
                        schedule=sched)
        if self.solver == "sgd":
            common = dict(weight_decay=self.alpha / batch, decay="weights", schedule=sched)
            if self.momentum > 0 and self.nesterovs_momentum:
                return Nesterov(self.learning_rate_init, momentum=self.momentum, **common)
            if self.momentum > 0:
                return Momentum(self.learning_rate_init, momentum=self.momentum, **common)
            return SGD(self.learning_rate_init, **common)
        wd = dict(weight_decay=self.alpha / total_weight, decay="weights")
        if self.solver == "lbfgs":
            return LBFGS(tol=self.tol, max_fun=int(self.max_fun), **wd)
        if self.solver == "newton-cg":
            return NewtonCG(tol=self.tol, **wd)
        if self.solver == "lm":
            return LevenbergMarquardt(tol=self.tol, **wd)
        if self.solver == "kfac":
            return KFAC(tol=self.tol, **wd)
        return Newton(tol=self.tol, **wd)

    # -- hooks for the two estimators ---------------------------------------------------------
    def _encode(self, y, first_pass: bool, classes=None):
        raise NotImplementedError

    @staticmethod
    def _score_val(model, params, X, Y, w=None) -> float:
        raise NotImplementedError

    def _stochastic(self) -> bool:
        """partial_fit exists for the stochastic solvers only (as in scikit-learn)."""
        if self.solver not in STOCHASTIC_SOLVERS:
            raise AttributeError(f"partial_fit is only available for stochastic optimizers "
                                 f"{STOCHASTIC_SOLVERS}; {self.solver!r} is not stochastic")
        return True

    # -- fit ----------------------------------------------------------------------------------
    def fit(self, X, y, sample_weight=None):
        """Train on ``X`` (n_samples, n_features) and targets ``y``; returns ``self``.

        ``sample_weight`` (n_samples,), optional: non-negative weights; each mini-batch
        loss is the weighted mean ``Σ wᵢ ℓᵢ / Σ wᵢ``.  With ``warm_start=True`` a second
        ``fit`` continues from the fitted parameters.
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def _fit(self, X, y, sample_weight=None, incremental: bool = False, classes=None):
        from symnn.train import fit as symnn_fit

        self._check_params()
        hidden = self._hidden()
        first_pass = not hasattr(self, "params_") or (not self.warm_start and not incremental)
        X, y = validate_data(self, X, y, multi_output=not self._is_classifier,
                             y_numeric=not self._is_classifier, dtype=[np.float64, np.float32],
                             reset=first_pass)
        weights = _sample_weights(sample_weight, X)
        Y, n_out, output, loss = self._encode(y, first_pass, classes)
        dt = np.dtype(self.dtype)
        X = np.require(X, dtype=dt, requirements=["C", "W"])
        if first_pass or not hasattr(self, "_rng_"):
            self._rng_ = check_random_state(self.random_state)
        seed = int(self._rng_.randint(np.iinfo(np.int32).max))
        arch = ((X.shape[1], *hidden, n_out), ACTIVATIONS[self.activation], output, loss,
                dt.name)
        theta0 = None if first_pass else self._continued(arch, incremental)
        model = compiled_mlp(*arch)
        Xt = X if weights is None else np.column_stack([X, weights.astype(dt)])
        early = self.early_stopping and self.solver in STOCHASTIC_SOLVERS and not incremental
        Xt, Y, val = (self._validation_split(Xt, Y, y, seed, weights is not None) if early
                      else (Xt, Y, (None, None, None)))
        n = Xt.shape[0]
        batch = self._batch(n)
        total = float(n if weights is None else Xt[:, -1].astype(np.float64).sum())
        # scikit-learn divides the L2 term by the batch's total weight: with weights, a
        # batch of ``batch`` rows weighs ``batch · mean(w)`` on average
        opt = self._optimizer(batch * total / n, total)
        stopper = _Stopper(self, model, *val, incremental)
        res = symnn_fit(model if weights is None else _Weighted(model), Xt, Y, opt,
                        epochs=1 if incremental else int(self.max_iter), batch_size=batch,
                        seed=seed, shuffle=bool(self.shuffle), callbacks=[stopper],
                        check_every=self.check_every, progress=False, theta0=theta0)
        params = res.params if stopper.best_params is None else stopper.best_params
        self.model_ = model
        self._architecture_ = arch
        self.params_ = params
        self._record(res.history, n, first_pass, incremental, stopper.scores if early else None)
        self.n_layers_ = len(hidden) + 2
        self.n_outputs_ = n_out
        self.out_activation_ = "softmax" if self._is_classifier else "identity"
        named = model.unflatten(params)
        specs = param_specs(model.declared)  # the layers say which array is which
        self.coefs_ = [np.array(named[p.name].T) for p in specs if p.role == "weight"]
        self.intercepts_ = [np.array(named[p.name]) for p in specs if p.role == "bias"]
        if (not incremental and res.stop_reason == "completed"
                and self.solver in STOCHASTIC_SOLVERS and len(res.history) == self.max_iter):
            warnings.warn(f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) reached "
                          "and the optimization hasn't converged yet.", ConvergenceWarning,
                          stacklevel=3)
        return self

    def _continued(self, arch, incremental: bool) -> np.ndarray:
        """The fitted parameters that warm_start / partial_fit continue from."""
        if getattr(self, "_architecture_", None) != arch:
            raise DeclarationError(
                f"{'partial_fit' if incremental else 'warm_start'} continues training of "
                f"the fitted network {self._architecture_[0]}, but the data and "
                f"parameters now declare {arch[0]}; keep hidden_layer_sizes, activation "
                "and dtype, or fit afresh (warm_start=False)")
        return self.params_

    def _validation_split(self, Xt, Y, y, seed: int, weighted: bool):
        """Hold out ``validation_fraction`` of the rows (stratified for a classifier): the
        training rows, targets and validation (X, Y, weights; ``Xt``'s weight column off)."""
        from sklearn.model_selection import train_test_split

        strat = y if self._is_classifier else None
        try:  # walk 7: sklearn's ValueError where a stratified split is too small
            Xt, Xv, Y, yv = train_test_split(Xt, Y, random_state=seed, stratify=strat,
                                             test_size=self.validation_fraction)
        except ValueError:
            Xv = Xt[:0]
        if Xv.shape[0] < 2:
            raise DataError("The validation set is too small. Increase "
                            "'validation_fraction' or the size of your dataset.")
        wv = None
        if weighted:
            Xv, wv = np.ascontiguousarray(Xv[:, :-1]), Xv[:, -1]
        return Xt, Y, (Xv, yv, wv)

    def _batch(self, n: int) -> int:
        """The mini-batch size for ``n`` training rows."""
        if self.batch_size == "auto":
            return min(200, n)
        if (isinstance(self.batch_size, bool) or not isinstance(self.batch_size, (int, np.integer))
                or self.batch_size < 1):
            raise DeclarationError(f"batch_size must be 'auto' or a positive integer, got "
                                   f"{self.batch_size!r}")
        return int(np.clip(self.batch_size, 1, n))

    def _record(self, history, n: int, first_pass: bool, incremental: bool, scores) -> None:
        """The loss curve, iteration counts and validation scores scikit-learn's MLP
        keeps; continued training (warm_start, partial_fit) adds to them."""
        losses = [float(v) for v in history.loss]
        self.history_ = history
        if first_pass:
            self.n_iter_ = len(history)
            self.loss_curve_ = losses
            self.t_ = n * self.n_iter_
        else:
            self.n_iter_ = getattr(self, "n_iter_", 0) + len(history)
            self.loss_curve_ = list(getattr(self, "loss_curve_", [])) + losses
            self.t_ = getattr(self, "t_", 0) + n * len(history)
        self.loss_ = self.loss_curve_[-1] if self.loss_curve_ else float("nan")
        self.best_loss_ = (None if self.early_stopping and not incremental
                           else float(np.min(self.loss_curve_)))
        self.validation_scores_ = scores
        self.best_validation_score_ = max(scores) if scores else None

    def _forward(self, X) -> np.ndarray:
        check_is_fitted(self, "params_")
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        X = np.require(X, dtype=np.dtype(self.dtype), requirements=["C", "W"])
        theta = np.require(self.params_, requirements=["C", "W"])
        # walk: in the dtype the model computes in (float32 with dtype="float32", as
        # MLPRegressor fitted on float32 data predicts float32; it was always float64)
        return np.asarray(self.model_.predict(theta, X), dtype=np.dtype(self.dtype))

    # compiled models hold Numba dispatchers and SymPy lambdas: pickle the architecture and
    # the parameters, and recompile (from the kernel cache) on unpickling
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("model_", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        arch = state.get("_architecture_")
        if arch is not None:
            self.model_ = compiled_mlp(*arch)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.input_tags.sparse = False
        return tags


class _Stopper:
    """scikit-learn's stopping rule as a :func:`symnn.train.fit` callback.

    Without early stopping: stop when the training loss has not improved by ``tol`` for more
    than ``n_iter_no_change`` epochs.  With it: the same on the validation score (accuracy
    or R², weighted by the validation rows' sample weights), keeping the parameters of the
    best score.  ``partial_fit`` (one epoch) never stops early.
    """

    def __init__(self, est, model, Xv, yv, wv=None, incremental: bool = False) -> None:
        self.est = est
        self.model = model
        self.Xv, self.yv, self.wv = Xv, yv, wv
        self.incremental = incremental
        self.best = -np.inf if Xv is not None else np.inf
        self.count = 0
        self.scores: list[float] = []
        self.best_params: np.ndarray | None = None

    def __call__(self, info) -> bool:
        est = self.est
        if est.verbose:
            print(f"Iteration {info.epoch}, loss = {info.record['loss']:.8f}")
        if est.solver not in STOCHASTIC_SOLVERS or self.incremental:
            return False
        if self.Xv is not None:
            score = est._score_val(self.model, info.params, self.Xv, self.yv, self.wv)
            self.scores.append(score)
            if score < self.best + est.tol:
                self.count += 1
            else:
                self.count = 0
            if score > self.best:
                self.best = score
                self.best_params = info.params
        else:
            loss = info.record["loss"]
            if loss > self.best - est.tol:
                self.count += 1
            else:
                self.count = 0
            self.best = min(self.best, loss)
        return self.count > est.n_iter_no_change


class SymnnClassifier(ClassifierMixin, _SymnnMLP):
    """A multilayer-perceptron classifier trained by symnn (softmax + cross-entropy).

    Parameters are those of :class:`sklearn.neural_network.MLPClassifier` (see the module
    docs), plus ``dtype`` (``"float64"`` or ``"float32"``) and ``check_every``.

    Attributes
    ----------
    classes_ : ndarray
    n_features_in_ : int
    model_ : CompiledModel
    params_ : ndarray
        The flat parameter vector θ.
    coefs_, intercepts_ : list of ndarray
        As MLPClassifier (``coefs_[i]`` of shape (n_in, n_out)).
    n_iter_, loss_, loss_curve_, history_ : training record

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0., 0.], [0., 1.], [1., 0.], [1., 1.]] * 10)
    >>> y = np.array([0, 1, 1, 0] * 10)
    >>> clf = SymnnClassifier((8,), activation="tanh", solver="lbfgs", random_state=1)
    >>> clf.fit(X, y).predict([[0., 1.], [1., 1.]])
    array([1, 0])
    """

    _is_classifier = True

    def _encode(self, y, first_pass: bool, classes=None):
        check_classification_targets(y)
        if y.ndim != 1:
            raise DataError(f"SymnnClassifier: y must be 1-D class labels, got shape {y.shape} "
                            "(multilabel targets are not supported)")
        if first_pass:
            if classes is not None:
                self.classes_ = np.unique(np.asarray(classes))
            else:
                self.classes_ = np.unique(y)
            if len(self.classes_) < 2:
                raise DataError(f"SymnnClassifier needs samples of at least 2 classes in the "
                                f"data; got 1 class ({self.classes_[0]})")
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if unknown.size:
            how = ("pass every class to the first partial_fit call (classes=…)"
                   if classes is not None or not self.warm_start else
                   "warm_start needs the classes of the first fit")
            raise DataError(f"y has classes {unknown.tolist()} not in classes_ "
                            f"{self.classes_.tolist()}; {how}")
        idx = np.searchsorted(self.classes_, y)
        K = len(self.classes_)
        Y = np.zeros((y.shape[0], K), np.dtype(self.dtype))
        Y[np.arange(y.shape[0]), idx] = 1
        return Y, K, "softmax", "cross_entropy"

    @available_if(_SymnnMLP._stochastic)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over ``(X, y)``, continuing from the current parameters.

        ``classes`` (every label of the whole data set) is required on the first call and
        may be omitted later.  Only for ``solver="adam"`` or ``"sgd"``.
        """
        if not hasattr(self, "params_") and classes is None:
            raise DataError("classes must be passed on the first call to partial_fit "
                            "(every label of the whole data set, e.g. np.unique(y_all))")
        if hasattr(self, "params_") and classes is not None:
            if not np.array_equal(np.unique(np.asarray(classes)), self.classes_):
                raise DataError(f"classes={list(classes)!r} differs from the classes "
                                f"{self.classes_.tolist()} of the first partial_fit call")
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    @staticmethod
    def _score_val(model, params, X, Y, w=None) -> float:
        """(Weighted) accuracy of θ = ``params`` on one-hot targets ``Y``."""
        P = model.predict(params, X)
        hit = (np.argmax(P, axis=1) == np.argmax(Y, axis=1)).astype(np.float64)
        return float(np.average(hit, weights=w))

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes), columns in ``classes_`` order."""
        return self._forward(X)

    def predict_log_proba(self, X) -> np.ndarray:
        """Log of :meth:`predict_proba`."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X) -> np.ndarray:
        """The most probable class of each sample."""
        proba = self._forward(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = False
        return tags


class SymnnRegressor(RegressorMixin, _SymnnMLP):
    """A multilayer-perceptron regressor trained by symnn (identity output, MSE).

    Parameters are those of :class:`sklearn.neural_network.MLPRegressor` (see the module
    docs), plus ``dtype`` and ``check_every``.  ``y`` may be 1-D or 2-D (several outputs).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.linspace(-1, 1, 50).reshape(-1, 1); y = X[:, 0] ** 2
    >>> reg = SymnnRegressor((16,), activation="tanh", solver="lm", max_iter=50,
    ...                      random_state=0).fit(X, y)
    >>> reg.score(X, y) > 0.99
    True
    """

    def _encode(self, y, first_pass: bool, classes=None):
        y2 = y.ndim == 2
        Y = y.reshape(y.shape[0], -1).astype(np.dtype(self.dtype))
        if not first_pass and Y.shape[1] != self.n_outputs_:
            raise DataError(f"y has {Y.shape[1]} outputs; the fitted regressor has "
                            f"{self.n_outputs_}")
        self._y_2d = y2
        return Y, Y.shape[1], None, "mse"

    @available_if(_SymnnMLP._stochastic)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over ``(X, y)``, continuing from the current parameters (``solver``
        ``"adam"`` or ``"sgd"`` only)."""
        return self._fit(X, y, sample_weight, incremental=True)

    @staticmethod
    def _score_val(model, params, X, Y, w=None) -> float:
        """(Weighted) R² of θ = ``params`` (averaged over outputs)."""
        return _weighted_r2(Y, model.predict(params, X), w)

    def predict(self, X) -> np.ndarray:
        """Predictions, shape (n_samples,) for 1-D training targets, else (n, n_outputs)."""
        out = self._forward(X)
        return out if self._y_2d else out[:, 0]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags
