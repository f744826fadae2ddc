"""Each optimizer's first steps on a fixed gradient sequence, against its update rule written out
here and against scikit-learn's own optimizers where the conventions match."""

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.neural_network._stochastic_optimizers import AdamOptimizer, SGDOptimizer

from model.network import Network
from model.optimizers import OPTIMIZERS, Adam, AdamW, check_optimizer_name
from tests.helpers import small_classifier

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# Six parameters, four steps. The gradients change sign and size between steps (so momentum,
# Nesterov and the moment estimates all differ from plain SGD), one is near Adam's epsilon and one
# is zero; the learning rate changes from step to step as a schedule would make it.
P0 = np.array([0.5, -1.0, 2.0, 0.0, -0.3, 1.5])
GRADS = np.array([
    [0.2, -0.5, 1.0, 1e-6, 0.0, -3.0],
    [-0.4, -0.1, 0.5, 2e-6, 0.0, 2.0],
    [0.3, 0.6, -2.0, -1e-6, 0.0, 0.5],
    [0.1, -0.2, 0.7, 1e-6, 0.0, -1.0],
])
LRS = [0.1, 0.05, 0.1, 0.02]
MU, RHO, B1, B2, EPS = 0.9, 0.9, 0.9, 0.999, 1e-8
WD = 0.3
DECAY_MASK = np.array([1.0, 1.0, 1.0, 1.0, 0.0, 0.0])  # four "weights", then two "biases"


def _reference(name: str, variant: str = "") -> list[np.ndarray]:
    """The parameters after each step, by the textbook rule for ``name`` (float64, no tricks).

    ``variant`` names a wrong version of the rule, used to show that the test tells them apart.
    """
    theta = P0.copy()
    v = np.zeros_like(theta)  # velocity (momentum, Nesterov) or second moment (RMSprop, Adam)
    m = np.zeros_like(theta)
    out = []
    for t, (g, lr) in enumerate(zip(GRADS, LRS), start=1):
        if name == "sgd":
            theta = theta - lr * g
        elif name == "momentum" or (name == "nesterov" and variant == "plain_momentum"):
            v = MU * v - lr * g
            theta = theta + v
        elif name == "nesterov":
            # scikit-learn's form: the step looks ahead along the new velocity
            v = MU * v - lr * g
            theta = theta + MU * v - lr * g
        elif name == "rmsprop":
            v = RHO * v + (1 - RHO) * g**2
            theta = theta - lr * g / (np.sqrt(v) + EPS)
        elif name in ("adam", "adamw"):
            if name == "adamw" and variant == "coupled_decay":
                g = g + WD * DECAY_MASK * theta  # L2 folded into the gradient: plain Adam + L2
            elif name == "adamw" and variant != "no_decay":
                mask = np.ones_like(theta) if variant == "decay_biases" else DECAY_MASK
                theta = theta - lr * WD * mask * theta  # decoupled: before and outside Adam
            m = B1 * m + (1 - B1) * g
            v = B2 * v + (1 - B2) * g**2
            rate = lr if variant == "no_bias_correction" else lr * np.sqrt(1 - B2**t) / (1 - B1**t)
            theta = theta - rate * m / (np.sqrt(v) + EPS)
        out.append(theta.copy())
    return out


def _make(name: str, params: np.ndarray):
    if name == "adamw":
        return AdamW(params, weight_decay=WD, decay_mask=DECAY_MASK.astype(params.dtype))
    return OPTIMIZERS[name](params)


def _trajectory(name: str, dtype=np.float64) -> list[np.ndarray]:
    params = P0.astype(dtype)
    opt = _make(name, params)
    out = []
    for g, lr in zip(GRADS, LRS):
        opt.step(g.astype(dtype), lr)
        assert opt.params is params and params.dtype == dtype  # updated in place, dtype kept
        out.append(params.astype(np.float64))
    return out


#: For each optimizer, wrong versions of its rule that the comparison must reject.
WRONG_VARIANTS = {
    "sgd": [],
    "momentum": [],
    "nesterov": ["plain_momentum"],
    "rmsprop": [],
    "adam": ["no_bias_correction"],
    "adamw": ["no_decay", "coupled_decay", "decay_biases", "no_bias_correction"],
}


def test_every_optimizer_is_covered():
    assert set(WRONG_VARIANTS) == set(OPTIMIZERS)


def test_an_unknown_optimizer_is_refused_with_the_known_ones_listed():
    assert check_optimizer_name("adamw") == "adamw"
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'; expected one of: sgd, momentum, nesterov, "
                                         "rmsprop, adam, adamw$"):
        check_optimizer_name("lbfgs")


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 2e-6)])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_update_rule_matches_the_formula(name, dtype, rtol):
    got, expected = _trajectory(name, dtype), _reference(name)
    for step, (a, b) in enumerate(zip(got, expected), start=1):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * 1e-3, err_msg=f"{name}, step {step}")
    assert not np.allclose(expected[-1], P0)  # the steps moved the parameters
    # the sequence is one on which the wrong versions end up far from the right one
    for variant in WRONG_VARIANTS[name]:
        wrong = _reference(name, variant)
        assert np.max(np.abs(wrong[-1] - expected[-1])) > 1e-3, variant
        assert not np.allclose(got[-1], wrong[-1], rtol=1e-4, atol=1e-6), variant


def _sklearn_trajectory(name: str) -> list[np.ndarray]:
    params = [P0.copy()]
    if name == "adam":
        opt = AdamOptimizer(params, learning_rate_init=LRS[0], beta_1=B1, beta_2=B2, epsilon=EPS)
    else:
        opt = SGDOptimizer(params, learning_rate_init=LRS[0], momentum=0.0 if name == "sgd" else MU,
                           nesterov=name == "nesterov")
    out = []
    for g, lr in zip(GRADS, LRS):
        if name == "adam":
            opt.learning_rate_init = lr  # Adam derives its step size from this each step
        else:
            opt.learning_rate = lr
        opt.update_params(params, [g])
        out.append(params[0].copy())
    return out


@pytest.mark.parametrize("name", ["sgd", "momentum", "nesterov", "adam"])
def test_update_rule_matches_scikit_learn(name):
    for step, (a, b) in enumerate(zip(_trajectory(name), _sklearn_trajectory(name)), start=1):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15, err_msg=f"{name}, step {step}")


def test_adam_first_step_is_the_learning_rate_in_size():
    """With bias correction, step one moves every parameter by lr * g / (|g| + eps'), about lr
    whatever the gradient's scale; without it the step would be lr (1 - b1) / sqrt(1 - b2) ~ 3.2 lr."""
    g = np.array([1e-3, -0.5, 20.0, -4e3])
    params = np.zeros(4)
    Adam(params).step(g, 0.01)
    np.testing.assert_allclose(params, -0.01 * g / (np.abs(g) + EPS / np.sqrt(1 - B2)), rtol=1e-12)
    np.testing.assert_allclose(params, -0.01 * np.sign(g), rtol=1e-3)


def test_adamw_shrinks_weights_and_never_biases():
    params = np.array([2.0, -1.0, 0.5, 3.0, -2.0])
    mask = np.array([1.0, 1.0, 1.0, 0.0, 0.0])
    opt = AdamW(params, weight_decay=0.5, decay_mask=mask)
    for _ in range(3):
        opt.step(np.zeros(5), 0.1)  # no gradient: only the decay acts (Adam's step is 0 / eps)
    np.testing.assert_allclose(params[:3], np.array([2.0, -1.0, 0.5]) * (1 - 0.1 * 0.5) ** 3, rtol=1e-14)
    assert params[3] == 3.0 and params[4] == -2.0
    # without a mask every parameter decays, at the default rate 0.01
    params = np.array([2.0, -1.0])
    AdamW(params).step(np.zeros(2), 0.1)
    np.testing.assert_allclose(params, [2.0 * 0.999, -1.0 * 0.999], rtol=1e-14)


def test_adamw_estimator_is_adam_plus_decoupled_decay(monkeypatch):
    """One full-batch step of small_classifier(optimizer="adamw", l2=lam) differs from Adam without L2
    by exactly -lr * lam * W0 on the weights and not at all on the biases; the loss has no L2 term."""
    X, y = make_classification(n_samples=64, n_features=5, random_state=0)
    initial = []
    original = Network.initialize

    def recording_initialize(self, rng):
        original(self, rng)
        self.params[self.n_weights :] = 0.5  # non-zero biases, so decaying them would show
        initial.append(self.params.copy())

    monkeypatch.setattr(Network, "initialize", recording_initialize)
    lr, lam = 0.01, 2.0
    plain, decayed = [small_classifier(hidden_layer_sizes=(6,), optimizer=name, l2=l2, learning_rate=lr, batch_size=64,
                                    max_epochs=1, dtype="float64", random_state=0).fit(X, y)
                      for name, l2 in (("adam", 0.0), ("adamw", lam))]
    np.testing.assert_array_equal(initial[0], initial[1])
    assert decayed.loss_curve_ == plain.loss_curve_  # decoupled: l2 is not in the objective
    for W0, Wp, Wd in zip(_split(initial[0], plain), plain.coefs_, decayed.coefs_):
        np.testing.assert_allclose(Wd - Wp, -lr * lam * W0, rtol=1e-9, atol=1e-15)
        assert np.abs(W0).max() > 0.1
    for bp, bd in zip(plain.intercepts_, decayed.intercepts_):
        np.testing.assert_array_equal(bp, bd)


def _split(flat: np.ndarray, est) -> list[np.ndarray]:
    """The initial weight matrices out of a packed parameter vector (weights come first)."""
    out, at = [], 0
    for W in est.coefs_:
        out.append(flat[at : at + W.size].reshape(W.shape))
        at += W.size
    return out


def _adam_with_python_floats(params, grads_seq, lrs, decay=0.0, mask=None):
    """Adam's update as model.optimizers computes it (M, V unscaled sums), every constant a
    Python float that NumPy converts to the parameters' dtype on each call."""
    m, v = np.zeros_like(params), np.zeros_like(params)
    b1, b2, eps = 0.9, 0.999, 1e-8
    scale = np.sqrt(1.0 - b2).item()
    for t, (g, lr) in enumerate(zip(grads_seq, lrs), start=1):
        if decay:
            params += params * mask * (-lr * decay)
        m *= b1
        m += g
        v *= b2
        v += g * g
        rate = lr * np.sqrt(1.0 - b2**t).item() * (1.0 - b1) / ((1.0 - b1**t) * scale)
        params -= m / (np.sqrt(v) + eps / scale) * rate
    return params


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_adam_constants_as_arrays_of_the_parameters_dtype_change_no_bit(name, dtype):
    """Adam keeps its constant factors as 0-d arrays of the parameters' dtype (faster to pass to
    NumPy): the updates are those with Python floats bit for bit, in float32 as in float64."""
    rng = np.random.default_rng(0)
    grads_seq = (rng.normal(size=(30, 50)) * rng.choice([0.0, 1e-6, 1.0], size=(30, 50)))
    grads_seq = grads_seq.astype(dtype)
    lrs = rng.uniform(1e-4, 1e-1, size=30).tolist()  # Python floats, as the training loop passes
    start = rng.normal(size=50).astype(dtype)
    mask = (np.arange(50) < 40).astype(dtype)
    params = start.copy()
    opt = AdamW(params, weight_decay=WD, decay_mask=mask) if name == "adamw" else Adam(params)
    for g, lr in zip(grads_seq, lrs):
        opt.step(g, lr)
    expected = _adam_with_python_floats(
        start.copy(), grads_seq, lrs, WD if name == "adamw" else 0.0, mask
    )
    assert params.dtype == dtype
    np.testing.assert_array_equal(params.view(np.uint8), expected.view(np.uint8))
