// The `llava-rad` command line (dist/cli.js). A table of commands; each parses its own options.
//
// Exit codes: 0 success, 1 engine/runtime error (message names the error code), 2 bad arguments,
// 130 interrupted (SIGINT).

import { LlavaRadError } from './errors.js';
import { packageVersion } from './native.js';
import { UsageError, type Command, type Io } from './cli/args.js';
import { batchCommand } from './cli/batch.js';
import { mergeCommand } from './cli/merge.js';
import { convertCommand } from './cli/convert.js';
import { convertChexbertCommand } from './cli/convert-chexbert.js';
import { convertLlamaCommand } from './cli/convert-llama.js';
import { convertRadgraphCommand } from './cli/convert-radgraph.js';
import { evalCommand } from './cli/eval.js';
import { findingsCommand } from './cli/findings.js';
import { generateCommand } from './cli/generate.js';
import { infoCommand } from './cli/info.js';
import { pullCommand } from './cli/pull.js';
import { pullEvalCommand } from './cli/pull-eval.js';
import { indexCommand } from './cli/index-cmd.js';
import { searchCommand } from './cli/search.js';
import { evalRetrievalCommand } from './cli/eval-retrieval.js';
import { embedCommand } from './cli/embed.js';
import { classifyCommand } from './cli/classify.js';
import { serveCommand } from './cli/serve.js';

// one file per command under lib/cli/; new commands join this table
const COMMANDS: Command[] = [generateCommand, findingsCommand, infoCommand, convertCommand, pullCommand, batchCommand, mergeCommand, evalCommand, convertChexbertCommand, convertLlamaCommand, convertRadgraphCommand, pullEvalCommand, embedCommand, classifyCommand, indexCommand, searchCommand, evalRetrievalCommand, serveCommand];

function mainUsage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return `Usage: llava-rad <command> [options]

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n')}

Run 'llava-rad <command> --help' for a command's options.
  -h, --help       this help
  -v, --version    print the version

Research use only: LLaVA-Rad is not for clinical care.`;
}

/** Runs the CLI; resolves with the exit code. Exported for tests. */
export async function main(argv: string[], io: Io = defaultIo(), signal: AbortSignal = new AbortController().signal): Promise<number> {
  const [first, ...rest] = argv;
  try {
    if (first === undefined) {
      io.err(mainUsage() + '\n');
      return 2;
    }
    if (first === '-h' || first === '--help' || first === 'help') {
      io.out(mainUsage() + '\n');
      return 0;
    }
    if (first === '-v' || first === '--version' || first === 'version') {
      io.out(`llava-rad ${packageVersion()}\n`);
      return 0;
    }
    const cmd = COMMANDS.find((c) => c.name === first);
    if (!cmd) throw new UsageError(`unknown command '${first}' (commands: ${COMMANDS.map((c) => c.name).join(', ')}; see llava-rad --help)`);
    stdoutIsLog = cmd.stdoutIsLog === true;
    return await cmd.run(rest, io, signal);
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`llava-rad: ${e.message}\n`);
      return 2;
    }
    if (e instanceof LlavaRadError) {
      if (e.code === 'ABORTED' && signal.aborted) {
        io.err('\nllava-rad: interrupted\n');
        return 130;
      }
      io.err(`llava-rad: error [${e.code}]: ${e.message.replace(/^llava-rad: /, '')}\n`);
      return 1;
    }
    io.err(`llava-rad: unexpected error [INTERNAL]: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    return 1;
  }
}

/** set once the standard error cannot be written (its reader went away): messages are dropped from then on */
let stderrGone = false;
/** the running command's stdout is a log (Command.stdoutIsLog), and set once it cannot be written */
let stdoutIsLog = false;
let stdoutGone = false;

function defaultIo(): Io {
  return {
    out: (s) => {
      if (!stdoutGone) process.stdout.write(s);
    },
    err: (s) => {
      if (!stderrGone) process.stderr.write(s);
    },
  };
}

function isEntryPoint(): boolean {
  // dist/cli.js is the bin; also run when executed directly from source
  const arg = process.argv[1] ?? '';
  return /(?:^|[\\/])(?:cli\.(?:js|mjs|cjs|ts)|llava-rad)$/.test(arg);
}

if (isEntryPoint()) {
  const ac = new AbortController();
  process.once('SIGINT', () => ac.abort(new LlavaRadError('ABORTED', 'interrupted')));
  // a reader of the standard error that went away (`batch ... 2>&1 | head`, a log shipper that stopped) must not
  // end a job of hours half-way: an EPIPE there was an uncaught error, exit 1, the lock left behind. Messages are
  // dropped from then on; the command runs to its end and its exit status says how it went
  process.stderr.on('error', () => {
    stderrGone = true;
  });
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    // a reader that went away (`| head`) ends the command as it is; a server's log reader does not end the server
    if (e.code === 'EPIPE' && stdoutIsLog) {
      stdoutGone = true;
      return;
    }
    if (e.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    // output that cannot be written (a full disk) fails the command rather than leave a file short with exit 0
    process.stderr.write(`llava-rad: error [IO]: cannot write the standard output: ${e.message}\n`);
    process.exit(1);
  });
  main(process.argv.slice(2), defaultIo(), ac.signal).then(
    (code) => {
      process.exitCode = code;
    },
    (e: unknown) => {
      process.stderr.write(`llava-rad: unexpected error [INTERNAL]: ${String(e)}\n`);
      process.exitCode = 1;
    },
  );
}
