#!/usr/bin/env python3
"""Builds a Python heatbill plugin into a WebAssembly component for the `rules-plugin` world.

    python3 plugins/python/build.py <plugin-dir> [--out FILE.wasm] [--wit DIR] [--sdk DIR]
                                    [--toolchain DIR]
    python3 plugins/python/build.py --all

A plugin directory holds a pyproject.toml ([project] name and version: what `describe` says;
[tool.heatbill] plugin = "module:Class", kind, description) and the plugin's Python modules.
The build stages the plugin's modules, the SDK (`heatbill`) and a generated entry module into one
directory and runs the pinned componentize-py (toolchain.txt, installed with --require-hashes into
a venv on first use or when toolchain.txt changes). It prints the component's path.

Standard library only: run it with the system python3 (3.11 or newer, for tomllib).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KIT = Path(__file__).resolve().parent
REPO = KIT.parent.parent
KINDS = ("season", "tariff", "subsidy", "fee")
WORLD = "rules-plugin"
# A plugin's name: what case files and chains name it by (the Rust plugins' crate names).
NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
# What is staged from a plugin directory: Python sources only (never target/ or cases/, which
# componentize-py would otherwise bundle into the component).
SKIP_DIRS = {"target", "cases", "tests", "__pycache__", ".toolchain", "build", "dist"}


class BuildError(Exception):
    """A problem the user fixes; printed without a traceback."""


def read_project(plugin_dir: Path) -> dict:
    import tomllib

    path = plugin_dir / "pyproject.toml"
    if not path.is_file():
        raise BuildError(f"{plugin_dir}: no pyproject.toml; a plugin directory needs one (copy plugins/python/template)")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise BuildError(f"{path}: not valid TOML: {e}") from None
    project = data.get("project", {})
    tool = data.get("tool", {}).get("heatbill")
    if tool is None:
        raise BuildError(f'{path}: no [tool.heatbill] table; add plugin = "module:Class" and kind = "fee" (or season, tariff, subsidy)')
    name, version = project.get("name"), project.get("version")
    if not isinstance(name, str) or not NAME.match(name):
        raise BuildError(f"{path}: [project] name {name!r} must be lowercase words joined by dashes, e.g. \"late-fee\": it is the plugin's name in chains")
    if not isinstance(version, str) or not re.match(r"^[0-9]+\.[0-9]+\.[0-9]+([-+][0-9A-Za-z.+-]+)?$", version):
        raise BuildError(f'{path}: [project] version {version!r} must be a semantic version, e.g. "1.0.0"')
    kind = tool.get("kind")
    if kind not in KINDS:
        raise BuildError(f"{path}: [tool.heatbill] kind {kind!r} must be one of {', '.join(KINDS)}")
    description = tool.get("description", project.get("description"))
    if not isinstance(description, str) or not description.strip():
        raise BuildError(f"{path}: give a description in [tool.heatbill] (one paragraph on what the plugin bills)")
    target = tool.get("plugin")
    if not isinstance(target, str) or not re.match(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$", target):
        raise BuildError(f'{path}: [tool.heatbill] plugin {target!r} must be "module:Class", e.g. "late_fee:LateFee"')
    module = target.split(":")[0]
    top = module.split(".")[0]
    if not (plugin_dir / f"{top}.py").is_file() and not (plugin_dir / top / "__init__.py").is_file():
        raise BuildError(f"{path}: [tool.heatbill] plugin names module {module!r}, but {plugin_dir} has no {top}.py or {top}/__init__.py")
    return {"name": name, "version": version, "kind": kind, "description": " ".join(description.split()), "plugin": target}


def toolchain(venv: Path) -> Path:
    """The componentize-py of the pinned toolchain, installing it when missing or changed."""
    spec = KIT / "toolchain.txt"
    digest = hashlib.sha256(spec.read_bytes()).hexdigest()
    stamp = venv / "toolchain.sha256"
    exe = venv / "bin" / "componentize-py"
    if exe.is_file() and stamp.is_file() and stamp.read_text().strip() == digest:
        return exe
    print(f"installing the toolchain ({spec.name}) into {venv} ...", file=sys.stderr)
    if venv.exists():
        shutil.rmtree(venv)
    r = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True)
    if r.returncode:
        raise BuildError(f"could not create a venv at {venv} (on Debian/Ubuntu: apt install python3-venv):\n{r.stderr.strip()}")
    r = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", "--require-hashes", "-r", str(spec)],
        capture_output=True, text=True)
    if r.returncode:
        raise BuildError(
            f"could not install the toolchain from {spec} (PyPI reachable? a linux x86_64 wheel pinned for this machine?):\n{r.stderr.strip()}")
    stamp.write_text(digest + "\n")
    return exe


def _copy_sources(src: Path, dst: Path) -> None:
    for p in src.iterdir():
        if p.name.startswith(".") or p.name in SKIP_DIRS:
            continue
        if p.is_file() and p.suffix == ".py":
            shutil.copy2(p, dst / p.name)
        elif p.is_dir() and (p / "__init__.py").is_file():
            shutil.copytree(p, dst / p.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


def stage(plugin_dir: Path, sdk: Path, meta: dict, app: Path) -> str:
    """Plugin modules, the SDK package and the generated entry module, in `app`."""
    if not (sdk / "heatbill" / "__init__.py").is_file():
        raise BuildError(f"{sdk}: not the heatbill SDK (no heatbill/__init__.py); pass --sdk plugins/python/sdk")
    _copy_sources(plugin_dir, app)
    shutil.copytree(sdk / "heatbill", app / "heatbill", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "testing.py"))
    module, cls = meta["plugin"].split(":")
    info = {k: meta[k] for k in ("name", "version", "kind", "description")}
    (app / "heatbill_meta.py").write_text(
        "# Generated by plugins/python/build.py from the plugin's pyproject.toml; do not edit.\n"
        f"META = {info!r}\n", encoding="utf-8")
    entry = "heatbill_app"
    (app / f"{entry}.py").write_text(
        "# Generated by plugins/python/build.py: the component's entry module; do not edit.\n"
        "from heatbill.component import export\n"
        "from heatbill_meta import META\n"
        f"from {module} import {cls} as _Plugin\n"
        "\n"
        "Rules = export(_Plugin, META)\n", encoding="utf-8")
    return entry


def build(plugin_dir: Path, out: Path | None, wit: Path, sdk: Path, venv: Path) -> Path:
    plugin_dir = plugin_dir.resolve()
    if not plugin_dir.is_dir():
        raise BuildError(f"{plugin_dir}: no such directory")
    if not (wit / "rules.wit").is_file():
        raise BuildError(f"{wit}: no rules.wit; pass --wit <the repository's wit/ directory>")
    meta = read_project(plugin_dir)
    if out is None:
        inside_kit = KIT in plugin_dir.parents
        out = (KIT / "target" if inside_kit else plugin_dir / "target") / f"{meta['name']}.wasm"
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    exe = toolchain(venv)
    with tempfile.TemporaryDirectory(prefix="heatbill-py-") as tmp:
        app = Path(tmp) / "app"
        app.mkdir()
        entry = stage(plugin_dir, sdk, meta, app)
        cmd = [str(exe), "--quiet", "-d", str(wit), "-w", WORLD, "componentize", "-p", str(app), entry, "-o", str(out)]
        # componentize-py adds a VIRTUAL_ENV's site-packages to the bundle: keep the caller's out.
        env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
        start = time.monotonic()
        r = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, env=env)
        if r.returncode:
            raise BuildError(
                f"componentize-py failed for {plugin_dir.name} (an import-time error in the plugin shows here: it runs at build time):\n"
                + (r.stderr or r.stdout).strip())
        seconds = time.monotonic() - start
    size = out.stat().st_size
    print(f"built {meta['name']} {meta['version']} ({meta['kind']}) in {seconds:.1f} s, {size / 1e6:.1f} MB", file=sys.stderr)
    return out


def kit_plugins() -> list[Path]:
    """Every plugin directory of the kit (not the template, whose files are placeholders, nor
    bench/, whose fixtures stand in for kit plugins under the same names: ./dev bench-kits builds
    them with --out)."""
    found = []
    for pyproject in sorted(KIT.rglob("pyproject.toml")):
        d = pyproject.parent
        rel = d.relative_to(KIT).parts
        if not rel or rel[0] in ("sdk", "template", "target", "bench") or any(p.startswith(".") for p in rel):
            continue
        found.append(d)
    return found


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Build a Python heatbill plugin into a component.")
    ap.add_argument("plugin_dir", nargs="?", type=Path, help="the plugin's directory (with pyproject.toml)")
    ap.add_argument("--all", action="store_true", help="build every plugin directory of the kit")
    ap.add_argument("--out", type=Path, help="the component to write (default: <kit>/target/<name>.wasm for kit plugins, <plugin-dir>/target/<name>.wasm otherwise)")
    ap.add_argument("--wit", type=Path, default=REPO / "wit", help="the WIT directory (default: the repository's wit/)")
    ap.add_argument("--sdk", type=Path, default=KIT / "sdk", help="the SDK directory (default: plugins/python/sdk)")
    ap.add_argument("--toolchain", type=Path, default=KIT / ".toolchain", help="the toolchain venv (default: plugins/python/.toolchain)")
    args = ap.parse_args(argv)
    if sys.version_info < (3, 11):
        print("error: build.py needs Python 3.11 or newer (tomllib)", file=sys.stderr)
        return 2
    if args.all == (args.plugin_dir is not None):
        ap.error("give a plugin directory or --all")
    if args.all and args.out:
        ap.error("--out names one component: not with --all")
    dirs = kit_plugins() if args.all else [args.plugin_dir]
    try:
        for d in dirs:
            print(build(d, args.out, args.wit.resolve(), args.sdk.resolve(), args.toolchain.resolve()))
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
