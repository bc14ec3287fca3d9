// multilang-sandbox JavaScript kernel (also runs TypeScript after esbuild
// stripped the types). Started by runner.py; reads one JSON request per line
// from fd $SANDBOX_CTL_FD ({path, stdin_path, env}), runs the file in this
// process's global context so top-level bindings persist between requests,
// and writes {"exit_code": N} to fd $SANDBOX_DONE_FD when the request is done
// ({"started": true} first, from its first statement).
//
// To make a REPL-like session work with plain scripts, top-level lines are
// rewritten before they run:
//   const/let x = ...        -> var x = ...          (re-runnable, persists)
//   class X {...}            -> var X = class X {...}
//   import x from 'm' etc.   -> var x = require('m') etc.
// Code with top-level `await` runs inside an async function; its simple
// declarations (`const x = ...`, `function f`) are assigned to globalThis so
// they persist too.
'use strict';

const fs = require('fs');
const vm = require('vm');
const readline = require('readline');
const { createRequire } = require('module');

const controlFd = Number(process.env.SANDBOX_CTL_FD);
const doneFd = Number(process.env.SANDBOX_DONE_FD);
delete process.env.SANDBOX_CTL_FD;
delete process.env.SANDBOX_DONE_FD;

globalThis.require = createRequire('/workspace/');
globalThis.__importDefault = (mod) => (mod && mod.__esModule ? mod.default : mod);

class ExitRequest extends Error {
  constructor(code) {
    super(`process.exit(${code})`);
    this.exitCode = code;
  }
}

let exitCode = 0;
let interruptRun = null;

process.exit = (code) => {
  throw new ExitRequest(code === undefined ? 0 : Number(code) || 0);
};

function report(error) {
  if (error instanceof ExitRequest) {
    exitCode = error.exitCode;
    return;
  }
  const text = error && error.stack ? error.stack : String(error);
  const internal = /\((?:node:|\/opt\/sandbox\/)|^\s+at (?:node:|\/opt\/sandbox\/)|sigintHandlersWrap|processTicksAndRejections/;
  const lines = text.split('\n').filter((line) => !internal.test(line));
  process.stderr.write(`${lines.join('\n')}\n`);
  exitCode = 1;
}

process.on('uncaughtException', report);
process.on('unhandledRejection', report);
process.on('SIGINT', () => {
  if (interruptRun) interruptRun();
});

// The runner interrupts a cell (SIGINT) only once the cell says it runs:
// Node.js loses an interrupt that lands before its script runs, and can end
// on one that lands while it starts the script. So the cell's first
// statement says so, and the script is running by then.
Object.defineProperty(globalThis, '__msbStarted', {
  value: () => fs.writeSync(doneFd, '{"started": true}\n'),
});
const STARTED = '__msbStarted();';

const IDENT = '[A-Za-z_$][\\w$]*';

function rewriteImport(line) {
  let match = line.match(/^import\s+(['"][^'"]+['"])\s*;?\s*$/);
  if (match) return `require(${match[1]});`;
  match = line.match(/^import\s+\*\s+as\s+([A-Za-z_$][\w$]*)\s+from\s+(['"][^'"]+['"])\s*;?\s*$/);
  if (match) return `var ${match[1]} = require(${match[2]});`;
  match = line.match(/^import\s+([A-Za-z_$][\w$]*)?\s*,?\s*(\{[^}]*\})?\s*from\s+(['"][^'"]+['"])\s*;?\s*$/);
  if (match && (match[1] || match[2])) {
    const parts = [];
    const source = `require(${match[3]})`;
    if (match[1]) parts.push(`var ${match[1]} = __importDefault(${source});`);
    if (match[2]) parts.push(`var ${match[2].replace(/\s+as\s+/g, ': ')} = ${source};`);
    return parts.join(' ');
  }
  return null;
}

function hasTopLevelAwait(code) {
  return code.split('\n').some((line) => /^(?:[^\s/].*)?\bawait\b/.test(line) && !/^\s*\/\//.test(line));
}

function rewrite(code) {
  const asyncMode = hasTopLevelAwait(code);
  const lines = code.split('\n').map((line) => {
    const imported = rewriteImport(line);
    if (imported !== null) return imported;
    if (asyncMode) {
      return line
        .replace(new RegExp(`^(?:const|let|var)\\s+(${IDENT})\\s*=`), 'globalThis.$1 =')
        .replace(new RegExp(`^(async\\s+)?function\\s*(\\*?)\\s*(${IDENT})`), 'globalThis.$3 = $1function$2 $3')
        .replace(new RegExp(`^class\\s+(${IDENT})`), 'globalThis.$1 = class $1');
    }
    return line
      .replace(/^(?:const|let)\s/, 'var ')
      .replace(new RegExp(`^class\\s+(${IDENT})`), 'var $1 = class $1');
  });
  // A hashbang is only allowed first, where the started call goes: blanked.
  if (lines[0].startsWith('#!')) lines[0] = '';
  const body = lines.join('\n');
  // A 'use strict' first (after blank and comment lines) stays the
  // script's first statement.
  const first = lines.find((line) => !/^\s*(?:\/\/.*)?$/.test(line)) || '';
  const start = /^\s*(['"])use strict\1/.test(first) ? `'use strict'; ${STARTED}` : STARTED;
  return asyncMode ? { code: `${start} (async () => {\n${body}\n})()`, offset: 1 } : { code: `${start}\n${body}`, offset: 1 };
}

// Each request's stdin (a file written by the runner) becomes process.stdin.
function setStdin(path) {
  const stream = fs.createReadStream(path || '/dev/null');
  Object.defineProperty(process, 'stdin', { configurable: true, enumerable: true, get: () => stream });
}

async function run(request) {
  exitCode = 0;
  Object.assign(process.env, request.env || {});
  setStdin(request.stdin_path);
  const source = fs.readFileSync(request.path, 'utf8');
  const { code, offset } = rewrite(source);
  try {
    const script = new vm.Script(code, { filename: request.path, lineOffset: -offset });
    const result = script.runInThisContext({ breakOnSigint: true });
    if (result && typeof result.then === 'function') {
      await Promise.race([
        result,
        new Promise((_, reject) => {
          interruptRun = () => reject(new Error('Interrupted (timeout or cancel)'));
        }),
      ]);
    }
  } catch (error) {
    if (error && /Script execution was interrupted|Interrupted \(timeout/.test(String(error.message))) {
      process.stderr.write('Interrupted (timeout or cancel)\n');
      exitCode = 130;
    } else {
      report(error);
    }
  } finally {
    interruptRun = null;
  }
  await new Promise((resolve) => setImmediate(resolve));
  fs.writeSync(doneFd, `${JSON.stringify({ exit_code: exitCode })}\n`);
}

let queue = Promise.resolve();
const input = readline.createInterface({ input: fs.createReadStream(null, { fd: controlFd }) });
input.on('line', (line) => {
  queue = queue.then(() => run(JSON.parse(line))).catch(report);
});
input.on('close', () => {
  process.exitCode = 0;
});
fs.writeSync(doneFd, '{"ready": true}\n');
