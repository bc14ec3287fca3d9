"""Jobs: runs whose result the runner keeps until the host collects it, so
that long work outlives a client's patience and the server itself (a
restarted server, or another one beside it, finds the job here).

A run becomes a job when it starts with `"keep": true` (a background
execute) or when the host sends `keep` while it runs (an execute that passed
its detach deadline). The runner then keeps its output captures and, once it
ends, its result, until the host sends `forget` (or MAX_FINISHED newer
finished jobs push it out). `read` returns the output not read before, so
output is neither lost nor repeated across reads, whichever server reads.
"""

import time

import runner_protocol as protocol
from runner_capture import utf8_prefix

# Finished jobs kept at most (the host caps them lower; this is the
# runner's own bound on memory: each keeps its output captures and its
# result's files).
MAX_FINISHED = 8
# Most bytes of one stream a `read` returns (the rest waits for the next).
READ_LIMIT = 1 << 20


class Job:
    """One kept run: its output as it grows, then its result."""

    def __init__(self, job_id, label, stdout, stderr, started_ms, started):
        self.job_id = job_id
        self.label = label
        self.stdout = stdout
        self.stderr = stderr
        self.started_ms = started_ms
        self.started = started  # monotonic
        self.kept = False
        self.result = None  # the result message, once it ended
        self.ended = None  # monotonic, once it ended
        self.read_to = [0, 0]  # bytes of stdout, stderr already read

    def status(self, now):
        return protocol.job_status(
            self.job_id,
            self.label,
            "done" if self.result is not None else "running",
            self.started_ms,
            int(((self.ended or now) - self.started) * 1000),
            self.stdout.size,
            self.stderr.size,
        )

    def read(self, now):
        """Its status with the output not read before (whole characters
        while it runs) and, once it ended, its result without the output."""
        message = self.status(now)
        done = self.result is not None
        for index, (name, capture) in enumerate((("stdout", self.stdout), ("stderr", self.stderr))):
            data = b"".join(capture.chunks)[self.read_to[index]:]
            if len(data) > READ_LIMIT:
                data = utf8_prefix(data, READ_LIMIT)
            elif not done:
                data = utf8_prefix(data, len(data))
            self.read_to[index] += len(data)
            message[name] = data.decode("utf-8", "replace")
        unread = self.read_to[0] < self.stdout.size or self.read_to[1] < self.stderr.size
        if done:
            result = dict(self.result)
            result["stdout"], result["stderr"] = "", ""
            message["result"] = result
            message["unread"] = unread
        return message


class Jobs:
    """The current run (a job candidate) and the kept jobs."""

    def __init__(self):
        self.current = None
        self.kept = {}  # job id -> Job, in start order

    def start(self, request, stdout, stderr, started):
        """Registers the run `request` as the current one."""
        job = Job(request["id"], request.get("label", ""), stdout, stderr, time.time_ns() // 1_000_000, started)
        self.current = job
        if request.get("keep"):
            self.keep(job, job.label)

    def keep(self, job, label):
        job.kept = True
        if label:
            job.label = label
        self.kept[job.job_id] = job

    def end(self, result):
        """The current run ended with `result` (the message sent to the host)."""
        job, self.current = self.current, None
        if job is None or not job.kept:
            return
        # The output is in the captures already: not kept twice.
        job.result = {key: value for key, value in result.items() if key not in ("type", "stdout", "stderr")}
        job.ended = time.monotonic()
        finished = [kept for kept in self.kept.values() if kept.result is not None]
        for old in finished[: max(0, len(finished) - MAX_FINISHED)]:
            del self.kept[old.job_id]

    def running_job(self):
        """The current run when it is a job (other runs must not wait behind it)."""
        if self.current is not None and self.current.kept:
            return self.current
        return None

    def answer(self, request):
        """The `job` reply to a checked `job` request."""
        now = time.monotonic()
        op = request["op"]
        if op == "list":
            return protocol.jobs_reply(request["id"], [job.status(now) for job in self.kept.values()])
        job_id = request["job"]
        job = self.kept.get(job_id)
        if op == "keep" and job is None and self.current is not None and self.current.job_id == job_id:
            job = self.current
            self.keep(job, request.get("label", ""))
        if job is None:
            return protocol.jobs_reply(request["id"], [])
        if op == "read":
            return protocol.jobs_reply(request["id"], [job.read(now)])
        if op == "forget" and job.result is not None:
            del self.kept[job_id]
        return protocol.jobs_reply(request["id"], [job.status(now)])
