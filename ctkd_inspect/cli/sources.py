"""``ctkd-inspect tokenizers`` and ``ctkd-inspect fetch``: the offline aliases and their cache."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import ExitCode
from .common import cache_option, dumps, guard, quiet_option, stderr_console, stdout_console


@click.command("tokenizers")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
@cache_option
@quiet_option
@guard
def tokenizers_command(as_json, cache_dir):
    """List the offline aliases: family, vocabulary, source package, official hub id, whether cached."""
    from ..sources.assets import ASSETS, is_fetched
    from ..sources.registry import ALIASES

    root = Path(cache_dir).expanduser() if cache_dir else None
    rows = []
    for alias in ALIASES.values():
        package = ", ".join(f"{p.name}=={p.version}" for p in ASSETS[alias.asset].packages[:1])
        rows.append({"alias": alias.name, "family": alias.family, "kind": alias.kind, "vocab_size": alias.vocab_size,
                     "source": package, "file": alias.file, "hub_id": alias.hub_id,
                     "cached": is_fetched(alias.asset, root), "note": alias.note})
    if as_json:
        click.echo(dumps(rows, indent=1))
        return
    from rich import box
    from rich.table import Table

    table = Table(title="offline tokenizer aliases", title_justify="left", box=box.SIMPLE_HEAD)
    widths = {"alias": 14, "kind": 16, "vocab": 7, "source package": 16, "official hub id": 26, "cached": 6}
    for column, width in widths.items():
        table.add_column(column, min_width=width, overflow="fold", justify="right" if column == "vocab" else "left")
    for row in rows:
        table.add_row(row["alias"], row["kind"], f"{row['vocab_size']:,}", row["source"],
                      row["hub_id"], "[green]yes[/]" if row["cached"] else "no")
    stdout_console().print(table)


@click.command("fetch")
@click.argument("names", nargs=-1)
@click.option("--all", "fetch_all", is_flag=True, help="Fetch every offline asset (about 440 MB).")
@click.option("--force", is_flag=True, help="Download again even when cached.")
@click.option("--verify", is_flag=True, help="Re-hash the cached files (downloaded assets and converted tokenizers) "
              "against their manifests instead of fetching; exit 1 if any is damaged.")
@cache_option
@quiet_option
@guard
def fetch_command(names, fetch_all, force, verify, cache_dir):
    """Download the files behind aliases (or assets) into the cache, with checksums, so later runs are offline.

    NAMES are aliases (llama3, gemma2, ...) or asset keys (llama-cpp, draive, ...). The package client (pip)
    downloads pinned, hash-checked archives; set PIP_INDEX_URL to use a mirror.
    """
    from ..errors import TokenizerNotFound
    from ..sources import _suggest
    from ..sources.assets import ASSETS, asset_summary, fetch_asset
    from ..sources.registry import find_alias

    if not names and not fetch_all:
        raise click.UsageError("name the aliases to fetch, or pass --all")
    root = Path(cache_dir).expanduser() if cache_dir else None
    keys: list[str] = []
    for name in (ASSETS if fetch_all else names):
        alias = find_alias(name)
        key = alias.asset if alias else name
        if key not in ASSETS:
            suggestions = _suggest(name)
            hint = f" Did you mean: {', '.join(suggestions)}?" if suggestions else ""
            raise TokenizerNotFound(f"{name!r} is neither an alias nor an asset.{hint}", suggestions)
        if key not in keys:
            keys.append(key)
    err = stderr_console()
    if verify:  # every file of the named assets and of their converted tokenizers, re-hashed
        from rich.markup import escape

        from ..sources.verify import verify_cache

        checks = verify_cache(None if fetch_all else list(names), root)
        for check in checks:
            colour = "red" if check.failed else "green" if check.status == "ok" else "dim"
            err.print(f"[{colour}]{escape(check.line())}[/]")
        if any(check.failed for check in checks):
            sys.exit(int(ExitCode.RUNTIME))
        return
    for key in keys:
        entry = fetch_asset(key, root, force=force)
        summary = asset_summary(key, root)
        err.print(f"[green]✓[/] {key}: {summary['bytes_on_disk'] / 1e6:.1f} MB in {entry}")
