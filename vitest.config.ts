import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // engine tests load real (tiny) models and spawn the CLI
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // CI reads the counts from the JSON report
    reporters: ['default', 'json'],
    outputFile: { json: '.vitest-results.json' },
  },
});
