"""`sysgram datasets info`, `sysgram import` and `sysgram export`: datasets at the terminal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sysgram.commands.common import warn
from sysgram.errors import UserError
from sysgram.sanitize import printable

if TYPE_CHECKING:
    from sysgram.datasets import Dataset

FORMATS = ("adfa-ld",)
EXPORT_FORMATS = ("adfa-ld", "parquet")


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Inspect recordings and imported corpora.", no_args_is_help=True)
    group.command("info")(info)
    group.command("export")(export)
    app.add_typer(group, name="datasets")
    app.command("export")(export)
    app.command("import")(import_)


# -- terminal helpers --------------------------------------------------------------------

def _check_format(fmt: str, formats: tuple[str, ...] = FORMATS) -> None:
    if fmt not in formats:
        # Raw: the CLI escapes a UserError's message once, when it prints it.
        raise UserError(f"unknown format '{fmt}'; use --format {' or '.join(formats)}.")


# -- sysgram datasets info -------------------------------------------------------------
def info(
    path: Annotated[Path, typer.Argument(help="The dataset directory.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    top: Annotated[int, typer.Option(help="How many of the most frequent syscalls to list.")] = 10,
) -> None:
    """Summarise a dataset: threads, processes, syscalls, top syscalls, losses, labels."""
    from sysgram.datasets import Dataset

    summary = Dataset.open(path).summary(top=max(top, 0))
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        print("\n".join(format_summary(summary)))
    for message in summary["warnings"]:
        warn(message)


def _tally_line(tally: dict[str, int]) -> str:
    return ", ".join(f"{printable(k)} {v:,}" for k, v in tally.items())


def format_summary(s: dict) -> list[str]:
    """The human-readable lines of `sysgram datasets info`."""
    target = s.get("target") if isinstance(s.get("target"), dict) else {}
    # One binary ("comm"), or several recorded together ("comms").
    names = target.get("comm") or ", ".join(str(c) for c in target.get("comms") or [])
    lines = [
        f"dataset    {printable(s['path'])} ({printable(s['status'])})",
        f"source     {printable(s['source'])}"
        + (f", target {printable(names)}" if names else ""),
        f"recorded   {printable(s['created'])} on {printable(s['host'])}, kernel "
        f"{printable(s['kernel'])}, syscall table {printable(s['arch'])}",
        f"threads    {s['threads']:,} in {s['processes']:,} processes",
        f"syscalls   {s['syscalls']:,} ({s['distinct_syscalls']} distinct)",
    ]
    if s["duration_s"] is not None:
        lines.append(f"duration   {s['duration_s']:.3f} s")
    losses = s["losses"]
    lines.append(f"losses     {losses['events']:,} events ({100 * losses['share']:.2f} %) in "
                 f"{losses['gaps']:,} gaps across {losses['threads']:,} threads")
    collector = s.get("collector") or {}
    counters = {k: v for k, v in collector.items()
                if ("lost" in k or "miss" in k) and isinstance(v, int)}
    if counters:  # the kernel's own loss counters, beside the per-thread gaps above
        lines.append(f"collector  {_tally_line(counters)}")
    for key in ("labels", "families", "splits"):
        if s[key]:
            lines.append(f"{key:<10} {_tally_line(s[key])}")
    if s["top_syscalls"]:
        lines.append("top syscalls")
        lines += [f"  {t['name']:<20} {t['nr']:>4} {t['count']:>12,} {100 * t['share']:6.2f} %"
                  for t in s["top_syscalls"]]
    if s.get("touched"):
        lines += _touched_lines(s["touched"])
    return lines


def _touched_lines(t: dict) -> list[str]:
    """What the threads touched: counts by kind, then files, programs and peers."""
    lines = [f"touched    {t['records']:,} records ({_tally_line(t['by_kind'])}), "
             f"{t['lost']:,} lost, {t['distinct_files']:,} distinct files"]
    for title, rows, key in (("top files", t["top_files"], "path"),
                             ("programs", t["programs"], "path"),
                             ("peers", t["peers"], "peer")):
        if rows:
            lines.append(title)
            lines += [f"  {r['count']:>8,}  {printable(r[key])}" for r in rows]
    return lines


# -- sysgram export / import -----------------------------------------------------------
def export(
    path: Annotated[Path, typer.Argument(help="The dataset directory to export.")],
    out: Annotated[Path, typer.Argument(
        help="A new or empty folder (parquet: or an existing Parquet root).")],
    fmt: Annotated[str, typer.Option(
        "--format", help="Output format: adfa-ld (text files) or parquet.")] = "adfa-ld",
    host: Annotated[str | None, typer.Option(
        help="parquet: the host partition (default: the host that recorded it).")] = None,
) -> None:
    """Write the thread traces as ADFA-LD text files, or as Parquet rows (hive layout)."""
    from sysgram.datasets import Dataset, export_adfa

    _check_format(fmt, EXPORT_FORMATS)
    dataset = Dataset.open(path)
    for message in dataset.warnings:
        warn(message)
    if fmt == "parquet":
        _export_parquet(dataset, out, host)
        return
    written = export_adfa(dataset, out)
    empty = sum(1 for t in dataset.threads if not len(t.ids))
    lossy = [t for t in dataset.threads if t.lost and len(t.ids)]
    print(f"exported {written:,} traces ({dataset.arch} syscall numbers) to {printable(out)}")
    if empty:
        warn(f"skipped {empty:,} threads with no syscalls (the format has no empty traces).")
    if lossy:
        lost = sum(t.lost for t in lossy)
        warn(f"{len(lossy):,} exported traces had {lost:,} lost events that the text format "
             "cannot mark; their files join the pieces around each gap.")


def _export_parquet(dataset: Dataset, out: Path, host: str | None) -> None:
    from sysgram.datasets.parquet import export_parquet

    counts = export_parquet(dataset, out, host=host)
    print(f"exported {counts['threads']:,} traces, {counts['syscalls']:,} syscalls as "
          f"{counts['rows']:,} rows in {counts['files']:,} Parquet files to {printable(out)}")
    if counts["lost_events"]:
        warn(f"{counts['gaps']:,} losses ({counts['lost_events']:,} events) are marked in "
             "the rows' lost_before column.")


def import_(
    src: Annotated[Path, typer.Argument(help="The corpus's top folder.")],
    path: Annotated[Path, typer.Argument(help="A new or empty directory for the dataset.")],
    fmt: Annotated[str, typer.Option("--format", help="Input format: adfa-ld.")] = "adfa-ld",
    arch: Annotated[
        str | None, typer.Option(help="Syscall table of the numbers (default: ADFA-LD's, i386).")
    ] = None,
) -> None:
    """Read an ADFA-LD-layout corpus (labels and attack families kept) into a dataset."""
    # Imported here: `sysgram --help` must not pay for numpy.
    from sysgram.datasets import import_adfa
    from sysgram.datasets.adfa import ADFA_ARCH
    from sysgram.syscalls import table

    _check_format(fmt)
    arch = arch or ADFA_ARCH
    table(arch)  # an unknown table is refused before anything is written
    dataset = import_adfa(src, path, arch=arch)
    s = dataset.summary(top=0)
    print(f"imported {s['threads']:,} traces, {s['syscalls']:,} syscalls into {printable(path)}")
    if s["splits"]:
        print(f"splits     {_tally_line(s['splits'])}")
    if s["families"]:
        print(f"families   {_tally_line(s['families'])}")
    for message in s["warnings"]:
        warn(message)
