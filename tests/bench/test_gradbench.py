"""The GradBench adapter (``bench/gradbench``): the protocol session with fake eval modules,
the real ``python -m bench.gradbench`` replaying a recorded GradBench exchange, and one
end-to-end evaluation per real eval module present in ``bench/evals``.

The recorded exchange (``data/gradbench_exchange.jsonl``) is in GradBench's own log format:
alternating ``{"elapsed", "message"}`` and ``{"elapsed", "response"}`` lines. Its responses are
the expected shapes: ids and success flags must match exactly, outputs to rounding, error texts
must contain the recorded text, and every ``evaluate`` must report at least ``min_runs``
``"evaluate"`` timings summing to at least ``min_seconds``. The outputs in it are the math
(x², 2x, Σx², 2x), not anything the tool printed.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.gradbench import (
    KNOWN_EVALS,
    EvalModule,
    Session,
    UnknownModule,
    import_eval_module,
    run_counts,
    serve,
    timed_runs,
    to_json,
)

REPO = Path(__file__).resolve().parents[2]
EXCHANGE = Path(__file__).resolve().parent / "data" / "gradbench_exchange.jsonl"


# --------------------------------------------------------------------------- fakes


class FakeClock:
    """A nanosecond clock that advances ``step`` on every reading."""

    def __init__(self, step: int = 1_000_000) -> None:
        self.now = 0
        self.step = step

    def __call__(self) -> int:
        self.now += self.step
        return self.now


def fake_poly(calls: dict[str, int] | None = None) -> EvalModule:
    """value = Σx², gradient = 2x (as a numpy array), fail raises, nan returns NaN."""
    calls = calls if calls is not None else {}

    def gradbench(function: str, input: Any) -> Any:
        calls[function] = calls.get(function, 0) + 1
        x = np.asarray(input["x"], dtype=np.float64)
        if function == "value":
            return np.sum(x * x)  # a numpy scalar: to_json must make it a float
        if function == "gradient":
            return 2.0 * x
        if function == "nan":
            return float("nan")
        raise ZeroDivisionError("fail was asked to fail")

    return EvalModule("poly", ("value", "gradient", "fail", "nan"), gradbench)


def resolver(**modules: EvalModule):
    def resolve(name: str) -> EvalModule:
        if name not in modules:
            raise UnknownModule(f"no eval module {name!r}")
        return modules[name]

    return resolve


def evaluate(function: str, input: Any, id_: int = 7, module: str = "poly") -> dict[str, Any]:
    return {"id": id_, "kind": "evaluate", "module": module, "function": function, "input": input}


def evaluate_timings(response: dict[str, Any]) -> list[int]:
    return [t["nanoseconds"] for t in response["timings"] if t["name"] == "evaluate"]


# --------------------------------------------------------------------------- session


def test_start_reports_the_tool_and_remembers_the_eval():
    session = Session(resolve=resolver())
    response = session.handle({"id": 0, "kind": "start", "eval": "lse", "config": {"a": 1}})
    assert response == {"id": 0, "tool": "enzpy"}
    assert session.eval_name == "lse" and session.config == {"a": 1}


def test_define_known_unknown_and_broken_modules():
    def resolve(name: str) -> EvalModule:
        if name == "broken":
            raise RuntimeError("import failed inside the module")
        return resolver(poly=fake_poly())(name)

    session = Session(resolve=resolve)
    ok = session.handle({"id": 1, "kind": "define", "module": "poly"})
    assert ok["id"] == 1 and ok["success"] is True and "error" not in ok
    assert [t["name"] for t in ok["timings"]] == ["define"]
    unknown = session.handle({"id": 2, "kind": "define", "module": "gmm"})
    assert unknown == {"id": 2, "success": False, "error": "no eval module 'gmm'"}
    broken = session.handle({"id": 3, "kind": "define", "module": "broken"})
    assert broken["success"] is False and "RuntimeError: import failed" in broken["error"]
    not_a_name = session.handle({"id": 4, "kind": "define", "module": 5})
    assert not_a_name["success"] is False and "module must be a string" in not_a_name["error"]


def test_evaluate_returns_the_output_and_one_timing_per_run():
    calls: dict[str, int] = {}
    session = Session(resolve=resolver(poly=fake_poly(calls)))
    response = session.handle(evaluate("gradient", {"x": [1.0, -2.0], "min_runs": 3}))
    assert response["id"] == 7 and response["success"] is True
    assert response["output"] == [2.0, -4.0]
    assert len(evaluate_timings(response)) == 3 == calls["gradient"]
    value = session.handle(evaluate("value", {"x": [1.0, 2.0, 3.0]}))  # no Runs fields: once
    assert value["output"] == 14.0 and type(value["output"]) is float
    assert len(evaluate_timings(value)) == 1


@pytest.mark.parametrize(
    "min_runs, min_seconds, expected_runs",
    [(1, 0, 1), (3, 0, 3), (1, 0.005, 5), (2, 0.0045, 5), (7, 0.003, 7)],
)
def test_runs_until_both_min_runs_and_min_seconds_hold(min_runs, min_seconds, expected_runs):
    # every run takes exactly one clock step (1 ms) between its two readings
    session = Session(resolve=resolver(poly=fake_poly()), clock=FakeClock(1_000_000))
    input = {"x": [1.0], "min_runs": min_runs, "min_seconds": min_seconds}
    response = session.handle(evaluate("value", input))
    assert evaluate_timings(response) == [1_000_000] * expected_runs


def test_prepare_is_timed_once_and_apart_from_the_runs():
    counts = {"prepare": 0, "run": 0}

    def prepare(function: str, input: Any):
        counts["prepare"] += 1
        x = np.asarray(input["x"])

        def run():
            counts["run"] += 1
            return x * 3

        return run

    module = EvalModule("tripler", ("triple",), lambda f, i: None, prepare)
    session = Session(resolve=resolver(tripler=module))
    response = session.handle(evaluate("triple", {"x": [1, 2], "min_runs": 4}, module="tripler"))
    assert response["output"] == [3, 6]
    assert [t["name"] for t in response["timings"]] == ["prepare"] + ["evaluate"] * 4
    assert counts == {"prepare": 1, "run": 4}


def test_warmup_is_one_extra_call_under_its_own_name():
    calls: dict[str, int] = {}
    session = Session(resolve=resolver(poly=fake_poly(calls)), warmup=True)
    response = session.handle(evaluate("value", {"x": [2.0], "min_runs": 2}))
    assert [t["name"] for t in response["timings"]] == ["warmup", "evaluate", "evaluate"]
    assert calls["value"] == 3


@pytest.mark.parametrize(
    "message, error",
    [
        (evaluate("hessian", {"x": [1.0]}), "module 'poly' has no function 'hessian'"),
        (evaluate("value", {"x": [1.0]}, module="lstm"), "no eval module 'lstm'"),
        (evaluate("value", {"x": [1.0], "min_runs": 0}), "min_runs must be an integer >= 1"),
        (evaluate("value", {"x": [1.0], "min_runs": True}), "min_runs must be an integer"),
        (evaluate("value", {"x": [1.0], "min_runs": "3"}), "min_runs must be an integer"),
        (evaluate("value", {"x": [1.0], "min_seconds": -1}), "min_seconds must be a finite"),
        (evaluate("value", {"x": [1.0], "min_seconds": math.inf}), "min_seconds must be"),
        (evaluate("fail", {"x": [1.0]}), "ZeroDivisionError: fail was asked to fail"),
        (evaluate("value", {"y": [1.0]}), "KeyError: 'x'"),
        (evaluate("nan", {"x": [1.0]}), "JSON cannot represent"),
    ],
)
def test_evaluate_failures_are_reported_not_raised(message, error):
    session = Session(resolve=resolver(poly=fake_poly()))
    response = session.handle(message)
    assert response["id"] == 7 and response["success"] is False
    assert error in response["error"]
    assert "output" not in response


def test_evaluate_defines_a_module_that_was_never_defined():
    resolved = []

    def resolve(name: str) -> EvalModule:
        resolved.append(name)
        return fake_poly()

    session = Session(resolve=resolve)
    assert session.handle(evaluate("value", {"x": [3.0]}))["output"] == 9.0
    session.handle({"id": 8, "kind": "define", "module": "poly"})
    session.handle(evaluate("value", {"x": [3.0]}))
    assert resolved == ["poly"]  # imported once, then cached


def test_analysis_end_and_unknown_kinds_get_a_bare_acknowledgement():
    session = Session(resolve=resolver())
    msg = {"id": 3, "kind": "analysis", "of": 2, "valid": False, "error": "off by one"}
    assert session.handle(msg) == {"id": 3}
    assert session.analyses[2] == {"valid": False, "error": "off by one"}
    assert session.handle({"id": 4, "kind": "telemetry", "x": 1}) == {"id": 4}
    assert not session.finished
    assert session.handle({"id": 5, "kind": "end"}) == {"id": 5}
    assert session.finished


@pytest.mark.parametrize(
    "line, error",
    [
        ("{not json", "message is not JSON"),
        ("[1, 2]", "message is not a JSON object"),
        ('{"kind": "start"}', "message has no id"),
    ],
)
def test_malformed_lines_are_answered_with_an_error(line, error):
    response = Session(resolve=resolver()).handle_line(line)
    assert response["id"] is None and response["success"] is False
    assert error in response["error"]


def test_serve_answers_each_line_and_stops_at_end(tmp_path):
    lines = [
        '{"id": 0, "kind": "start"}\n',
        "\n",
        '{"id": 1, "kind": "evaluate", "module": "poly", "function": "value", '
        '"input": {"x": [1, 1], "min_runs": 2, "min_seconds": 0}}\n',
        '{"id": 2, "kind": "end"}\n',
        '{"id": 3, "kind": "start"}\n',
    ]
    out_path = tmp_path / "out.jsonl"
    with out_path.open("w") as out:
        serve(Session(resolve=resolver(poly=fake_poly())), lines, out)
    responses = [json.loads(line) for line in out_path.read_text().splitlines()]
    assert [r["id"] for r in responses] == [0, 1, 2]
    assert responses[1]["output"] == 2.0 and len(evaluate_timings(responses[1])) == 2


def test_run_counts_defaults_and_timed_runs():
    assert run_counts(3.0) == (1, 0.0)  # hello's bare-number input
    assert run_counts({"min_runs": 4, "min_seconds": 2}) == (4, 2.0)
    result, durations = timed_runs(lambda: "r", 2, 0.0035, FakeClock(1_000_000))
    assert result == "r" and durations == [1_000_000] * 4


def test_to_json_converts_numpy_and_refuses_what_json_cannot_hold():
    data = {"a": np.arange(3.0).reshape(3, 1), "b": (np.int64(2), np.float32(0.5)), 1: None}
    assert to_json(data) == {"a": [[0.0], [1.0], [2.0]], "b": [2, 0.5], "1": None}
    with pytest.raises(ValueError):
        to_json([1.0, math.inf])
    with pytest.raises(TypeError):
        to_json(object())


# --------------------------------------------------------------------------- module lookup


def write_package(root: Path, package: str, modules: dict[str, str]) -> None:
    (root / package).mkdir(parents=True)
    (root / package / "__init__.py").write_text("")
    for name, source in modules.items():
        (root / package / f"{name}.py").write_text(textwrap.dedent(source))


def test_import_eval_module_tells_unknown_from_broken(tmp_path, monkeypatch):
    write_package(
        tmp_path,
        "lookup_evals",
        {
            "good": "GRADBENCH_FUNCTIONS = ('f',)\ndef gradbench(function, input):\n    return 1\n",
            "needs_dep": "import a_dependency_that_is_not_installed\n",
        },
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_eval_module("good", "lookup_evals").GRADBENCH_FUNCTIONS == ("f",)
    with pytest.raises(UnknownModule):
        import_eval_module("absent", "lookup_evals")
    with pytest.raises(UnknownModule):
        import_eval_module("good", "no_such_package_anywhere")
    for bad_name in ("os.path", "../good", "Good", ""):
        with pytest.raises(UnknownModule):
            import_eval_module(bad_name, "lookup_evals")
    with pytest.raises(ModuleNotFoundError, match="a_dependency_that_is_not_installed"):
        import_eval_module("needs_dep", "lookup_evals")


def test_a_module_without_the_interface_is_refused():
    module = type(sys)("half_an_eval")
    module.GRADBENCH_FUNCTIONS = ("f",)
    with pytest.raises(TypeError, match="gradbench"):
        EvalModule.from_module("half", module)
    module.gradbench = lambda function, input: None
    module.GRADBENCH_FUNCTIONS = "f"
    with pytest.raises(TypeError, match="GRADBENCH_FUNCTIONS"):
        EvalModule.from_module("half", module)


# --------------------------------------------------------------------------- recorded exchange

FAKE_POLY_SOURCE = """
    import time

    import numpy as np

    print("poly: imported")  # must not reach the protocol stream

    GRADBENCH_FUNCTIONS = ("value", "gradient", "fail")


    def gradbench(function, input):
        x = np.asarray(input["x"], dtype=np.float64)
        if function == "value":
            print("poly: value")
            return float(np.sum(x * x))
        if function == "gradient":
            time.sleep(0.001)
            return 2.0 * x
        return 1 / 0
"""


def load_exchange() -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """The recorded (message, response) pairs; ``end`` has no recorded response."""
    entries = [json.loads(line) for line in EXCHANGE.read_text().splitlines() if line.strip()]
    pairs: list[tuple[dict[str, Any], dict[str, Any] | None]] = []
    for entry in entries:
        assert entry["elapsed"]["nanoseconds"] >= 0
        if "message" in entry:
            pairs.append((entry["message"], None))
        else:
            message, previous = pairs[-1]
            assert previous is None and entry["response"]["id"] == message["id"]
            pairs[-1] = (message, entry["response"])
    return pairs


def check_response(message: dict[str, Any], got: dict[str, Any], want: dict[str, Any]) -> None:
    where = f"message {message['id']} ({message['kind']})"
    assert got["id"] == want["id"], where
    assert set(got) == set(want), where
    if "success" in want:
        assert got["success"] is want["success"], (where, got.get("error"))
    if "tool" in want:
        assert got["tool"] == want["tool"], where
    if "error" in want:
        assert want["error"] in got["error"], (where, got["error"])
    if "output" in want:
        np.testing.assert_allclose(got["output"], want["output"], rtol=1e-12, err_msg=where)
    if message["kind"] == "evaluate" and got.get("success"):
        min_runs, min_seconds = run_counts(message["input"])
        runs = evaluate_timings(got)
        assert len(runs) >= min_runs, where
        assert sum(runs) >= min_seconds * 1e9, where
        assert all(isinstance(ns, int) and ns > 0 for ns in runs), where


def test_recorded_exchange_against_the_real_tool(tmp_path):
    write_package(tmp_path, "fake_evals", {"poly": FAKE_POLY_SOURCE})
    pairs = load_exchange()
    stdin = "".join(json.dumps(message) + "\n" for message, _ in pairs)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]))
    proc = subprocess.run(
        [sys.executable, "-m", "bench.gradbench", "--package", "fake_evals"],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "poly: imported" in proc.stderr and "poly: value" in proc.stderr
    responses = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(responses) == len(pairs), proc.stdout  # one answer per message, end included
    for (message, want), got in zip(pairs, responses, strict=True):
        check_response(message, got, want if want is not None else {"id": message["id"]})


def test_the_exchange_is_shaped_like_a_gradbench_session():
    pairs = load_exchange()
    kinds = [message["kind"] for message, _ in pairs]
    assert kinds[0] == "start" and kinds[1] == "define" and kinds[-1] == "end"
    assert [message["id"] for message, _ in pairs] == list(range(len(pairs)))
    assert all(response is not None for _, response in pairs[:-1])
    for message, _ in pairs:
        if message["kind"] == "analysis":
            assert pairs[message["of"]][0]["kind"] == "evaluate"


# --------------------------------------------------------------------------- real evals


def central_differences(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    grad = np.empty_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e.flat[i] = h
        grad.flat[i] = (f(x + e) - f(x - e)) / (2 * h)
    return grad


def real_session(name: str) -> Session:
    if importlib.util.find_spec(f"bench.evals.{name}") is None:
        pytest.skip(f"bench/evals/{name}.py is not there")
    session = Session()
    response = session.handle({"id": 0, "kind": "define", "module": name})
    assert response["success"], response.get("error")
    return session


def call(session: Session, module: str, function: str, input: dict[str, Any]) -> Any:
    """The output of an evaluate through the session. Two runs, so a derivative that
    accumulated into reused shadows across runs would show up as a wrong (doubled) output."""
    runs = {"min_runs": 2, "min_seconds": 0}
    response = session.handle(evaluate(function, input | runs, 1, module))
    assert response["success"], response.get("error")
    assert len(evaluate_timings(response)) >= 2
    return response["output"]


def test_real_lse():
    session = real_session("lse")
    x = np.random.default_rng(1).normal(size=7) * 3
    value = call(session, "lse", "primal", {"x": x.tolist()})
    assert value == pytest.approx(np.log(np.sum(np.exp(x))), rel=1e-12)
    grad = call(session, "lse", "gradient", {"x": x.tolist()})
    np.testing.assert_allclose(grad, np.exp(x) / np.sum(np.exp(x)), rtol=1e-10)


def test_real_det():
    session = real_session("det")
    a = np.random.default_rng(2).normal(size=(4, 4))
    value = call(session, "det", "primal", {"A": a.ravel().tolist(), "ell": 4})
    assert value == pytest.approx(np.linalg.det(a), rel=1e-10)
    grad = call(session, "det", "gradient", {"A": a.ravel().tolist(), "ell": 4})
    # d det(A) / dA = det(A) A^{-T}
    np.testing.assert_allclose(grad, (np.linalg.det(a) * np.linalg.inv(a).T).ravel(), rtol=1e-8)


def test_real_llsq():
    session = real_session("llsq")
    x, n = np.random.default_rng(3).normal(size=4), 9
    t = -1 + np.arange(n) * 2 / (n - 1)
    residual = np.sign(t) - np.polynomial.polynomial.polyval(t, x)
    value = call(session, "llsq", "primal", {"x": x.tolist(), "n": n})
    assert value == pytest.approx(0.5 * np.sum(residual**2), rel=1e-12)
    grad = call(session, "llsq", "gradient", {"x": x.tolist(), "n": n})
    powers = t[:, None] ** np.arange(x.size)[None, :]
    np.testing.assert_allclose(grad, -powers.T @ residual, rtol=1e-10, atol=1e-12)


def ode_rk4(x: np.ndarray, s: int) -> np.ndarray:
    """cmpad's an_ode as GradBench's reference solves it: y0' = x0, yi' = xi y(i-1), y(0) = 0,
    s classical Runge-Kutta steps up to t = 2."""

    def rhs(y: np.ndarray) -> np.ndarray:
        return np.concatenate([x[:1], x[1:] * y[:-1]])

    y, h = np.zeros_like(x), 2.0 / s
    for _ in range(s):
        k1 = rhs(y)
        k2 = rhs(y + h * k1 / 2)
        k3 = rhs(y + h * k2 / 2)
        k4 = rhs(y + h * k3)
        y = y + h * (k1 + 2 * k2 + 2 * k3 + k4) / 6
    return y


def test_real_ode():
    session = real_session("ode")
    x, s = np.random.default_rng(4).uniform(0.5, 1.5, size=4), 10
    primal = call(session, "ode", "primal", {"x": x.tolist(), "s": s})
    np.testing.assert_allclose(primal, ode_rk4(x, s), rtol=1e-12)
    grad = call(session, "ode", "gradient", {"x": x.tolist(), "s": s})
    expected = central_differences(lambda xv: ode_rk4(xv, s)[-1], x)
    np.testing.assert_allclose(grad, expected, rtol=1e-7, atol=1e-9)


def test_real_kmeans():
    session = real_session("kmeans")
    rng = np.random.default_rng(5)
    centroids = np.array([[0.0, 0.0], [5.0, 5.0], [-5.0, 5.0]])
    points = np.concatenate([c + rng.normal(scale=0.5, size=(6, 2)) for c in centroids])
    input = {"points": points.tolist(), "centroids": centroids.tolist()}
    cost = call(session, "kmeans", "cost", input)
    dist2 = ((points[:, None, :] - centroids[None, :, :]) ** 2).sum(-1)
    assert cost == pytest.approx(dist2.min(axis=1).sum(), rel=1e-12)
    # a point adds 2(c - p) to its nearest centroid c's gradient and 2 to its (diagonal)
    # Hessian; dir is J H^-1, elementwise
    nearest = dist2.argmin(axis=1)
    jac = np.zeros_like(centroids)
    hess = np.zeros_like(centroids)
    for p, k in zip(points, nearest, strict=True):
        jac[k] += 2 * (centroids[k] - p)
        hess[k] += 2
    direction = call(session, "kmeans", "dir", input)
    np.testing.assert_allclose(direction, jac / hess, rtol=1e-9, atol=1e-12)


# ---- ht: an independent NumPy transcription of GradBench's PyTorch objective


def _ht_pose(theta, nbones):
    pp = np.zeros((nbones + 3, 3))
    pp[0], pp[1], pp[2] = theta[0:3], 1.0, theta[3:6]
    it, ip = 6, 5
    for _ in range(5):
        for i in (1, 2, 3):
            pp[ip, 0] = theta[it]
            it += 1
            if i == 1:
                pp[ip, 1] = theta[it]
                it += 1
            ip += 1
        ip += 1
    return pp


def _ht_euler(xzy):
    tx, ty, tz = xzy[0], xzy[2], xzy[1]
    rx, ry, rz = np.eye(3), np.eye(3), np.eye(3)
    rx[1, 1], rx[2, 1], rx[1, 2], rx[2, 2] = np.cos(tx), np.sin(tx), -np.sin(tx), np.cos(tx)
    ry[0, 0], ry[2, 0], ry[0, 2], ry[2, 2] = np.cos(ty), np.sin(ty), -np.sin(ty), np.cos(ty)
    rz[0, 0], rz[1, 0], rz[0, 1], rz[1, 1] = np.cos(tz), np.sin(tz), -np.sin(tz), np.cos(tz)
    return (rz @ ry) @ rx


def _ht_angle_axis(v):
    n = np.sqrt(np.sum(v**2))
    if n < 1e-4:
        return np.eye(3)
    x, y, z = v / n
    s, c = np.sin(n), np.cos(n)
    return np.array(
        [
            [x * x + (1 - x * x) * c, x * y * (1 - c) - z * s, x * z * (1 - c) + y * s],
            [x * y * (1 - c) + z * s, y * y + (1 - y * y) * c, y * z * (1 - c) - x * s],
            [x * z * (1 - c) - y * s, z * y * (1 - c) + x * s, z * z + (1 - z * z) * c],
        ]
    )


def ht_residuals(theta, us, parents, rel0, inv, base, weights, points, corr, tri):
    nb = len(parents)
    pp = _ht_pose(theta, nb)
    rels = []
    for i in range(nb):
        tr = np.eye(4)
        tr[:3, :3] = _ht_euler(pp[3 + i])
        rels.append(rel0[i] @ tr)
    absolutes: list = []
    for i in range(nb):
        absolutes.append(rels[i] if parents[i] == -1 else absolutes[parents[i]] @ rels[i])
    posed = np.stack([absolutes[i] @ inv[i] @ base.T for i in range(nb)]).transpose(2, 0, 1)
    skinned = np.sum(posed * weights[:, :, None], 1)[:, :3]
    verts = ((_ht_angle_axis(pp[0]) * pp[1]) @ skinned.T).T + pp[2]
    if len(us) == 0:
        return points - verts[corr]
    t = tri[corr]
    u0, u1 = us[:, :1], us[:, 1:]
    return points - (u0 * verts[t[:, 0]] + u1 * verts[t[:, 1]] + (1 - u0 - u1) * verts[t[:, 2]])


def synthetic_hand(complicated: bool, seed: int = 9, nbones: int = 22, nverts: int = 30):
    """A random hand model (a bone tree, rigid transforms, sparse skinning weights) and a
    GradBench input for it."""
    rng = np.random.default_rng(seed)
    parents = np.array([-1] + [int(rng.integers(0, i)) for i in range(1, nbones)])

    def rigid():
        m = np.eye(4)
        m[:3, :3], m[:3, 3] = _ht_euler(rng.uniform(-1, 1, 3)), rng.uniform(-1, 1, 3)
        return m

    rel0 = np.stack([rigid() for _ in range(nbones)])
    inv = np.stack([rigid() for _ in range(nbones)])
    base = np.ones((nverts, 4))
    base[:, :3] = rng.uniform(-1, 1, (nverts, 3))
    sparse = rng.uniform(size=(nverts, nbones)) < 0.2
    weights = np.where(sparse, rng.uniform(size=(nverts, nbones)), 0.0)
    tri = rng.integers(0, nverts, (20, 3))
    npts = 12
    corr = rng.integers(0, 20 if complicated else nverts, npts)
    points = rng.uniform(-1, 1, (npts, 3))
    us = rng.uniform(0, 0.5, (npts, 2)) if complicated else np.zeros((0, 2))
    theta = rng.uniform(-0.5, 0.5, 26)
    model = {
        "bone_count": nbones,
        "bone_names": [f"b{i}" for i in range(nbones)],
        "parents": parents.tolist(),
        "base_relatives": rel0.tolist(),
        "inverse_base_absolutes": inv.tolist(),
        "base_positions": base.tolist(),
        "weights": weights.tolist(),
        "triangles": tri.tolist(),
        "is_mirrored": False,
    }
    data = {"model": model, "correspondences": corr.tolist(), "points": points.tolist()}
    input = {"theta": theta.tolist(), "data": data, "us": us.tolist()}
    return input, (theta, us, parents, rel0, inv, base, weights, points, corr, tri)


@pytest.mark.parametrize("complicated", [False, True])
def test_real_ht(complicated):
    """The residuals against a NumPy transcription of GradBench's PyTorch objective; the
    Jacobian (θ columns, and the two `us` columns) against its central differences."""
    session = real_session("ht")
    input, raw = synthetic_hand(complicated)
    theta, us, rest = raw[0], raw[1], raw[2:]
    residuals = call(session, "ht", "objective", input)
    np.testing.assert_allclose(residuals, ht_residuals(*raw).ravel(), rtol=1e-12, atol=1e-13)
    jac = np.asarray(call(session, "ht", "jacobian", input))
    h, cols = 1e-6, []
    for k in range(us.shape[1] if complicated else 0):
        d = np.zeros_like(us)
        d[:, k] = h
        cols.append(ht_residuals(theta, us + d, *rest) - ht_residuals(theta, us - d, *rest))
    for j in range(theta.size):
        e = np.zeros_like(theta)
        e[j] = h
        cols.append(ht_residuals(theta + e, us, *rest) - ht_residuals(theta - e, us, *rest))
    fd = np.array([c.ravel() / (2 * h) for c in cols]).T
    np.testing.assert_allclose(jac, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.slow
def test_real_particle():
    """All four modes reach GradBench's answer (its own check: 1e-4), and agree to 1e-12;
    the outer derivative, through the Euler loop and the inner force gradient, against
    central differences of the primal."""
    from bench.evals import particle

    session = real_session("particle")
    answers = [call(session, "particle", f, {"w": 0.0}) for f in particle.GRADBENCH_FUNCTIONS]
    assert answers == pytest.approx([0.2071918746486116] * 4, abs=1e-4)
    assert max(answers) - min(answers) < 1e-12
    w, h = np.array([0.1]), 1e-6
    # the same nesting as the inner force (mixed nestings agree with these above)
    for force, mode in ((particle.force_r, "r"), (particle.force_f, "f")):
        miss = particle.euler_miss(force)
        fd = (miss(w + h) - miss(w - h)) / (2 * h)
        assert particle.miss_gradient(miss, mode)(w)[0] == pytest.approx(fd, rel=1e-6)


@pytest.mark.slow
def test_real_saddle():
    """All four modes reach GradBench's answer; the outer gradient of the inner maximum,
    through the inner optimizer, is 2·p1 exactly (the inner argmax does not depend on p1)."""
    from bench.evals import saddle

    session = real_session("saddle")
    start = [1.0, 1.0]
    for f in saddle.GRADBENCH_FUNCTIONS:
        answer = call(session, "saddle", f, {"start": start})
        assert answer == pytest.approx([8.246324826140356e-06] * 4, abs=1e-4)
    p1, s = np.array([0.3, -0.7]), np.array(start)
    # the same nesting as the inner gradient (the mixed ones reach GradBench's answer above)
    for inner, mode in ((saddle.inner_gradient_r, "r"), (saddle.inner_gradient_f, "f")):
        max_primal = saddle.inner_maximum(saddle.argmin_solver(saddle.inner_cost, inner, -1.0))
        gradient = saddle.maximum_gradient(max_primal, mode)(p1, s)
        np.testing.assert_allclose(gradient, 2 * p1, rtol=1e-12)


def gmm_log_likelihood(alpha, mu, q, l, x, gamma, m) -> float:
    """ADBench's GMM objective with a Wishart prior, in plain numpy/scipy: Q_k has exp(q_k) on
    the diagonal and l_k below it, column by column."""
    from scipy.special import logsumexp, multigammaln

    n, d = x.shape
    k = alpha.size
    below = [(j, i) for i in range(d) for j in range(i + 1, d)]  # (row, column), by column
    rows, cols = [r for r, _ in below], [c for _, c in below]
    main = np.empty((n, k))
    for c in range(k):
        qmat = np.diag(np.exp(q[c]))
        qmat[rows, cols] = l[c]
        z = (x - mu[c]) @ qmat.T
        main[:, c] = alpha[c] + q[c].sum() - 0.5 * (z * z).sum(axis=1)
    nw = d + m + 1
    wishart_c = nw * d * (np.log(gamma) - 0.5 * np.log(2.0)) - multigammaln(0.5 * nw, d)
    prior = sum(
        0.5 * gamma**2 * ((np.exp(q[c]) ** 2).sum() + (l[c] ** 2).sum()) - m * q[c].sum()
        for c in range(k)
    )
    return float(
        -n * d * 0.5 * np.log(2 * np.pi)
        + logsumexp(main, axis=1).sum()
        - n * logsumexp(alpha)
        - prior
        + k * wishart_c
    )


def test_real_gmm():
    session = real_session("gmm")
    d, k, n = 3, 2, 6
    rng = np.random.default_rng(6)
    params = {
        "alpha": rng.normal(size=k),
        "mu": rng.uniform(size=(k, d)),
        "q": rng.normal(size=(k, d)) * 0.3,
        "l": rng.normal(size=(k, d * (d - 1) // 2)) * 0.3,
    }
    x = rng.normal(size=(n, d))
    data = {"d": d, "k": k, "n": n, "x": x.tolist(), "m": 0, "gamma": 1.0}

    def objective(p: dict[str, np.ndarray]) -> float:
        return gmm_log_likelihood(p["alpha"], p["mu"], p["q"], p["l"], x, 1.0, 0)

    input = data | {name: p.tolist() for name, p in params.items()}
    value = call(session, "gmm", "objective", input)
    assert value == pytest.approx(objective(params), rel=1e-12)
    jac = call(session, "gmm", "jacobian", input)
    for name, p in params.items():

        def along(v: np.ndarray, name: str = name) -> float:
            return objective(params | {name: v})

        np.testing.assert_allclose(
            np.asarray(jac[name]).reshape(p.shape),
            central_differences(along, p),
            rtol=1e-6,
            atol=1e-7,
            err_msg=name,
        )


@pytest.mark.parametrize("name", KNOWN_EVALS)
def test_each_present_eval_module_exports_the_interface(name):
    try:
        module = EvalModule.from_module(name, import_eval_module(name))
    except UnknownModule:
        pytest.skip(f"bench/evals/{name}.py is not there")
    assert module.functions and len(set(module.functions)) == len(module.functions)


def test_real_lstm():
    session = real_session("lstm")
    layers, bits, chars = 1, 3, 4
    rng = np.random.default_rng(7)
    main = rng.uniform(size=(2 * layers, 4 * bits))
    extra = rng.uniform(size=(3, bits))
    fixed = {
        "state": rng.uniform(size=(2 * layers, bits)).tolist(),
        "sequence": rng.integers(0, 2, size=(chars, bits)).astype(float).tolist(),
    }

    def objective(main: np.ndarray, extra: np.ndarray) -> float:
        input = fixed | {"main_params": main.tolist(), "extra_params": extra.tolist()}
        return call(session, "lstm", "objective", input)

    assert math.isfinite(objective(main, extra))
    input = fixed | {"main_params": main.tolist(), "extra_params": extra.tolist()}
    jac = np.asarray(call(session, "lstm", "jacobian", input))
    # the gradient of main_params then extra_params, rows adjacent; against central
    # differences of the objective the tool itself returns
    expected = np.concatenate(
        [
            central_differences(lambda m: objective(m, extra), main).ravel(),
            central_differences(lambda e: objective(main, e), extra).ravel(),
        ]
    )
    np.testing.assert_allclose(jac, expected, rtol=1e-5, atol=1e-8)


def ba_residual(params: np.ndarray, feat: np.ndarray) -> np.ndarray:
    """ADBench's weighted reprojection residual of one observation; ``params`` is the camera
    (Rodrigues rotation, centre, focal length, principal point, 2 radial distortion
    coefficients), the point and the weight (15 numbers). The rotation is SciPy's."""
    from scipy.spatial.transform import Rotation

    cam, point, w = params[:11], params[11:14], params[14]
    rotated = Rotation.from_rotvec(cam[0:3]).apply(point - cam[3:6])
    proj = rotated[:2] / rotated[2]
    rsq = proj @ proj
    proj = proj * (1 + cam[9] * rsq + cam[10] * rsq * rsq)
    return w * (proj * cam[6] + cam[7:9] - feat)


def test_real_ba():
    session = real_session("ba")
    rng = np.random.default_rng(8)
    cam = np.concatenate(
        [rng.uniform(-0.3, 0.3, 3), rng.uniform(-1, 1, 3), [500.0], rng.uniform(-1, 1, 2)]
        + [rng.uniform(-0.1, 0.1, 2)]
    )
    point, w, feat = rng.uniform(-1, 1, 3) + [0, 0, 5], 0.8, rng.uniform(-1, 1, 2)
    n, m, p = 2, 3, 5  # GradBench replicates one camera, point, weight and feature
    input = {"n": n, "m": m, "p": p, "cam": cam.tolist(), "x": point.tolist(), "w": w}
    input["feat"] = feat.tolist()
    params = np.concatenate([cam, point, [w]])

    objective = call(session, "ba", "objective", input)
    np.testing.assert_allclose(
        objective["reproj_error"]["elements"], ba_residual(params, feat), rtol=1e-12
    )
    assert objective["w_err"]["element"] == pytest.approx(1 - w * w, rel=1e-14)
    assert objective["reproj_error"]["repeated"] == objective["w_err"]["repeated"] == p

    jac = call(session, "ba", "jacobian", input)
    # the two rows of the first observation (camera 0, point 0, weight 0: 15 nonzeros each)
    # against central differences of the residual above, then the weight residual's -2w
    rows = (
        central_differences(lambda q: ba_residual(q, feat)[0], params),
        central_differences(lambda q: ba_residual(q, feat)[1], params),
    )
    np.testing.assert_allclose(jac["vals"][:30], np.concatenate(rows), rtol=1e-6, atol=1e-6)
    assert jac["vals"][-1] == pytest.approx(-2 * w, rel=1e-14)
    camera_point_weight = [*range(11), 11 * n, 11 * n + 1, 11 * n + 2, 11 * n + 3 * m]
    assert jac["cols"][:30] == camera_point_weight * 2
