#!/usr/bin/env node
// Builds a JavaScript heatbill plugin into a WebAssembly component for the `rules-plugin` world.
//
//   node plugins/js/build.mjs <plugin-dir> [--out FILE.wasm] [--wit DIR|FILE] [--sdk DIR] [--toolchain DIR]
//   node plugins/js/build.mjs --all            (every plugin dir of the kit)
//
// Steps: install the pinned toolchain (`npm ci`) when node_modules is missing or stale; read
// name, version, kind and description from the plugin's package.json; bundle the plugin and the
// SDK into one ES module (esbuild: ComponentizeJS takes a single source file); componentize it
// (ComponentizeJS embeds the SpiderMonkey engine, hence ~12 MB); print the output path.
//
// Defaults, so that one script serves the repository's kit and a plugin made outside it by
// `heatbill plugin new --lang js` (which vendors this script, the pins, the SDK and the WIT into
// the plugin's vendor/heatbill-kit/; `heatbill plugin build` then passes --wit, --sdk and a shared
// --toolchain directory in the user's cache):
//   --sdk        <this script's dir>/sdk
//   --toolchain  <this script's dir> (its package.json pins the toolchain; node_modules there)
//   --wit        <this script's dir>/wit (vendored), else the repository's wit/ (../../wit)
//   --out        <this script's dir>/target/<name>.wasm for a plugin under this script's dir,
//                else <plugin-dir>/target/<name>.wasm

import { existsSync, readFileSync, statSync, readdirSync, mkdirSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve, relative, isAbsolute } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';

const KIT = dirname(fileURLToPath(import.meta.url));
const KINDS = ['season', 'tariff', 'subsidy', 'fee'];

class BuildError extends Error {}

function usage() {
  return 'usage: node build.mjs <plugin-dir> [--out FILE.wasm] [--wit DIR|FILE] [--sdk DIR] [--toolchain DIR]\n       node build.mjs --all [--wit DIR|FILE] [--sdk DIR] [--toolchain DIR]';
}

function parseArgs(argv) {
  const o = { dirs: [], all: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new BuildError(`${a} needs a value\n${usage()}`);
      return argv[++i];
    };
    if (a === '--out') o.out = resolve(value());
    else if (a === '--wit') o.wit = resolve(value());
    else if (a === '--sdk') o.sdk = resolve(value());
    else if (a === '--toolchain') o.toolchain = resolve(value());
    else if (a === '--all') o.all = true;
    else if (a === '-h' || a === '--help') {
      console.log(usage());
      process.exit(0);
    } else if (a.startsWith('-')) throw new BuildError(`unknown option ${a}\n${usage()}`);
    else o.dirs.push(resolve(a));
  }
  if (!o.all && o.dirs.length !== 1) throw new BuildError(`give one plugin directory, or --all\n${usage()}`);
  if (o.all && o.out) throw new BuildError('--out names one file: it cannot be used with --all');
  return o;
}

function readJson(file, what) {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new BuildError(`${what} ${file}: ${e.code === 'ENOENT' ? 'not found' : e.message}`);
  }
}

/** The plugin's describe metadata and entry module, from its package.json. */
function pluginMeta(dir) {
  const pkgFile = join(dir, 'package.json');
  if (!existsSync(pkgFile)) throw new BuildError(`${dir} has no package.json: a plugin directory needs one (name, version, description, "heatbill": {"kind": ...})`);
  const pkg = readJson(pkgFile, 'the plugin manifest');
  const where = `${pkgFile}:`;
  if (typeof pkg.name !== 'string' || !/^[a-z0-9][a-z0-9-]*$/.test(pkg.name)) {
    throw new BuildError(`${where} "name" must be the plugin's name in lower-case kebab-case (e.g. "late-fee"), got ${JSON.stringify(pkg.name)}`);
  }
  if (typeof pkg.version !== 'string' || !/^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(pkg.version)) {
    throw new BuildError(`${where} "version" must be a semantic version such as "1.0.0", got ${JSON.stringify(pkg.version)}`);
  }
  const kind = pkg.heatbill?.kind;
  if (!KINDS.includes(kind)) {
    throw new BuildError(`${where} "heatbill": {"kind": ...} must be one of ${KINDS.map((k) => `"${k}"`).join(', ')}, got ${JSON.stringify(kind)}`);
  }
  const description = pkg.heatbill?.description ?? pkg.description;
  if (typeof description !== 'string' || description.trim() === '') {
    throw new BuildError(`${where} "description" must say in one paragraph what the plugin bills (it is what describe() returns)`);
  }
  const main = resolve(dir, pkg.main ?? 'plugin.js');
  if (!existsSync(main)) throw new BuildError(`${where} the plugin module ${main} does not exist: set "main" to the file that exports the plugin class by default`);
  return { name: pkg.name, version: pkg.version, kind, description, main };
}

/** Installs the pinned toolchain when node_modules is missing or older than the lock. */
function ensureToolchain(dir) {
  const pkg = join(dir, 'package.json');
  if (!existsSync(pkg)) throw new BuildError(`toolchain ${dir} has no package.json: pass --toolchain DIR, a directory whose package.json pins @bytecodealliance/componentize-js and esbuild`);
  const lock = join(dir, 'package-lock.json');
  const marker = join(dir, 'node_modules', '.package-lock.json');
  const needed = ['@bytecodealliance/componentize-js', 'esbuild'].map((p) => join(dir, 'node_modules', p, 'package.json'));
  const stale =
    !existsSync(marker) ||
    needed.some((p) => !existsSync(p)) ||
    (existsSync(lock) && statSync(lock).mtimeMs > statSync(marker).mtimeMs) ||
    statSync(pkg).mtimeMs > statSync(marker).mtimeMs;
  if (!stale) return;
  const args = existsSync(lock) ? ['ci', '--no-audit', '--no-fund'] : ['install', '--no-audit', '--no-fund'];
  console.error(`heatbill build: installing the toolchain: npm ${args.join(' ')} (in ${dir})`);
  const r = spawnSync('npm', args, { cwd: dir, stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.error || r.status !== 0) {
    throw new BuildError(`npm ${args[0]} failed in ${dir}${r.error ? `: ${r.error.message}` : ''}: check network access to the npm registry, or install the toolchain there by hand`);
  }
}

/** The WIT file of the contract (the newest: rules.wit alone, not the frozen versions in deps/). */
function witFile(opt, pluginDir) {
  const candidates = opt ? [opt] : [join(KIT, 'wit'), resolve(KIT, '..', '..', 'wit'), join(pluginDir, 'wit')];
  for (const c of candidates) {
    if (!existsSync(c)) continue;
    const f = statSync(c).isDirectory() ? join(c, 'rules.wit') : c;
    if (existsSync(f)) return f;
  }
  throw new BuildError(`no rules.wit found (looked in ${candidates.join(', ')}): pass --wit DIR, the directory of the contract's rules.wit`);
}

function sdkDir(opt) {
  const dir = opt ?? join(KIT, 'sdk');
  if (!existsSync(join(dir, 'package.json'))) throw new BuildError(`no SDK at ${dir}: pass --sdk DIR, the directory of @heatbill/sdk (its package.json and src/)`);
  return dir;
}

/** An esbuild plugin that resolves `@heatbill/sdk[/…]` to the SDK directory, by its exports. */
function sdkResolver(dir) {
  const exportsMap = readJson(join(dir, 'package.json'), 'the SDK manifest').exports ?? { '.': './src/index.js' };
  return {
    name: 'heatbill-sdk',
    setup(build) {
      build.onResolve({ filter: /^@heatbill\/sdk(\/.*)?$/ }, (args) => {
        const sub = args.path === '@heatbill/sdk' ? '.' : `.${args.path.slice('@heatbill/sdk'.length)}`;
        const target = exportsMap[sub];
        if (!target) return { errors: [{ text: `@heatbill/sdk has no export ${JSON.stringify(sub)} (it has ${Object.keys(exportsMap).join(', ')})` }] };
        return { path: resolve(dir, target) };
      });
    },
  };
}

async function buildOne(pluginDir, o, toolchain) {
  const meta = pluginMeta(pluginDir);
  const sdk = sdkDir(o.sdk);
  const wit = witFile(o.wit, pluginDir);
  const rel = relative(KIT, pluginDir);
  const inKit = !rel.startsWith('..') && !isAbsolute(rel);
  const out = o.out ?? join(inKit ? KIT : pluginDir, 'target', `${meta.name}.wasm`);
  const t0 = Date.now();

  // The toolchain's packages, loaded from the toolchain directory (not from wherever node would
  // resolve them for this script).
  const req = (p) => {
    const dir = join(toolchain, 'node_modules', p);
    const m = readJson(join(dir, 'package.json'), 'the toolchain package');
    const entry = m.exports?.['.']?.import ?? m.exports?.import ?? m.exports?.['.']?.default ?? m.main ?? 'index.js';
    return import(pathToFileURL(join(dir, entry)).href);
  };
  const esbuild = await req('esbuild');
  const { componentize } = await req('@bytecodealliance/componentize-js');

  const work = mkdtempSync(join(tmpdir(), `heatbill-js-${meta.name}-`));
  let keep = false; // the bundle stays for a look when componentizing fails
  try {
    const { main, ...describe } = meta;
    const entry = [
      `import Plugin from ${JSON.stringify(main)};`,
      `import { exportRules } from '@heatbill/sdk/adapter';`,
      `export const rules = exportRules(Plugin, ${JSON.stringify(describe)});`,
    ].join('\n');
    const bundle = join(work, 'bundle.js');
    await esbuild.build({
      stdin: { contents: entry, resolveDir: pluginDir, sourcefile: 'heatbill-entry.js', loader: 'js' },
      bundle: true,
      format: 'esm',
      platform: 'neutral',
      target: 'es2022',
      outfile: bundle,
      plugins: [sdkResolver(sdk)],
      logLevel: 'silent',
      legalComments: 'none',
    }).catch((e) => {
      throw new BuildError(`bundling ${meta.main} failed:\n${(e.errors ?? []).map((x) => `  ${x.location ? `${x.location.file}:${x.location.line}:${x.location.column}: ` : ''}${x.text}`).join('\n') || e.message}`);
    });
    let component;
    try {
      ({ component } = await componentize({
        sourcePath: bundle,
        // The WIT as text: ComponentizeJS reads a witPath inside its WASI sandbox, which sees
        // only some directories, and the text alone keeps deps/ (older versions) out.
        witWorld: readFileSync(wit, 'utf8'),
        worldName: 'rules-plugin',
        // No HTTP: the host grants none. stdio stays: a bug's message and stack go to stderr.
        disableFeatures: ['http', 'fetch-event'],
      }));
    } catch (e) {
      keep = true;
      throw new BuildError(`componentizing ${meta.name} failed: ${e.message ?? e}\n(the bundle is ${bundle}; a syntax error or a top-level exception in the plugin module shows here)`);
    }
    mkdirSync(dirname(out), { recursive: true });
    writeFileSync(out, component);
    console.error(`heatbill build: ${meta.name} ${meta.version} (${meta.kind}): ${(component.length / 1048576).toFixed(1)} MiB in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    console.log(out);
  } finally {
    if (!keep) rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Every plugin directory of the kit: a package.json with a "heatbill" field, two levels deep
 * (not bench/, whose fixtures stand in for kit plugins under the same names: ./dev bench-kits
 * builds them with --out).
 */
function kitPlugins() {
  const found = [];
  const skip = new Set(['node_modules', 'sdk', 'template', 'target', 'test', 'bench']);
  const visit = (dir, depth) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (!e.isDirectory() || skip.has(e.name) || e.name.startsWith('.')) continue;
      const d = join(dir, e.name);
      const pkg = join(d, 'package.json');
      if (existsSync(pkg) && readJson(pkg, 'manifest').heatbill) found.push(d);
      else if (depth < 2) visit(d, depth + 1);
    }
  };
  visit(KIT, 1);
  return found.sort();
}

try {
  const o = parseArgs(process.argv.slice(2));
  const toolchain = o.toolchain ?? KIT;
  ensureToolchain(toolchain);
  const dirs = o.all ? kitPlugins() : o.dirs;
  for (const d of dirs) {
    if (!existsSync(d) || !statSync(d).isDirectory()) throw new BuildError(`${d} is not a directory: give the plugin's directory (the one with its package.json)`);
    await buildOne(d, o, toolchain);
  }
} catch (e) {
  if (e instanceof BuildError) {
    console.error(`heatbill build: error: ${e.message}`);
    process.exit(1);
  }
  throw e;
}
