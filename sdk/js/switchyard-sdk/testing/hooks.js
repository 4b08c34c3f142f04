// Node module-resolution hook: the contract's host interface -> testing/host.js.
const HOST = new URL('./host.js', import.meta.url).href;

export async function resolve(specifier, context, next) {
  if (specifier.startsWith('switchyard:plugin/host@')) return { url: HOST, shortCircuit: true };
  return next(specifier, context);
}
