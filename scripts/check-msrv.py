#!/usr/bin/env python3
"""Checks the workspace's declared minimum Rust version (rust-version in Cargo.toml) against
every package the build uses: no dependency may need a newer compiler than we declare.

Only one toolchain is installed where the tests run, so the code itself is checked by clippy's
`incompatible_msrv` lint (standard library items newer than rust-version), which reads the same
declaration; this script covers the dependencies.
"""
import json
import subprocess
import sys


def version(text):
    parts = [int(p) for p in text.split(".")]
    return tuple(parts + [0] * (3 - len(parts)))


def main():
    meta = json.loads(
        subprocess.run(
            ["cargo", "metadata", "--format-version", "1", "--all-features", "--locked"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    members = set(meta["workspace_members"])
    declared = {p["rust_version"] for p in meta["packages"] if p["id"] in members}
    if len(declared) != 1 or None in declared:
        print(f"workspace members must share one rust-version, found {sorted(map(str, declared))}")
        return 1
    msrv = declared.pop()
    # What a user of the published crates compiles: their normal and build dependencies,
    # followed through the resolved graph (dev-dependencies and unpublished crates such as the
    # benchmark peers do not reach users).
    nodes = {node["id"]: node for node in meta["resolve"]["nodes"]}
    packages = {p["id"]: p for p in meta["packages"]}
    todo = [m for m in members if packages[m].get("publish") != []]
    used = set()
    while todo:
        pid = todo.pop()
        if pid in used:
            continue
        used.add(pid)
        for dep in nodes[pid]["deps"]:
            if any(k["kind"] in (None, "build") for k in dep["dep_kinds"]):
                todo.append(dep["pkg"])
    too_new = sorted(
        (p["name"], p["version"], p["rust_version"])
        for p in meta["packages"]
        if p["id"] in used and p["rust_version"] and version(p["rust_version"]) > version(msrv)
    )
    for name, ver, needs in too_new:
        print(f"{name} {ver} needs Rust {needs}, newer than the declared {msrv}")
    if too_new:
        return 1
    print(f"rust-version {msrv}: every dependency builds with it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
