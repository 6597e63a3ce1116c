"""Chapter 03: AdaBelief in Keras and in torch. The checks pass a correct optimizer on any seed, and fail each
realistic wrong one with the diagnosis written for it (a check no mutant can fail would be a defect)."""
from __future__ import annotations

import numpy as np
import pytest

from course.chapters import optimizers as chapter
from course.check import run_checks
from course.questions import VISIBLE_SEED, run_case

SEEDS = [VISIBLE_SEED, 7, 2026]
DIAGNOSIS = {variant: diagnosis for diagnosis, variant in chapter.MISTAKES.items()}
V = chapter.Variant


# --- implementations with switchable bugs (the defaults are correct) -----------------------------------------------

def keras_adabelief(belief=True, new_m=True, eps_in_s=True, eps_out=True, bias_correction=True,
                    keras_step_size=False, first_step=1, keep_state=True, swap_betas=False, sign=-1.0, sqrt=True,
                    lr_scale=1.0, eps_under_root=False, fixed_lr=False):
    """A Keras 3 AdaBelief with the bugs students write, one switch each."""
    import keras
    from keras import ops

    class AdaBelief(keras.optimizers.Optimizer):
        def __init__(self, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-16, **kwargs):
            super().__init__(learning_rate=learning_rate, name="adabelief", **kwargs)
            self.beta_1, self.beta_2 = (beta_2, beta_1) if swap_betas else (beta_1, beta_2)
            self.epsilon = epsilon
            self.initial_lr = learning_rate

        def build(self, var_list):
            if self.built:
                return
            super().build(var_list)
            self._m = [self.add_variable_from_reference(v, "m") for v in var_list]
            self._s = [self.add_variable_from_reference(v, "s") for v in var_list]

        def update_step(self, gradient, variable, learning_rate):
            dtype = variable.dtype
            lr = ops.cast(self.initial_lr if fixed_lr else learning_rate, dtype) * lr_scale
            g = ops.cast(gradient, dtype)
            t = ops.cast(self.iterations + first_step, dtype)
            b1, b2, eps = (ops.cast(x, dtype) for x in (self.beta_1, self.beta_2, self.epsilon))
            m_slot = self._m[self._get_variable_index(variable)]
            s_slot = self._s[self._get_variable_index(variable)]
            old_m = ops.convert_to_tensor(m_slot)
            m = b1 * m_slot + (1 - b1) * g
            centre = (m if new_m else old_m) if belief else 0.0
            s = b2 * s_slot + (1 - b2) * ops.square(g - centre) + (eps if eps_in_s else 0.0)
            if keep_state:
                self.assign(m_slot, m)
                self.assign(s_slot, s)
            root = ops.sqrt if sqrt else (lambda x: x)
            if keras_step_size:
                size = lr * ops.sqrt(1 - ops.power(b2, t)) / (1 - ops.power(b1, t))
                update = size * m / (root(s) + eps)
            else:
                bc1, bc2 = (1 - ops.power(b1, t), 1 - ops.power(b2, t)) if bias_correction else (1.0, 1.0)
                if eps_under_root:
                    update = lr * (m / bc1) / root(s / bc2 + eps)
                else:
                    update = lr * (m / bc1) / (root(s / bc2) + (eps if eps_out else 0.0))
            self.assign_add(variable, sign * update)

    return AdaBelief


def torch_adabelief(belief=True, new_m=True, eps_in_s=True, eps_out=True, bias_correction=True,
                    keras_step_size=False, first_step=1, keep_state=True, swap_betas=False, sign=-1.0, sqrt=True,
                    lr_scale=1.0, no_grad=True, eps_under_root=False, shared_counter=False, fixed_lr=False):
    """A torch AdaBelief with the bugs students write, one switch each."""
    import torch

    class AdaBelief(torch.optim.Optimizer):
        def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-16):
            super().__init__(params, dict(lr=lr, betas=betas[::-1] if swap_betas else betas, eps=eps))

        def _step(self):
            for group in self.param_groups:
                b1, b2 = group["betas"]
                eps, lr = group["eps"], (self.defaults if fixed_lr else group)["lr"] * lr_scale
                for p in group["params"]:
                    state = self.state[p]
                    if not state:
                        state.update(step=0, m=torch.zeros_like(p), s=torch.zeros_like(p))
                    t = state["step"] + first_step
                    state["step"] += 1
                    if shared_counter:  # one counter on the optimizer, advanced once per parameter
                        self.t = getattr(self, "t", 0) + 1
                        t = self.t
                    g, old_m = p.grad, state["m"]
                    m = b1 * old_m + (1 - b1) * g
                    centre = (m if new_m else old_m) if belief else 0.0
                    s = b2 * state["s"] + (1 - b2) * (g - centre) ** 2 + (eps if eps_in_s else 0.0)
                    if keep_state:
                        state["m"], state["s"] = m, s
                    root = torch.sqrt if sqrt else (lambda x: x)
                    if keras_step_size:
                        update = lr * (1 - b2 ** t) ** 0.5 / (1 - b1 ** t) * m / (root(s) + eps)
                    else:
                        bc1, bc2 = (1 - b1 ** t, 1 - b2 ** t) if bias_correction else (1.0, 1.0)
                        if eps_under_root:
                            update = lr * (m / bc1) / root(s / bc2 + eps)
                        else:
                            update = lr * (m / bc1) / (root(s / bc2) + (eps if eps_out else 0.0))
                    p.add_(sign * update)

        def step(self, closure=None):
            if no_grad:
                with torch.no_grad():
                    self._step()
            else:
                self._step()

    return AdaBelief


FACTORIES = {"AdaBeliefKeras": keras_adabelief, "AdaBeliefTorch": torch_adabelief}


def question(name):
    return chapter.CHAPTER.question(name)


def verdicts(name, obj, seed):
    q = question(name)
    return [run_case(q, obj, case) for case in q.cases(seed)]


# --- the reference solutions pass ------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", FACTORIES)
def test_correct_optimizer_passes_every_case(name, seed):
    failed = [v.message for v in verdicts(name, FACTORIES[name](), seed) if not v.passed]
    assert failed == []


def test_reference_agrees_with_both_frameworks_adam():
    """The oracle's own check runs (and passes) on every case of several seeds."""
    for seed in SEEDS:
        for case in question("AdaBeliefTorch").cases(seed):
            chapter.check_reference_against_adam(case.inputs)


def test_reference_is_adabelief_by_hand():
    """One step of AdaBelief from zero state, written out: m = (1-β1)g, s = (1-β2)(β1 g)² + ε."""
    inputs = {"learning_rate": 0.5, "beta_1": 0.75, "beta_2": 0.875, "epsilon": 2.0 ** -20, "steps": 1,
              "w0": np.array([1.0, -2.0]), "g0": np.array([[2.0, -0.5]])}
    g = inputs["g0"][0]
    m_hat = (0.25 * g) / 0.25
    s_hat = (0.125 * (0.75 * g) ** 2 + 2.0 ** -20) / 0.125
    expected = inputs["w0"] - 0.5 * m_hat / (np.sqrt(s_hat) + 2.0 ** -20)
    np.testing.assert_allclose(chapter.adabelief_reference(inputs)["w0"][1], expected, rtol=1e-15)


# --- each realistic mistake fails with its own diagnosis -------------------------------------------------------------

NAMED = [
    (dict(first_step=0), V(first_step=0)),
    (dict(sign=+1.0), V(sign=+1.0)),
    (dict(keep_state=False), V(keep_state=False)),
    (dict(belief=False), V(belief=False)),
    (dict(new_m=False), V(new_m=False)),
    (dict(bias_correction=False), V(bias_correction=False)),
    (dict(swap_betas=True), V(swap_betas=True)),
    (dict(sqrt=False), V(sqrt=False)),
    (dict(eps_in_s=False), V(eps_in_s=False)),
    (dict(eps_out=False), V(eps_out=False)),
    (dict(keras_step_size=True), V(keras_step_size=True)),
    (dict(eps_under_root=True), V(eps_under_root=True)),
]


@pytest.mark.parametrize("seed", [VISIBLE_SEED, 11])
@pytest.mark.parametrize("bug, variant", [(dict(shared_counter=True), V(shared_counter=True)),
                                          (dict(fixed_lr=True), V(fixed_lr=True))],
                         ids=["shared_counter", "lr_from_defaults"])
def test_torch_only_mistake_is_named(bug, variant, seed):
    """Torch-only mistakes: a step counter on the optimizer, ++ per parameter; self.defaults['lr'] (per-group
    rates and the scheduler's halving ignored)."""
    messages = [v.message for v in verdicts("AdaBeliefTorch", torch_adabelief(**bug), seed) if not v.passed]
    assert DIAGNOSIS[variant] in messages
    assert not (set(chapter.MISTAKES) - {DIAGNOSIS[variant]}) & set(messages)


def test_keras_constant_learning_rate_fails_on_the_schedule():
    """A Keras optimizer that keeps the constructor's rate instead of update_step's argument."""
    failed = [v.message for v in verdicts("AdaBeliefKeras", keras_adabelief(fixed_lr=True), VISIBLE_SEED)
              if not v.passed]
    assert len(failed) == 1 and "learning_rate argument of update_step" in failed[0]


@pytest.mark.parametrize("seed", [VISIBLE_SEED, 11])
@pytest.mark.parametrize("bug, variant", NAMED, ids=[next(iter(b)) + "=" + str(next(iter(b.values()))) for b, _ in NAMED])
@pytest.mark.parametrize("name", FACTORIES)
def test_mistake_is_named(name, bug, variant, seed):
    messages = [v.message for v in verdicts(name, FACTORIES[name](**bug), seed) if not v.passed]
    assert messages, "the mutant passes every case"
    assert DIAGNOSIS[variant] in messages
    others = set(chapter.MISTAKES) - {DIAGNOSIS[variant]}
    assert not others & set(messages), f"misdiagnosed as {others & set(messages)}"


@pytest.mark.parametrize("name", FACTORIES)
def test_unnamed_mistake_says_where_it_departs(name):
    """A learning rate off by 1 %: no named mistake fits, so the message gives the first step and the values."""
    messages = [v.message for v in verdicts(name, FACTORIES[name](lr_scale=1.01), VISIBLE_SEED) if not v.passed]
    assert len(messages) == len(question(name).cases())
    assert all(m.startswith("the first step already departs from the reference: w") for m in messages), messages


def test_torch_without_no_grad_is_reported():
    messages = {v.message for v in verdicts("AdaBeliefTorch", torch_adabelief(no_grad=False), VISIBLE_SEED)}
    assert len(messages) == 1 and "leaf Variable" in messages.pop()


def test_keras2_api_is_reported():
    """The seed's OptimizerV2 style (_create_slots, _resource_apply_dense) is never called by Keras 3."""
    import keras

    class SeedStyle(keras.optimizers.Optimizer):
        def __init__(self, learning_rate=1e-3, **kwargs):
            super().__init__(learning_rate=learning_rate, name="seed_style")

        def _create_slots(self, var_list):
            pass

        def _resource_apply_dense(self, grad, var):
            pass

    messages = {v.message for v in verdicts("AdaBeliefKeras", SeedStyle, VISIBLE_SEED)}
    assert len(messages) == 1
    message = messages.pop()
    assert "Keras 2 API" in message and "update_step" in message


@pytest.mark.parametrize("name, wrong_base", [("AdaBeliefKeras", "torch"), ("AdaBeliefTorch", "keras")])
def test_wrong_base_class_is_reported(name, wrong_base):
    other = {"keras": "AdaBeliefKeras", "torch": "AdaBeliefTorch"}[wrong_base]
    messages = {v.message for v in verdicts(name, FACTORIES[other](), VISIBLE_SEED)}
    assert len(messages) == 1 and "subclasses" in messages.pop()


def test_unsolved_stub_is_not_attempted():
    import keras

    class Stub(keras.optimizers.Optimizer):
        def __init__(self, learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-16, **kwargs):
            super().__init__(learning_rate=learning_rate, name="adabelief", **kwargs)

        def build(self, var_list):
            raise NotImplementedError("Replace this line with your solution.")

        def update_step(self, gradient, variable, learning_rate):
            raise NotImplementedError("Replace this line with your solution.")

    report = run_checks(question("AdaBeliefKeras"), Stub)
    assert report.passed == 0
    assert all(v.message.startswith("not attempted") for _, v in report.results)
