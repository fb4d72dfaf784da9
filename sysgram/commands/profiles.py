"""`sysgram profiles list|show|rm`: the trained profiles in the store, at the terminal."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from sysgram.commands import fleet
from sysgram.commands.allow import register as register_allow
from sysgram.commands.common import StoreOption, curve_text, say, warn
from sysgram.errors import UserError
from sysgram.sanitize import printable


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="List, inspect and remove trained profiles.", no_args_is_help=True)
    group.command("list")(profiles_list)
    group.command("show")(profiles_show)
    group.command("rm")(profiles_rm)
    register_allow(group)
    group.command("export")(fleet.profiles_export)
    group.command("import")(fleet.profiles_import)
    app.add_typer(group, name="profiles")


def profiles_list(
    store: StoreOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the trained profiles in the store."""
    from sysgram.models.store import ProfileStore

    profile_store = ProfileStore(store)
    rows = []
    for name in profile_store.names():
        try:
            rows.append(_list_row(name, profile_store.header(name)))
        except UserError as err:
            rows.append({"name": name, "error": err.message})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        say(f"no profiles in {profile_store.root}; train one with `sysgram train --proc NAME`.")
        return
    for r in rows:
        if "error" in r:
            print(f"{printable(r['name']):16} unreadable: {printable(r['error'])}")
            continue
        print(f"{printable(r['name']):16} {printable(r['detector']):8} {r['windows']:>10,} "
              f"windows  threshold {r['threshold']:.4g}  {printable(r['binary'])}")


def _damaged(name: str) -> UserError:
    return UserError(f"the profile '{name}' has a damaged header; retrain it with "
                     f"`sysgram train --proc {name}` or remove it with `sysgram profiles rm`.")


def _list_row(name: str, header: dict) -> dict:
    """One `profiles list` row; the header is data from disk, so every field is checked."""
    try:
        training = header.get("training") or {}
        windows, threshold = training.get("windows") or 0, header.get("threshold")
        binary = header.get("binary") or {}
        row = {"name": name, "detector": str(header["features"]["detector"]),
               "windows": int(windows), "threshold": float(threshold),
               "created": header.get("created"),
               "binary": str(binary.get("path") or "") if isinstance(binary, dict) else ""}
    except (KeyError, TypeError, ValueError, AttributeError):
        raise _damaged(name) from None
    return row


def profiles_show(
    name: Annotated[str, typer.Argument(help="Profile (process) name.")],
    store: StoreOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the header as JSON.")] = False,
) -> None:
    """Show what a profile was trained on, its threshold, novelty curve and binary."""
    from sysgram.models.store import ProfileStore, binary_changed

    header = ProfileStore(store).header(name)
    if as_json:
        print(json.dumps(header, indent=2))
        return
    try:
        lines = _show_lines(header)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError):
        raise _damaged(name) from None
    print("\n".join(lines))
    changed = binary_changed(header.get("binary") or {})
    if changed:
        warn(changed)


def _show_lines(header: dict) -> list[str]:
    f, t, cal = header["features"], header.get("training") or {}, header.get("calibration") or {}
    b = header.get("binary") or {}
    lines = [
        f"profile    {printable(header.get('name'))}  (format {header['format_version']}, "
        f"sysgram {printable(header['versions'].get('sysgram'))}, scikit-learn "
        f"{printable(header['versions'].get('sklearn'))})",
        f"binary     {printable(b.get('path') or 'unknown path')}  sha256 "
        f"{(b.get('sha256') or 'unknown')[:16]}",
        f"features   windows of {f['window']} calls every {f['stride']}, n-grams "
        f"{printable(','.join(map(str, f['orders'])))}, syscall table "
        f"{printable(header['syscall_table']['arch'])}",
        f"detector   {printable(f['detector'])}  roll-up {printable(f['rollup'])}",
        f"trained on {t.get('threads', 0):,} streams, {t.get('syscalls', 0):,} calls, "
        f"{t.get('windows', 0):,} windows ({t.get('fit_windows', 0):,} fit, "
        f"{t.get('calibration_windows', 0):,} held out by {printable(t.get('split'))})",
        f"vocabulary {printable(t.get('distinct_syscalls'))} syscalls, n-grams per order "
        f"{printable(t.get('distinct_ngrams'))}" + (
            "; threaded (a thread's start and exit calls are known)" if t.get("threaded")
            else ""),
        f"threshold  {header['threshold']:.6g} ({printable(cal.get('method'))}, target "
        f"{cal.get('target_far')}, {cal.get('exceedances')} of {cal.get('n_calibration')} "
        f"held-out windows above, verifiable down to {cal.get('verifiable_far', 0):.2g})",
        f"novelty    {curve_text(header.get('novelty_curve') or [], 20)} new n-grams per "
        "1,000 windows",
        _thread_profile_line(header.get("thread_profile")),
    ]
    from sysgram.models.training import calibration_warnings

    lines += [f"probed     {printable(m)}" for m in calibration_warnings(cal)]
    for src in t.get("sources") or []:
        lines.append(f"source     {printable(json.dumps(src))}")
    return lines + _roles_show_lines(header.get("roles")) + _touched_show_lines(
        header.get("touched"))


def _roles_show_lines(roles: dict | None) -> list[str]:
    """Thread roles seen while training, and which ran only once (models/roles.py)."""
    from sysgram.models.roles import once_seen_warnings, startup_warnings

    if not roles:
        return ["roles      none recorded (no thread start times in the training data)"]
    shown = roles["roles"]
    created = roles.get("threads_created")
    started = ("" if created is None else
               f"; {created:,} threads or processes started while it recorded")
    lines = [f"roles      {roles.get('roles_total', len(shown))} thread names over "
             f"{roles['span_s']:g} s of training (runs: separate bursts of thread starts)"
             + started]
    for r in shown:
        kind = "resident" if r["resident"] else f"{r['runs']} run" + ("s" if r["runs"] != 1
                                                                     else "")
        lines.append(f"  {printable(r['name']):<16} {r['threads']:>6,} threads "
                     f"{r['calls']:>12,} calls  {kind}")
    return lines + [f"once       {printable(m)}" for m in once_seen_warnings(roles)] + [
        f"start-up   {printable(m)}" for m in startup_warnings(roles)]


def _touched_show_lines(touched: dict | None) -> list[str]:
    """The learned sets (file templates, programs, peers, listens) and the allow-lists."""
    if not touched:
        return ["touched    no sets (trained without what the binary touched)"]
    lines = [f"touched    {touched.get('records', 0):,} records, new items per minute "
             f"{curve_text(touched.get('novelty_per_minute') or [], 20)}"]
    by_set = touched.get("novelty_per_minute_by_set") or {}
    for name, keys in (touched.get("sets") or {}).items():
        curve = f", new per minute {curve_text(by_set[name], 20)}" if name in by_set else ""
        lines.append(f"  {name} ({len(keys):,}{curve})")
        lines += [f"    {printable(k)}" for k in keys]
    root = touched.get("root_sets")
    if root is not None:
        lines.append(f"  the root process (the first: a master, a listener) itself touched "
                     f"{sum(len(k) for k in root.values()):,} of them; the rest is new for it")
        lines += [f"    {name} {printable(k)}" for name, keys in root.items() for k in keys]
    for name, patterns in (touched.get("allow") or {}).items():
        lines += [f"  allowed {name[:-1]:<5} {printable(p)}" for p in patterns]
    return lines + _fleet_show_lines(touched)


def _fleet_show_lines(touched: dict) -> list[str]:
    """A pooled profile's items by how many hosts touched them (the rarest first)."""
    hosts, counts = touched.get("hosts"), touched.get("item_hosts")
    if not hosts or not counts:
        return []
    rare = sorted(counts.items(), key=lambda kv: (kv[1], kv[0]))
    lines = [f"  pooled from {hosts:,} hosts; {sum(1 for _, n in rare if n == 1):,} of "
             f"{len(rare):,} items were touched on one host only"]
    return lines + [f"    {n} of {hosts}  {printable(item)}" for item, n in rare[:20] if n < hosts]


def _thread_profile_line(tp: dict | None) -> str:
    if not tp:
        return "threads    no thread profile (training had too few thread streams)"
    threshold = "none" if tp.get("threshold") is None else f"{tp['threshold']:.6g}"
    return (f"threads    {printable(tp.get('detector'))} on {tp.get('threads', 0):,} whole "
            f"streams ({tp.get('calibration_threads', 0):,} held out), threshold {threshold}")


def profiles_rm(
    name: Annotated[str, typer.Argument(help="Profile (process) name.")],
    store: StoreOption = None,
) -> None:
    """Remove a profile from the store."""
    from sysgram.models.store import ProfileStore

    path = ProfileStore(store).remove(name)
    say(f"removed {path}")
