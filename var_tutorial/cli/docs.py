"""update-docs: the tables of README.md and docs/*.md, rendered anew from results/*.json (report.py)."""
from __future__ import annotations

from ..report import update_docs


def add_update_docs(sub) -> None:
    ud = sub.add_parser("update-docs", help="rewrite the docs' generated tables from results/*.json",
                        description="Render every '<!-- begin: ... -->' block of README.md and docs/*.md anew from "
                        "the results files (var_tutorial/report.py); run it after a new measurement. Docs whose "
                        "blocks are already current are not rewritten.")
    ud.set_defaults(func=cmd_update_docs)


def cmd_update_docs(args):
    changed = update_docs()
    print(f"{len(changed)} docs rewritten" + "".join(f"\n  {p}" for p in changed))


def register(sub) -> None:
    add_update_docs(sub)
