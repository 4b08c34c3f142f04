// `npm run build`: src/index.ts (or src/index.js) -> <name>.wasm, offline. The name is
// package.json's `name`, the world its `switchyard.world` (adapter, channel or transform).
//
// 1. esbuild bundles the source, the SDK and its dependencies into one ES module; the
//    host interface (`switchyard:plugin/host@0.2.0`) stays an import.
// 2. componentize-js turns that module into a WebAssembly component of that world of
//    wit/plugin.wit. Every optional WASI feature is off (stdio, random, clocks,
//    http, fetch-event): the component imports nothing but the host interface.
import { existsSync } from 'node:fs';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { build } from 'esbuild';
import { componentize } from '@bytecodealliance/componentize-js';

const pkg = JSON.parse(await readFile('package.json', 'utf8'));
const WORLD = pkg.switchyard?.world;
if (!['adapter', 'channel', 'transform'].includes(WORLD)) {
  throw new Error('package.json needs "switchyard": {"world": "adapter" | "channel" | "transform"}');
}
const out = process.argv[2] ?? `${pkg.name}.wasm`;
const entry = existsSync('src/index.ts') ? 'src/index.ts' : 'src/index.js';
const bundle = `build/${pkg.name}.js`;
const started = performance.now();

await mkdir('build', { recursive: true });
await build({
  entryPoints: [entry],
  outfile: bundle,
  bundle: true,
  format: 'esm',
  platform: 'neutral',
  mainFields: ['module', 'main'],
  target: 'es2022',
  external: ['switchyard:*'],
  legalComments: 'none',
  logLevel: 'warning',
});

const { component } = await componentize({
  sourcePath: bundle,
  witPath: 'wit',
  worldName: WORLD,
  disableFeatures: ['stdio', 'random', 'clocks', 'http', 'fetch-event'],
});
await writeFile(out, component);

const { size } = await stat(out);
const seconds = ((performance.now() - started) / 1000).toFixed(1);
console.log(`built ${out} (${WORLD}, ${(size / 1024 / 1024).toFixed(1)} MiB) in ${seconds}s`);
console.log(`check it: switchyard plugin check ${out}`);
