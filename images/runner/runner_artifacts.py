"""Collecting a request's outputs: the files the program wrote to the
outputs folder (`collect_outputs` of a run request), images with their
bytes."""

import os

IMAGE_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".svg": "image/svg+xml",
}
MAX_OUTPUTS_SCANNED = 10000


def collect_artifacts(spec, since_ns):
    """Files written to `spec["dir"]` since `since_ns`: images with
    their bytes (base64) up to the caps, everything else listed. Links and
    special files are skipped (opened without following links and without
    blocking), and at most MAX_OUTPUTS_SCANNED entries are looked at."""
    import base64
    import stat

    folder = spec["dir"]
    max_files = spec["max_files"]
    max_bytes = spec["max_bytes"]
    found, scanned = [], 0
    for directory, _, names in os.walk(folder):
        for name in names:
            scanned += 1
            if scanned > MAX_OUTPUTS_SCANNED:
                break
            path = os.path.join(directory, name)
            try:
                info = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode) and info.st_mtime_ns >= since_ns:
                found.append((path, info.st_size))
        if scanned > MAX_OUTPUTS_SCANNED:
            break
    found.sort()
    artifacts, used, omitted = [], 0, max(0, len(found) - max_files)
    for path, size in found[:max_files]:
        mime = IMAGE_TYPES.get(os.path.splitext(path)[1].lower())
        entry = {"path": path, "size": size, "mime": mime or "application/octet-stream"}
        if mime and used + size <= max_bytes:
            data = read_regular_file(path, max_bytes - used)
            if data is not None:
                entry["data_base64"] = base64.b64encode(data).decode("ascii")
                used += len(data)
        artifacts.append(entry)
    return artifacts, omitted


def read_regular_file(path, limit):
    """The bytes of a regular file if it holds at most `limit` bytes, else
    None. Never follows a link, never blocks on a FIFO."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        from fileops import read_at_most

        return read_at_most(fd, limit)
    except OSError:
        return None
    finally:
        os.close(fd)
