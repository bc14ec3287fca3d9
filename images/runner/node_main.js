// multilang-sandbox: a Node.js process started ahead of a stateless execute
// in a pooled javascript or typescript container, so the call does not pay
// Node's start-up. It loads, says ready, and waits; the one request it
// serves turns it into that program, run as `node <path>` would run it:
// its own main module (CommonJS or ES module, by Node's own rules),
// process.argv, the request's environment and working directory, Node's
// own exit codes, process.exit, uncaught errors and the event loop's end.
//
//   runner -> here  one JSON line on fd $SANDBOX_CTL_FD: {"path", "env", "cwd"}
//   here -> runner  {"ready": true} once, on fd $SANDBOX_DONE_FD
//
// Both descriptors are closed before the program starts, so it holds only
// stdin, stdout and stderr. Its stdin is a pipe the runner fills with the
// request's stdin and closes (end of input at once when there is none,
// where a fresh node gets /dev/null), and process.uptime() counts from the
// container's start: the two differences a program can see. The server
// sends a request here only when its environment sets nothing read while a
// process starts (NODE_OPTIONS, LD_*, the locale and the like); others run
// in a fresh `node`. The runner reads the exit status when the process ends.
'use strict';

const fs = require('fs');
const Module = require('module');

const controlFd = Number(process.env.SANDBOX_CTL_FD);
const doneFd = Number(process.env.SANDBOX_DONE_FD);
delete process.env.SANDBOX_CTL_FD;
delete process.env.SANDBOX_DONE_FD;

// One line, read with blocking reads: nothing else runs in this process
// while it waits, and no handle is left behind for the program.
function readLine(fd) {
  const chunks = [];
  const buffer = Buffer.alloc(64 * 1024);
  for (;;) {
    let count;
    try {
      count = fs.readSync(fd, buffer, 0, buffer.length, null);
    } catch (error) {
      if (error.code === 'EAGAIN' || error.code === 'EINTR') continue;
      throw error;
    }
    if (count === 0) return null;
    const newline = buffer.subarray(0, count).indexOf(10);
    if (newline >= 0) {
      chunks.push(Buffer.from(buffer.subarray(0, newline)));
      return Buffer.concat(chunks).toString('utf8');
    }
    chunks.push(Buffer.from(buffer.subarray(0, count)));
  }
}

// Work every program does first, done before the call: the output streams
// (made on first use; the same pipes either way) and the ES module loader
// (a built-in and an empty module: no code of anyone's runs).
process.stdout;
process.stderr;
import('node:fs')
  .then(() => import('data:text/javascript,'))
  .catch(() => {}) // only a warm-up: the program runs without it
  .then(() => {
    fs.writeSync(doneFd, '{"ready": true}\n');
    fs.closeSync(doneFd);
    const line = readLine(controlFd);
    fs.closeSync(controlFd);
    if (line === null) process.exit(0);
    const request = JSON.parse(line);
    Object.assign(process.env, request.env || {});
    if (request.cwd) process.chdir(request.cwd);
    process.argv = [process.argv[0], request.path];
    // From the tick queue, so no frame of this file shows in the program's stack traces.
    process.nextTick(Module.runMain, request.path);
  });
