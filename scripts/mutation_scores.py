"""Mutation scores per module, from mutmut's list of mutants and their status.

``make mutation`` ends with it; run it by hand on the ``mutants/`` a run left behind::

    .venv/bin/mutmut results --all true | .venv/bin/python scripts/mutation_scores.py

It reads lines ``    graphql_api.groups.graph.x_find_cycle__mutmut_3: killed`` on standard
input and prints a Markdown table, one row per module, as ``docs/testing.md`` shows it:

- *killed*: a test failed on the mutant (mutmut's "killed");
- *timeout*: the mutant's tests ran out of their time budget (``timeout_multiplier`` and
  ``timeout_constant`` in ``[tool.mutmut]``): counted as not killed, like a survivor;
- *equivalent*: survivors named in the "Equivalent mutants" section of ``docs/testing.md``
  (``--equivalents``, ``--section``): no test can kill them, as the behaviour is the same;
- the score is killed / all mutants, and killed / the non-equivalent ones.

Then the survivors that are not marked equivalent, so that each is either killed by a new
test or explained. An equivalent mutant that was killed, or that no longer exists, is
reported too: the list in ``docs/testing.md`` is out of date.

``--require-killed FILE`` (for ``make mutation-sample``) instead checks that each mutant
named in FILE (one a line, ``#`` starts a comment) was killed, and exits with 1 if one was
not: it survived, timed out, was not run, or no longer exists.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

LINE = re.compile(r"^\s*(?P<name>[\w.ǁ]+__mutmut_\d+): (?P<status>.+?)\s*$")
MUTANT_NAME = re.compile(r"`(graphql_api\.[\w.ǁ]+__mutmut_\d+)`")
DETECTED = frozenset({"killed", "caught by type check"})


@dataclass
class ModuleScore:
    """The mutants of one module, counted by status."""

    module: str
    statuses: Counter[str]
    equivalent: int

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    @property
    def detected(self) -> int:
        return sum(n for status, n in self.statuses.items() if status in DETECTED)

    @property
    def others(self) -> int:
        """Neither detected nor survived nor without tests: not checked, suspicious, ..."""
        counted = {*DETECTED, "timeout", "survived", "no tests"}
        return sum(n for status, n in self.statuses.items() if status not in counted)


def parse_results(lines: Iterable[str]) -> dict[str, str]:
    """Mutant name to status, from ``mutmut results --all true``."""
    found = {}
    for line in lines:
        match = LINE.match(line)
        if match:
            found[match["name"]] = match["status"]
    return found


def module_of(mutant: str) -> str:
    """``graphql_api.groups.graph`` for ``graphql_api.groups.graph.xǁGroupGraphǁpath__mutmut_1``:
    the dotted path before the mangled function name (``x_...`` or ``xǁClassǁ...``)."""
    parts = mutant.split(".")
    for i, part in enumerate(parts):
        if part.startswith(("x_", "xǁ")):
            return ".".join(parts[:i])
    return ".".join(parts[:-1])


def equivalent_mutants(path: Path, sections: list[str]) -> set[str]:
    """The mutant names given in backticks under the ``##`` headings named ``sections``,
    by module. A later section replaces an earlier one for the modules it names (a
    section for an older version of some modules, whose mutants are numbered differently)."""
    found: dict[str, dict[str, set[str]]] = {}
    heading = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^##\s+(.*?)\s*$", line)
        if match:
            heading = match[1].lower()
            continue
        for name in MUTANT_NAME.findall(line):
            found.setdefault(heading, {}).setdefault(module_of(name), set()).add(name)
    by_module: dict[str, set[str]] = {}
    for section in sections:
        by_module.update(found.get(section.lower(), {}))
    return set().union(*by_module.values())


def sample_names(path: Path) -> list[str]:
    """The mutant names in a sample file: one a line, ``#`` to the end of a line a comment."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [name for line in lines if (name := line.split("#", 1)[0].strip())]


def scores(results: Mapping[str, str], equivalent: set[str]) -> list[ModuleScore]:
    by_module: dict[str, ModuleScore] = {}
    for name, status in results.items():
        module = module_of(name)
        score = by_module.setdefault(module, ModuleScore(module, Counter(), 0))
        score.statuses[status] += 1
        if name in equivalent and status not in DETECTED:
            score.equivalent += 1
    return [by_module[m] for m in sorted(by_module)]


def percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "-"


def table(rows: list[ModuleScore]) -> str:
    header = (
        "| module | mutants | killed | timeout | survived | no tests | other | equivalent "
        "| killed / all | killed / non-equivalent |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    total = ModuleScore("**all**", Counter(), sum(r.equivalent for r in rows))
    for row in rows:
        total.statuses.update(row.statuses)
    body = []
    for row in [*rows, total]:
        s = row.statuses
        body.append(
            f"| {row.module} | {row.total} | {s['killed'] + s['caught by type check']} "
            f"| {s['timeout']} | {s['survived']} | {s['no tests']} | {row.others} "
            f"| {row.equivalent} | {percent(row.detected, row.total)} "
            f"| {percent(row.detected, row.total - row.equivalent)} |"
        )
    return header + "\n".join(body)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--equivalents",
        type=Path,
        default=Path("docs/testing.md"),
        help="Markdown file with an 'Equivalent mutants' section (default: docs/testing.md)",
    )
    parser.add_argument(
        "--section",
        action="append",
        metavar="HEADING",
        help="the '## HEADING' listing equivalent mutants (default: Equivalent mutants); "
        "a second one replaces the first for the modules it lists",
    )
    parser.add_argument(
        "--require-killed",
        type=Path,
        metavar="FILE",
        help="only check that each mutant named in FILE was killed; exit 1 if one was not",
    )
    args = parser.parse_args(argv)
    results = parse_results(sys.stdin)

    if args.require_killed:
        required = sample_names(args.require_killed)
        missed = {n: results.get(n, "missing") for n in required}
        missed = {n: status for n, status in missed.items() if status not in DETECTED}
        for name, status in sorted(missed.items()):
            print(f"not killed: {name}: {status}")
        print(f"{len(required) - len(missed)} of {len(required)} sampled mutants killed")
        return 1 if missed or not required else 0

    if not results:
        print("no mutants in the input: run `mutmut run` first", file=sys.stderr)
        return 1
    sections = args.section or ["Equivalent mutants"]
    exists = args.equivalents.exists()
    equivalent = equivalent_mutants(args.equivalents, sections) if exists else set()
    print(table(scores(results, equivalent)))
    survivors = sorted(n for n, s in results.items() if s not in DETECTED and n not in equivalent)
    stale = sorted(n for n in equivalent if results.get(n, "killed") in DETECTED)
    if survivors:
        print(f"\nNot killed and not marked equivalent ({len(survivors)}):")
        print("\n".join(f"    {n}: {results[n]}" for n in survivors))
    if stale:
        print(f"\nMarked equivalent but killed or gone ({len(stale)}):")
        print("\n".join(f"    {n}: {results.get(n, 'gone')}" for n in stale))
    return 0


if __name__ == "__main__":
    sys.exit(main())
