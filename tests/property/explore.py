"""Run many random programs without stopping at a failure, nor shrinking it.

    PYTHONPATH=.:tests python -m property.explore --examples 500 --seed 1 --out /tmp/prop

Each failure's reproducing script is written to ``OUT/<seed>-<k>-<Kind>.py`` and one line
per failure is printed; the end prints counts of passing, invalid and failing programs.
``--exclude a,b`` leaves constructs out.
"""

from __future__ import annotations

import argparse
import collections
import pathlib
import time

from hypothesis import HealthCheck, Phase, given, seed, settings

from property.checks import InvalidExample, ProgramFailure, check_program, repro
from property.programs import programs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--examples", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--exclude", default="")
    p.add_argument("--out", default="prop-failures")
    opts = p.parse_args()
    names = {n.strip() for n in opts.exclude.split(",") if n.strip()}
    out = pathlib.Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    counts: collections.Counter = collections.Counter()
    start = time.time()

    @seed(opts.seed)
    @settings(
        max_examples=opts.examples,
        phases=[Phase.generate],
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(programs(exclude=frozenset(names)))
    def run(prog):
        args = prog.args()
        try:
            check_program(prog.source, args, prog.active, seed=prog.seed)
        except InvalidExample as e:
            counts[f"invalid: {e.reason}"] += 1
            return
        except ProgramFailure as e:
            kind = type(e).__name__
            counts[kind] += 1
            path = out / f"{opts.seed}-{sum(counts.values())}-{kind}.py"
            what = str(e).split("\n\n# Reproduce")[0]
            text = "# " + what.replace("\n", "\n# ") + "\n\n"
            path.write_text(text + repro(prog.source, args, prog.active, prog.seed))
            first = str(e).splitlines()[0][:150]
            print(f"[{time.time() - start:7.0f}s] {path.name}: {first}", flush=True)
            return
        counts["pass"] += 1

    run()
    print(f"{sum(counts.values())} programs in {time.time() - start:.0f}s: {dict(counts)}")


if __name__ == "__main__":
    main()
