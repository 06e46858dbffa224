"""Mutation testing of the engine and the NC scorer with mutmut 3 (issue 18).

One command (``make mutation``) writes ``benchmarks/results/mutation.md``::

    python benchmarks/mutation.py [--per-module 20] [--seed 18] [--budget 3600]

What it does:

1. Lists every mutant mutmut makes of the modules named by ``only_mutate`` in pyproject.toml's
   ``[tool.mutmut]`` (mutmut's own generator, so the names are the ones ``mutmut run`` uses).
2. Draws a seeded random sample per module: ``--per-module`` mutants (all of them when the module
   has fewer), drawn by ``random.Random(f"{seed}:{module}")`` from the sorted names, so one
   module's sample does not depend on which other modules are in scope.
3. Runs ``mutmut run NAME...`` once over all sampled mutants (mutmut copies ``src`` and
   ``tests`` to ``mutants/``, mutates only the copies, maps each function to the tests that call
   it in one stats run, then runs each mutant against only those tests; one invocation means one
   stats run and one clean run instead of one per module). ``--budget`` seconds caps the whole
   run: when it is spent mutmut is interrupted and the mutants it did not reach are reported as
   "not run".
4. Reads the verdicts back (``mutmut results --all true``), the diff of every survivor
   (``mutmut show``), and writes the report: killed / survived / timeout per module, each
   survivor with its reason (``EQUIVALENT`` below, keyed by mutant name and checked against the
   mutated line so that a stale reason is flagged, not trusted), and the earlier survivors that
   the ``tests/test_mutation_kills_*.py`` tests now kill (``KILLED_BY``).

Kill rate = (killed + timeout) / (sampled - equivalent - not run); equivalent mutants leave the
denominator only when listed in ``EQUIVALENT`` with a reason. ``--report-only`` rewrites the
report from the verdicts already in ``mutants/``; ``--keep`` reuses ``mutants/`` (mutmut's cached
stats) instead of starting clean. Threads are pinned to one per worker (``--max-children``
workers, default 2).
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10: mutmut depends on toml there
    import toml as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "mutation.md"
BIN = Path(sys.executable).parent
SCORING = "thetanet.compounds.scoring"  # the NC scorer: reported apart from the engine

# Survivors that no test can kill, one reason each. Key: mutant name; value: (a fragment of the
# mutated line, as `mutmut show` prints it after "+", and why the mutant is equivalent).
EQUIVALENT: dict[str, tuple[str, str]] = {}

# Survivors of an earlier run that a test added for them now kills: mutant name -> test.
KILLED_BY: dict[str, str] = {}


@dataclass
class Module:
    name: str
    path: str
    mutants: list[str]
    sample: list[str] = field(default_factory=list)


def mutmut_config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]


def list_modules(cfg: dict) -> list[Module]:
    """Every module in scope with all its mutant names, as mutmut names them."""
    try:  # mutmut's generator (3.x): the same names `mutmut run` creates
        from mutmut.mutation.file_mutation import mutate_file_contents
        from mutmut.utils.format_utils import get_mutant_name
    except ImportError as e:  # pragma: no cover - a mutmut without these internals
        sys.exit(f"mutation.py needs mutmut 3.x (pip install -e '.[mutation]'): {e}")
    modules = []
    for src in cfg.get("source_paths", ["src"]):
        for path in sorted((ROOT / src).rglob("*.py")):
            rel = path.relative_to(ROOT)
            if not any(fnmatch.fnmatch(str(rel), g) for g in cfg["only_mutate"]):
                continue
            names = mutate_file_contents(str(rel), path.read_text()).mutant_names
            keys = sorted(get_mutant_name(rel, n) for n in names)
            if keys:  # the module: the key up to its mangled function name
                modules.append(Module(keys[0].rsplit(".", 1)[0], str(rel), keys))
    return modules


def draw(modules: list[Module], per_module: int, seed: int) -> None:
    for m in modules:
        rng = random.Random(f"{seed}:{m.name}")
        m.sample = sorted(rng.sample(m.mutants, min(per_module, len(m.mutants))))


def run_mutmut(names: list[str], budget: float, children: int, log: Path) -> tuple[float, bool]:
    """`mutmut run` over the names; returns (seconds, interrupted by the budget)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1",
               PYTHONHASHSEED="0", MPLBACKEND="Agg")
    cmd = [str(BIN / "mutmut"), "run", "--max-children", str(children), *names]
    t0 = time.monotonic()
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            proc.wait(timeout=budget)
            cut = False
        except subprocess.TimeoutExpired:  # mutmut stops its workers on SIGINT, keeps verdicts
            cut = True
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    if proc.returncode not in (0, None) and not cut:
        tail = log.read_text()[-3000:]
        sys.exit(f"mutmut run failed ({proc.returncode}); see {log}:\n{tail}")
    return time.monotonic() - t0, cut


def verdicts() -> dict[str, str]:
    out = subprocess.run([str(BIN / "mutmut"), "results", "--all", "true"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    found = {}
    for line in out.splitlines():
        key, sep, status = line.strip().rpartition(": ")
        if sep and "__mutmut_" in key:
            found[key] = status
    return found


def diff_of(name: str) -> str:
    out = subprocess.run([str(BIN / "mutmut"), "show", name], cwd=ROOT, capture_output=True,
                         text=True).stdout
    keep = [ln for ln in out.splitlines()
            if ln.startswith(("-", "+")) and not ln.startswith(("---", "+++"))]
    return "\n".join(keep) or out.strip()


def status_class(status: str) -> str:
    if status == "killed":
        return "killed"
    if status == "timeout":
        return "timeout"
    if status in ("survived", "no tests"):
        return "survived"
    if status in ("not checked", "check was interrupted by user"):
        return "not run"
    return "other"  # suspicious, segfault: counted as detected below only if killed


@dataclass
class Row:
    killed: int = 0
    timeout: int = 0
    survived: int = 0
    equivalent: int = 0
    not_run: int = 0
    other: int = 0

    def add(self, other: Row) -> None:
        for k in vars(self):
            setattr(self, k, getattr(self, k) + getattr(other, k))

    @property
    def denominator(self) -> int:
        return self.killed + self.timeout + self.survived + self.other

    def rate(self) -> str:
        d = self.denominator
        return f"{100 * (self.killed + self.timeout) / d:.1f} %" if d else "—"


def reason_for(name: str, diff: str) -> tuple[str | None, str]:
    """(reason, note): the listed reason if its line fragment is still in the mutant's diff."""
    if name not in EQUIVALENT:
        return None, "no reason recorded"
    fragment, reason = EQUIVALENT[name]
    added = " ".join(ln[1:].strip() for ln in diff.splitlines() if ln.startswith("+"))
    if re.sub(r"\s+", "", fragment) not in re.sub(r"\s+", "", added):
        return None, f"stale reason (fragment {fragment!r} not in the diff): re-examine"
    return reason, ""


def report(modules: list[Module], status: dict[str, str], seconds: float, cut: bool,
           args: argparse.Namespace) -> str:
    import mutmut

    rows: dict[str, Row] = {}
    survivors: list[tuple[str, str, str, str]] = []  # (module, name, diff, reason or note)
    unexplained = 0
    for m in modules:
        row = rows[m.name] = Row()
        for name in m.sample:
            cls = status_class(status.get(name, "not checked"))
            if cls == "survived":
                diff = diff_of(name)
                reason, note = reason_for(name, diff)
                if reason is not None:
                    row.equivalent += 1
                    survivors.append((m.name, name, diff, f"equivalent: {reason}"))
                    continue
                unexplained += 1
                survivors.append((m.name, name, diff, f"**unexplained** ({note}; "
                                  f"status {status.get(name)})"))
            setattr(row, cls.replace(" ", "_"), getattr(row, cls.replace(" ", "_")) + 1)
    engine, total_pop, n_sampled = Row(), 0, 0
    for m in modules:
        if m.name != SCORING:
            engine.add(rows[m.name])
            total_pop += len(m.mutants)
            n_sampled += len(m.sample)
    lines = [
        "# Mutation testing: engine and NC scorer (issue 18)",
        "",
        f"Measured by `benchmarks/mutation.py` (`make mutation`) {time.strftime('%Y-%m-%d %H:%M')}"
        f" in {seconds / 60:.1f} min{' (cut by the budget)' if cut else ''}; mutmut "
        f"{mutmut.__version__}, Python {platform.python_version()}, {os.cpu_count()} cores, "
        f"{args.max_children} mutmut workers, one BLAS/OpenMP thread each.",
        "",
        f"**Sample:** per module, {args.per_module} mutants (all when it has fewer) drawn with "
        f"`random.Random(\"{args.seed}:<module>\")` from its sorted mutant names — seed "
        f"**{args.seed}**; {n_sampled} of the engine's {total_pop} mutants. The scope is "
        "`only_mutate` in pyproject.toml's `[tool.mutmut]` (the conv layers are out of scope "
        "until they are integrated); each mutant runs only the tests that call its function "
        "(mutmut's stats run over `pytest_add_cli_args_test_selection`).",
        "",
        f"**Engine kill rate: {engine.rate()}** = (killed + timeout) / (sampled − equivalent − "
        "not run). Equivalent mutants are listed one by one below with the reason.",
        "",
        "| module | mutants | sampled | killed | timeout | survived | equivalent | not run | "
        "other | kill rate |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def line(label: str, pop: int, n: int, r: Row) -> str:
        return (f"| {label} | {pop} | {n} | {r.killed} | {r.timeout} | {r.survived} | "
                f"{r.equivalent} | {r.not_run} | {r.other} | {r.rate()} |")

    for m in modules:
        if m.name != SCORING:
            lines.append(line(f"`{m.name}`", len(m.mutants), len(m.sample), rows[m.name]))
    lines.append(line("**engine total**", total_pop, n_sampled, engine))
    for m in modules:
        if m.name == SCORING:
            lines.append(line(f"`{m.name}` (NC scorer, not in the engine total)",
                              len(m.mutants), len(m.sample), rows[m.name]))
    lines += ["", f"Survivors: {len(survivors)} ({unexplained} unexplained).", ""]
    for _mod, name, diff, why in survivors:
        lines += [f"- `{name}` — {why}", "", "  ```diff",
                  *[f"  {ln}" for ln in diff.splitlines()], "  ```", ""]
    if KILLED_BY:
        lines += ["## Survivors of earlier runs that new tests now kill", "",
                  "| mutant | now | killed by |", "|---|---|---|"]
        for name, test in sorted(KILLED_BY.items()):
            lines.append(f"| `{name}` | {status.get(name, 'not sampled')} | `{test}` |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-module", type=int, default=20)
    ap.add_argument("--seed", type=int, default=18)
    ap.add_argument("--budget", type=float, default=3600, help="seconds for the mutmut run")
    ap.add_argument("--max-children", type=int, default=2)
    ap.add_argument("--modules", nargs="*", help="only these (dotted names, fnmatch patterns)")
    ap.add_argument("--keep", action="store_true", help="reuse mutants/ instead of a clean run")
    ap.add_argument("--report-only", action="store_true")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args()
    os.chdir(ROOT)
    modules = list_modules(mutmut_config())
    if args.modules:
        modules = [m for m in modules if any(fnmatch.fnmatch(m.name, p) for p in args.modules)]
    draw(modules, args.per_module, args.seed)
    names = [n for m in modules for n in m.sample]
    log = ROOT / "mutants" / "mutation-run.log"
    seconds, cut = 0.0, False
    if not args.report_only:
        if not args.keep:
            shutil.rmtree(ROOT / "mutants", ignore_errors=True)
        log.parent.mkdir(exist_ok=True)
        print(f"mutmut run over {len(names)} sampled mutants (log: {log})", flush=True)
        seconds, cut = run_mutmut(names, args.budget, args.max_children, log)
    text = report(modules, verdicts(), seconds, cut, args)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(text + "\n")
    tmp.replace(args.out)  # atomic: a reader sees the old report or the new one
    print(text.split("\n\n")[3] if "\n\n" in text else text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
