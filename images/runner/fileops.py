"""File operations the host asks the runner for (`sandbox_file_ops`).

They run inside the container as the sandbox user, so the kernel enforces
what the code itself is held to: file permissions, the read-only root and
read-only mounts. Every path is walked one component at a time from a
directory descriptor of one of the session's folders (`roots`), each
component opened with O_NOFOLLOW: code that swaps a path between a file and
a symbolic link while the operation runs can make it fail, never make it
act outside the folders. Symbolic links are followed only by reading them
and walking their target again from the top, and only while the target
stays inside the folders.

  host -> runner  {"type": "file", "id": "...", "op": "read"|"write"|"mkdir"|
                   "list"|"delete", "path": "/workspace/a.txt",
                   "roots": [{"path": "/workspace", "writable": true}, ...],
                   "max_bytes": 10485760,            (the largest file read)
                   "max_entries": 20000,             (the most entries listed)
                   "content_base64": "..."}          (write only)
  runner -> host  {"type": "file", "id": "...", "path": "/workspace/a.txt",
                   "content_base64": "..."}           (read)
                   "entry": {...}}                    (write, mkdir, delete:
                                                       the entry acted on)
                   "entries": [{...}, ...]}           (list, sorted by name)
              or  {"type": "file", "id": "...", "error": {"kind": "too_large",
                   "path": "...", "size": 20000000, "max": 10485760}}
                   where an error has, by kind, "size" and "max"
                   (too_large), "max" (list_too_large), "target"
                   (symlink_escape) or "message" (a system error's text)

An entry is {"name", "path", "kind": "file"|"folder"|"symlink"|"other",
"size", "modified" (Unix seconds)}. Error kinds: outside, not_found,
is_folder, not_folder, too_large, read_only, root_folder, symlink_escape,
changed (the path changed while it was walked), permission_denied, no_space,
list_too_large, failed.
"""

import base64
import errno
import os
import stat

# Most symbolic links followed while resolving one path.
MAX_LINKS = 8
DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class FileOpError(Exception):
    def __init__(self, kind, path, **extra):
        super().__init__(kind)
        self.kind = kind
        self.path = path
        self.extra = extra


def handle_file_request(request):
    """The reply to one `file` request."""
    reply = {"type": "file", "id": request.get("id")}
    try:
        reply.update(Operation(request).run())
    except FileOpError as error:
        reply["error"] = dict(error.extra, kind=error.kind, path=error.path)
    except OSError as error:
        path = request.get("path", "")
        message = os.strerror(error.errno) if error.errno else str(error)
        reply["error"] = {"kind": os_error_kind(error), "path": path, "message": message}
    except Exception as error:  # a malformed request must not stop the runner
        reply["error"] = {"kind": "failed", "path": str(request.get("path", "")), "message": str(error)}
    return reply


def os_error_kind(error):
    return {
        errno.ENOENT: "not_found",
        errno.EISDIR: "is_folder",
        errno.ENOTDIR: "not_folder",
        errno.EACCES: "permission_denied",
        errno.EPERM: "permission_denied",
        errno.EROFS: "read_only",
        errno.ELOOP: "changed",
        errno.ENOSPC: "no_space",
        errno.EDQUOT: "no_space",
        errno.EFBIG: "no_space",
        errno.ENXIO: "not_found",
    }.get(error.errno, "failed")


class Walk:
    """Where a path led: the open directory `fd` that holds its last
    component `name` (for a root itself: the root, and `name` None), the
    logical path, and the last component's lstat (None when missing).
    `missing` are the components below `fd` that do not exist yet."""

    def __init__(self, path, fd, name, found, missing):
        self.path = path
        self.fd = fd
        self.name = name
        self.found = found
        self.missing = missing

    def close(self):
        os.close(self.fd)


class Operation:
    def __init__(self, request):
        self.request = request
        self.roots = [(root["path"], bool(root.get("writable"))) for root in request.get("roots") or []]
        self.path = request.get("path", "")

    def run(self):
        op = self.request.get("op")
        if op == "delete":
            return self.delete()
        walk = self.resolve(self.path, follow_last=True)
        try:
            if op == "read":
                return self.read(walk)
            if op == "write":
                return self.write(walk)
            if op == "mkdir":
                return self.mkdir(walk)
            if op == "list":
                return self.list(walk)
            raise FileOpError("failed", self.path, message="unknown file operation %r" % op)
        finally:
            walk.close()

    # ------------------------------------------------------------ resolving

    def root_of(self, path):
        for root, writable in self.roots:
            if path == root or path.startswith(root + "/"):
                return root, writable
        return None, False

    def resolve(self, path, follow_last):
        """Walks `path` from its root, following links inside the roots."""
        hops = 0
        while True:
            root, _ = self.root_of(path)
            if root is None:
                raise FileOpError("outside", path)
            parts = [part for part in path[len(root):].split("/") if part]
            if any(part in (".", "..") for part in parts):
                raise FileOpError("outside", path)
            fd = open_absolute_directory(root)
            if not parts:
                return Walk(root, fd, None, os.fstat(fd), [])
            logical = root
            for index, name in enumerate(parts):
                last = index == len(parts) - 1
                try:
                    info = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    return Walk(path, fd, parts[-1], None, parts[index:])
                except BaseException:
                    os.close(fd)
                    raise
                if stat.S_ISLNK(info.st_mode) and (follow_last or not last):
                    try:
                        target = os.readlink(name, dir_fd=fd)
                    except OSError as error:
                        if error.errno == errno.EINVAL:  # no longer a link
                            raise FileOpError("changed", logical + "/" + name)
                        raise
                    finally:
                        os.close(fd)
                    hops += 1
                    joined = target if target.startswith("/") else logical + "/" + target
                    following = normalize_absolute("/".join([joined] + parts[index + 1:]))
                    if hops > MAX_LINKS or self.root_of(following)[0] is None:
                        raise FileOpError("symlink_escape", logical + "/" + name, target=target)
                    path = following
                    break
                if last:
                    return Walk(path, fd, name, info, [])
                if not stat.S_ISDIR(info.st_mode):
                    os.close(fd)
                    raise FileOpError("not_folder", logical + "/" + name)
                try:
                    inner = os.open(name, DIRECTORY_FLAGS, dir_fd=fd)
                finally:
                    os.close(fd)
                fd = inner
                logical = logical + "/" + name

    def writable(self, path):
        return self.root_of(path)[1]

    # ------------------------------------------------------------ operations

    def read(self, walk):
        if walk.found is None:
            raise FileOpError("not_found", walk.path)
        if walk.name is None or stat.S_ISDIR(walk.found.st_mode):
            raise FileOpError("is_folder", walk.path)
        limit = self.request["max_bytes"]
        fd = os.open(walk.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=walk.fd)
        try:
            info = os.fstat(fd)
            if stat.S_ISDIR(info.st_mode):
                raise FileOpError("is_folder", walk.path)
            if not stat.S_ISREG(info.st_mode):
                raise FileOpError("not_found", walk.path)
            if info.st_size > limit:
                raise FileOpError("too_large", walk.path, size=info.st_size, max=limit)
            data = read_at_most(fd, limit)
            if data is None:  # it grew while being read
                raise FileOpError("too_large", walk.path, size=limit + 1, max=limit)
            return {"path": walk.path, "content_base64": base64.b64encode(data).decode("ascii")}
        finally:
            os.close(fd)

    def write(self, walk):
        if walk.name is None or (walk.found is not None and stat.S_ISDIR(walk.found.st_mode)):
            raise FileOpError("is_folder", walk.path)
        if not self.writable(walk.path):
            raise FileOpError("read_only", walk.path)
        content = base64.b64decode(self.request.get("content_base64") or "")
        parent = self.make_folders(walk, walk.missing[:-1]) if walk.missing else walk.fd
        try:
            flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
            fd = os.open(walk.name, flags, 0o644, dir_fd=parent)
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise FileOpError("not_found", walk.path)
                os.ftruncate(fd, 0)
                view = memoryview(content)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            return {"path": walk.path, "entry": entry_of(walk.path, os.stat(walk.name, dir_fd=parent, follow_symlinks=False))}
        finally:
            if parent != walk.fd:
                os.close(parent)

    def mkdir(self, walk):
        if walk.found is not None:
            if not stat.S_ISDIR(walk.found.st_mode):
                raise FileOpError("not_folder", walk.path)
            return {"path": walk.path, "entry": entry_of(walk.path, walk.found)}
        if not self.writable(walk.path):
            raise FileOpError("read_only", walk.path)
        fd = self.make_folders(walk, walk.missing)
        try:
            return {"path": walk.path, "entry": entry_of(walk.path, os.fstat(fd))}
        finally:
            os.close(fd)

    def make_folders(self, walk, names):
        """Creates `names` below `walk.fd`, one inside the other; returns a
        new descriptor of the deepest (the caller closes it)."""
        fd = os.dup(walk.fd)
        for name in names:
            try:
                try:
                    os.mkdir(name, 0o755, dir_fd=fd)
                except FileExistsError:
                    pass  # made meanwhile; opening it below checks what it is
                inner = os.open(name, DIRECTORY_FLAGS, dir_fd=fd)
            finally:
                os.close(fd)
            fd = inner
        return fd

    def list(self, walk):
        if walk.found is None:
            raise FileOpError("not_found", walk.path)
        if not stat.S_ISDIR(walk.found.st_mode):
            raise FileOpError("not_folder", walk.path)
        limit = self.request["max_entries"]
        fd = os.dup(walk.fd) if walk.name is None else os.open(walk.name, DIRECTORY_FLAGS, dir_fd=walk.fd)
        entries = []
        try:
            with os.scandir(fd) as listing:
                for item in listing:
                    if len(entries) >= limit:
                        raise FileOpError("list_too_large", walk.path, max=limit)
                    try:
                        info = item.stat(follow_symlinks=False)
                    except OSError:
                        continue  # removed meanwhile
                    entries.append(entry_of(walk.path + "/" + item.name, info))
        finally:
            os.close(fd)
        entries.sort(key=lambda entry: entry["name"])
        return {"path": walk.path, "entries": entries}

    def delete(self):
        root, _ = self.root_of(self.path)
        if root is not None and self.path == root:
            raise FileOpError("root_folder", self.path)
        walk = self.resolve(self.path, follow_last=False)
        try:
            if walk.name is None:
                raise FileOpError("root_folder", walk.path)
            if walk.found is None:
                raise FileOpError("not_found", walk.path)
            if not self.writable(walk.path):
                raise FileOpError("read_only", walk.path)
            entry = entry_of(walk.path, walk.found)
            if stat.S_ISDIR(walk.found.st_mode):
                import shutil  # costs milliseconds to import; only delete needs it

                try:
                    shutil.rmtree(walk.name, dir_fd=walk.fd)
                except OSError as error:
                    if error.errno is None:  # "Cannot call rmtree on a symbolic link": swapped meanwhile
                        raise FileOpError("changed", walk.path)
                    raise
            else:
                os.unlink(walk.name, dir_fd=walk.fd)
            return {"path": walk.path, "entry": entry}
        finally:
            walk.close()


def read_at_most(fd, limit):
    """The bytes of the open file `fd` when it holds at most `limit` of
    them; None when it holds more (it may grow while it is read)."""
    chunks, total = [], 0
    while True:
        chunk = os.read(fd, min(1 << 20, limit + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            return None


def open_absolute_directory(path):
    """A descriptor of the folder `path`, every component opened without
    following links."""
    fd = os.open("/", DIRECTORY_FLAGS)
    for name in filter(None, path.split("/")):
        try:
            inner = os.open(name, DIRECTORY_FLAGS, dir_fd=fd)
        finally:
            os.close(fd)
        fd = inner
    return fd


def normalize_absolute(path):
    parts = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/" + "/".join(parts)


def entry_of(path, info):
    mode = info.st_mode
    if stat.S_ISREG(mode):
        kind = "file"
    elif stat.S_ISDIR(mode):
        kind = "folder"
    elif stat.S_ISLNK(mode):
        kind = "symlink"
    else:
        kind = "other"
    return {
        "name": path.rsplit("/", 1)[-1],
        "path": path,
        "kind": kind,
        "size": info.st_size if kind == "file" else 0,
        "modified": int(info.st_mtime),
    }
