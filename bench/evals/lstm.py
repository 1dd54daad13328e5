"""GradBench ``lstm`` (ADBench's diagonal LSTM): l layers of b cells run over a sequence of c
characters (b bits each); the objective is the negative mean log-likelihood of each next
character, differentiated with respect to ``main_params`` (2l × 4b: per layer the weights and
the biases of the forget, input, output and change gates) and ``extra_params`` (3 × b: input
weight, output weight, output bias). The state (2l × b: hidden and cell per layer) is copied
and not differentiated. Inputs as in ADBench's generator: parameters and state uniform in
[0, 1), the sequence random bits (ADBench encodes a text; b = 14)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..timing import Inputs
from ._common import floats, random_direction, reverse_gradient, unknown
from ._jit import jit

GRADBENCH_FUNCTIONS: tuple[str, ...] = ("objective", "jacobian")
ACTIVE = (True, True, False, False)
BITS = 14
SIZES: dict[str, Any] = {"quick": (2, 64), "full": (2, 1024), "sweep": [(4, 1024), (2, 4096)]}


@jit
def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


@jit
def lstm_model(weight, bias, hidden, cell, inp):
    b = hidden.shape[0]
    for i in range(b):
        forget = sigmoid(inp[i] * weight[i] + bias[i])
        ingate = sigmoid(hidden[i] * weight[b + i] + bias[b + i])
        outgate = sigmoid(inp[i] * weight[2 * b + i] + bias[2 * b + i])
        change = np.tanh(hidden[i] * weight[3 * b + i] + bias[3 * b + i])
        cell[i] = cell[i] * forget + ingate * change
        hidden[i] = outgate * np.tanh(cell[i])


@jit
def lstm_objective(main_params, extra_params, state, sequence):
    layers = main_params.shape[0] // 2
    b = extra_params.shape[1]
    c = sequence.shape[0]
    # a copy by loop: state.copy() is a memcpy, refused in reverse mode (even of Const data)
    st = np.empty_like(state)
    for i in range(state.shape[0]):
        for j in range(b):
            st[i, j] = state[i, j]
    ypred = np.empty(b)
    total = 0.0
    count = 0
    for t in range(c - 1):
        for i in range(b):
            ypred[i] = sequence[t, i] * extra_params[0, i]
        lstm_model(main_params[0], main_params[1], st[0], st[1], ypred)
        for layer in range(1, layers):
            lstm_model(
                main_params[2 * layer],
                main_params[2 * layer + 1],
                st[2 * layer],
                st[2 * layer + 1],
                st[2 * layer - 2],
            )
        last = st[2 * layers - 2]
        for i in range(b):
            ypred[i] = last[i] * extra_params[1, i] + extra_params[2, i]
        s = 0.0
        for i in range(b):
            s += np.exp(ypred[i])
        lse = np.log(s + 2.0)
        for i in range(b):
            total += sequence[t + 1, i] * (ypred[i] - lse)
        count += b
    return -total / count


def generate(size: tuple[int, int], seed: int = 31337) -> dict[str, Any]:
    """An ADBench-style lstm input for (layers l, characters c)."""
    layers, c = size
    r = np.random.RandomState(seed)
    return {
        "main_params": r.rand(2 * layers, 4 * BITS).tolist(),
        "extra_params": r.rand(3, BITS).tolist(),
        "state": r.rand(2 * layers, BITS).tolist(),
        "sequence": r.randint(0, 2, size=(c, BITS)).astype(float).tolist(),
    }


def arguments(inp: dict[str, Any]) -> tuple[Any, ...]:
    """GradBench input -> (main_params, extra_params, state, sequence) as 2-D arrays."""
    return tuple(floats(inp[k]) for k in ("main_params", "extra_params", "state", "sequence"))


def make_inputs(size: tuple[int, int]) -> Inputs:
    """Kernel inputs for (l, c), with a random direction in the parameters."""
    args = arguments(generate(size))
    return Inputs(args, random_direction(args, ACTIVE), {"l": size[0], "c": size[1], "b": BITS})


def size_label(size: tuple[int, int]) -> str:
    """``l=2 c=1024``."""
    return f"l={size[0]} c={size[1]}"


def array_objective(xp: Any, main_params: Any, extra_params: Any, state: Any, sequence: Any) -> Any:
    """The same objective as array code (a Python loop over the sequence, vectors per layer)."""
    layers = main_params.shape[0] // 2
    b = extra_params.shape[1]
    c = sequence.shape[0]

    def step(t: Any, carry: tuple[Any, Any]) -> tuple[Any, Any]:
        st, total = carry
        inp = sequence[t] * extra_params[0]
        rows = []
        for i in range(layers):
            w = main_params[2 * i].reshape((4, b))
            bias = main_params[2 * i + 1].reshape((4, b))
            hidden, cell = st[2 * i], st[2 * i + 1]
            forget = xp.sigmoid(inp * w[0] + bias[0])
            ingate = xp.sigmoid(hidden * w[1] + bias[1])
            outgate = xp.sigmoid(inp * w[2] + bias[2])
            change = xp.tanh(hidden * w[3] + bias[3])
            cell = cell * forget + ingate * change
            hidden = outgate * xp.tanh(cell)
            rows += [hidden, cell]
            inp = hidden
        ypred = inp * extra_params[1] + extra_params[2]
        lse = xp.log(xp.sum(xp.exp(ypred), axis=0) + 2.0)
        return xp.stack(rows), total + xp.sum(sequence[t + 1] * (ypred - lse), axis=0)

    _, total = xp.fold(c - 1, step, (state, 0.0 * main_params[0, 0]))
    return -total / ((c - 1) * b)


def gradbench_prepare(function: str, input: dict[str, Any]) -> Callable[[], Any]:
    """Decode once; ``objective`` -> the loss, ``jacobian`` -> the gradient of main_params
    then extra_params, each flattened row by row (enzpy reverse)."""
    args = arguments(input)
    if function == "objective":
        return lambda: float(lstm_objective(*args))
    if function == "jacobian":

        def jacobian() -> np.ndarray:
            gm, ge, _, _ = reverse_gradient(lstm_objective, args, ACTIVE)
            return np.concatenate([gm.ravel(), ge.ravel()])

        return jacobian
    raise unknown("lstm", function, GRADBENCH_FUNCTIONS)


def gradbench(function: str, input: dict[str, Any]) -> Any:
    """One GradBench evaluation of ``function`` (see :func:`gradbench_prepare`)."""
    return gradbench_prepare(function, input)()


#: the kernel the benchmark times and differentiates
PRIMAL = lstm_objective
