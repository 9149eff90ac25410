"""Run every benchmark scenario against one standalone FakeActionstep and write RESULTS.md.

    python -m benchmarks                 # everything (about 5 minutes on 2 cores)
    python -m benchmarks --quick         # tiny sizes, to check the harness works
    python -m benchmarks --only 1,3      # some scenarios
    python -m benchmarks --no-write      # print tables, leave RESULTS.md and charts alone

RESULTS.md keeps the sections this run did not produce (the standalone benchmarks' own
sections, such as the full-field page, the mirror and the documents, are written by hand from
their commands); see ``merged``.

The fake runs in its own process, so its CPU never counts against the clients. The exit status
is 0 when every scenario ran; claim checks (ratios, token calls) are reported, not enforced.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import platform
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from types import ModuleType

from ._fake_process import FakeServerProcess
from .scenarios import (
    bulk_read,
    cross_process,
    governor,
    refresh_storm,
    request_path,
    revoked_token,
)
from .scenarios._common import Section, background_cores, cpu_snapshot

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
CHARTS = HERE / "charts"
RECORDS = 100_000
SCENARIOS: dict[str, ModuleType] = {
    "1": request_path,
    "2": refresh_storm,
    "3": revoked_token,
    "4": cross_process,
    "5": bulk_read,
    "6": governor,
}
TITLES = {
    "1": "1. Request path",
    "2": "2. Refresh storm",
    "3": "3. Revoked token",
    "4": "4. Cross-process refresh",
    "5": "5. Bulk read",
    "6": governor.TITLE,
}
PACKAGES = (
    "actionstep-async",
    "aiohttp",
    "authlib",
    "httpx",
    "httpcore",
    "sniffio",
    "aiohttp-oauth2-client",
    "redis",
    "orjson",
    "msgspec",
    "matplotlib",
)


def _parser() -> argparse.ArgumentParser:
    description = "Benchmark actionstep-async against its peers; write RESULTS.md and charts."
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=description)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (harness smoke test)")
    parser.add_argument("--only", default="", help="comma list of scenario numbers (1-6)")
    parser.add_argument("--no-write", action="store_true", help="do not write RESULTS.md/charts")
    return parser


async def run(numbers: Sequence[str], *, quick: bool, charts: Path) -> list[Section]:
    sections: list[Section] = []
    async with FakeServerProcess(records=RECORDS) as fake:
        for number in numbers:
            module = SCENARIOS[number]
            sizes = module.QUICK if quick else module.Sizes()
            await fake.control("POST", "reset", {})
            print(f"\n== {TITLES[number]} ==", flush=True)
            started, cpu = time.perf_counter(), cpu_snapshot(fake.pid)
            try:
                section: Section = await module.run(fake, sizes, charts)
            except Exception as exc:
                traceback.print_exc()
                section = Section(TITLES[number], f"**The scenario failed:** `{exc!r}`")
                section.error = repr(exc)
            section.seconds = time.perf_counter() - started
            section.background = background_cores(cpu, cpu_snapshot(fake.pid), section.seconds)
            _print_section(section)
            sections.append(section)
    return sections


def _print_section(section: Section) -> None:
    print(f"({section.seconds:.1f} s, other processes used {section.background:.2f} cores)")
    for text in section.tables:
        print(text, end="\n\n")
    for note in section.notes:
        print(f"- {note}")
    sys.stdout.flush()


def _versions() -> str:
    found = []
    for name in PACKAGES:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def claims(sections: Sequence[Section]) -> list[str]:
    """Our published claims, checked against this run's figures."""
    by_title = {section.title: section.data for section in sections}
    lines = []

    def verdict(ok: bool) -> str:
        return "**PASS**" if ok else "**FAIL**"

    path = by_title.get(TITLES["1"], {})
    if "ratio" in path:
        ratio = path["ratio"]["ours-plain"]
        lines.append(
            f"{verdict(ratio <= 1.15)} request path: ours (plain records) uses {ratio:.2f}x the"
            " CPU per request of bare aiohttp (claim: within 1.15x);"
            f" typed records {path['ratio']['ours-typed']:.2f}x."
        )
    for number, what in (("2", "refresh storm"), ("3", "revoked token"), ("4", "cross-process")):
        ours = by_title.get(TITLES[number], {}).get("ours_token_calls")
        if ours:
            ok = all(calls == 1 for calls in ours.values())
            detail = ", ".join(
                f"{label}: {'error' if calls is None else calls}" for label, calls in ours.items()
            )
            lines.append(f"{verdict(ok)} {what}: exactly 1 token call ({detail}).")
    storm = by_title.get(TITLES["2"], {}).get("p99")
    if storm:
        lines.append(_storm_claim(storm["size"], storm["by_client"], verdict))
    rate = by_title.get(TITLES["6"], {}).get("figures")
    if rate:
        (shared, share), (single, _) = rate["shared"], rate["single"]
        processes = by_title[TITLES["6"]]["processes"]
        lines.append(
            f"{verdict(shared >= 0.90 and share < 0.02 and single >= 0.90)} one rate budget:"
            f" {processes} processes sharing the Redis governor reach {shared:.2f} R"
            f" with {share:.2%}"
            f" 429s, one process {single:.2f} R (claim: >= 0.90 R, < 2% 429s)."
        )
    bulk = by_title.get(TITLES["5"], {})
    if "adaptive_ok" in bulk:
        lines.append(
            f"{verdict(bulk['adaptive_ok'])} rate limits: the adaptive bulk read completes, is"
            f" at least as fast as sequential pages and reaches >= {bulk_read.GOAL:.2f} R with"
            f" < {bulk_read.MAX_429:.0%} 429s"
            f" ({bulk['adaptive_summary']})."
        )
    return lines


def _storm_claim(
    size: int, p99: dict[str, tuple[float, float]], verdict: Callable[[bool], str]
) -> str:
    """Ours against the best peer at the biggest storm, on the storm's clock (see its notes)."""
    ours = p99["ours-plain"]
    peers = {name: times for name, times in p99.items() if not name.startswith("ours")}
    best = min(peers, key=lambda name: peers[name][1])
    return (
        f"{verdict(ours[1] <= peers[best][1])} refresh storm tail: at {size:,} concurrent"
        f" requests ours ends 99% of them {ours[1] * 1000:,.0f} ms after the storm began, the"
        f" best peer ({best}) {peers[best][1] * 1000:,.0f} ms (claim: no later); on each"
        f" request's own clock {ours[0] * 1000:,.0f} ms against {peers[best][0] * 1000:,.0f} ms."
    )


def report(sections: Sequence[Section], *, wall: float, command: str) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmark results",
        "",
        "Generated by `" + command + "` (see `benchmarks/README.md`). Absolute figures depend"
        " on the machine; the ratios against bare aiohttp are the portable ones.",
        "",
        f"- Date: {now}",
        f"- Machine: {os.cpu_count()} CPUs, {platform.platform()},"
        f" {platform.python_implementation()} {platform.python_version()}",
        f"- Libraries: {_versions()}",
        "- Server: the standalone FakeActionstep (`python -m actionstep_async.testing`,"
        f" {RECORDS:,} seeded actions) in its own process on 127.0.0.1",
        f"- Wall time of the whole run: {wall:.0f} s",
        "",
        "## Our claims in this run",
        "",
        *(f"- {line}" for line in claims(sections)),
    ]
    for section in sections:
        lines += ["", f"## {section.title}", "", section.intro, ""]
        for text in section.tables:
            lines += [text, ""]
        lines += [f"- {note}" for note in section.notes]
        if section.notes:
            lines.append("")
        for chart in section.charts:
            lines += [f"![{chart.stem}](charts/{chart.name})", ""]
        lines.append(
            f"_Scenario wall time: {section.seconds:.0f} s; other processes on the machine used"
            f" {section.background:.2f} of {os.cpu_count()} cores meanwhile._"
        )
    return "\n".join(lines) + "\n"


CLAIMS = "Our claims in this run"


def _split(text: str) -> tuple[str, list[tuple[str, str]]]:
    """RESULTS.md as its header and its ``## `` sections (title, whole text), in order."""
    parts = ("\n" + text).split("\n## ")
    header, sections = parts[0].lstrip("\n"), []
    for part in parts[1:]:
        title = part.split("\n", 1)[0].strip()
        sections.append((title, "## " + part.rstrip("\n") + "\n"))
    return header, sections


def _claim_name(line: str) -> str | None:
    """``- **PASS** refresh storm: ...`` -> ``refresh storm`` (None for other lines)."""
    if not line.startswith("- **"):
        return None
    return line.split("** ", 1)[-1].split(":", 1)[0]


def _claims_merged(old: str, fresh: str) -> str:
    """The old claims section with the claims this (partial) run checked replaced."""
    checked = {_claim_name(line): line for line in fresh.splitlines() if _claim_name(line)}
    lines = [checked.pop(_claim_name(line), line) for line in old.splitlines()]
    body = "\n".join(lines).rstrip("\n")
    extra = "".join(f"\n{line}" for line in checked.values())
    return body + extra + "\n"


def merged(old: str, fresh: str, *, whole: bool) -> str:
    """``fresh`` merged into ``old`` RESULTS.md: the sections this run produced replace theirs.

    Sections it did not produce (those written by the standalone benchmarks, or not chosen
    with ``--only``) are kept. A whole run also rewrites the header and the claims; an
    ``--only`` run keeps the header and replaces only the claims it checked.
    """
    old_header, old_sections = _split(old)
    fresh_header, fresh_sections = _split(fresh)
    if not whole:
        old_claims = dict(old_sections).get(CLAIMS)
        fresh_sections = [
            (title, _claims_merged(old_claims, text) if title == CLAIMS and old_claims else text)
            for title, text in fresh_sections
        ]
    produced = dict(fresh_sections)
    if whole:
        kept = [(t, x) for t, x in old_sections if t not in produced]
        ordered = fresh_sections + kept
        header = fresh_header
    else:
        ordered = [(t, produced.pop(t, x)) for t, x in old_sections] + list(produced.items())
        header = old_header or fresh_header
    return header.rstrip("\n") + "\n\n" + "\n".join(text for _, text in ordered)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # unwinds through the `async with`, which stops the fake server


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    numbers = [n.strip() for n in args.only.split(",") if n.strip()] or list(SCENARIOS)
    unknown = [n for n in numbers if n not in SCENARIOS]
    if unknown:
        raise SystemExit(f"unknown scenarios {unknown}; choose from {list(SCENARIOS)}")
    charts = CHARTS if not args.no_write else Path(os.environ.get("TMPDIR", "/tmp"))
    charts.mkdir(exist_ok=True)
    started = time.perf_counter()
    sections = asyncio.run(run(numbers, quick=args.quick, charts=charts))
    wall = time.perf_counter() - started
    command = "python -m benchmarks " + " ".join(argv if argv is not None else sys.argv[1:])
    print("\n== claims ==")
    for line in claims(sections):
        print(f"- {line}")
    print(f"\ntotal wall time {wall:.0f} s")
    if not args.no_write:
        fresh = report(sections, wall=wall, command=command.strip())
        old = RESULTS.read_text() if RESULTS.exists() else ""
        RESULTS.write_text(merged(old, fresh, whole=not args.only))
        print(f"wrote {RESULTS.relative_to(HERE.parent)}")
    return 1 if any(section.error for section in sections) else 0
