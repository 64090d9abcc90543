// Minimal Node module hooks that let plain `node` run this repository's TypeScript sources in place
// (for scripts and child processes in tests; the package itself ships compiled dist/).
//
//   node --import ./scripts/ts-hooks.mjs some-script.mjs       (the script may import ../lib/x.js)
//
// - resolve: a relative "./x.js" import whose .js file does not exist but whose .ts does resolves to the .ts
// - load: .ts files are transpiled (types stripped, ESM kept) with esbuild, which tsup brings in
// Files keep their real location, so import.meta.url-relative paths (the native addon) still work.
import { register } from 'node:module';

register(new URL('./ts-hooks-impl.mjs', import.meta.url));
