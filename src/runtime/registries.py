"""Finds the package registries a package manager in this image is
configured to use, for the egress proxy to grant to an install (issue #14):
run inside the install container before the install, with nothing of the
model's in it. Everything comes from the package manager's own
configuration (or, where there is none, the defaults the manager itself
reports); no registry is named here.

Usage: registries.py pip|npm|cargo|go|apt
       registries.py cargo-download INDEX_URL   (once the index is reachable)

Prints one line per finding, for the server (src/runtime/registries.rs):
  host HOST PORT WHERE...   a host the install may reach, and where it was found
  config URL                a sparse cargo index: its config.json names the
                            download host (asked with cargo-download once the
                            index host is granted)
  problem TEXT              something that could not be read
Exits 0 even when nothing is found (the server says what to check).
"""

import glob
import json
import os
import re
import subprocess
import sys
import urllib.parse
import urllib.request

# Long enough for a package manager to start, short enough to fail an
# install quickly when one hangs.
TIMEOUT = 60


def say(*words):
    print(" ".join(str(word) for word in words), flush=True)


def problem(text):
    say("problem", " ".join(str(text).split()))


def url_host(url, where):
    """Prints the host and port of an http(s) URL (a `sparse+`, `mirror+`
    or similar method prefix is dropped)."""
    url = url.strip().strip("'\"")
    url = re.sub(r"^[a-z]+\+(?=[a-z]+://)", "", url)
    try:
        parts = urllib.parse.urlsplit(url)
        port = parts.port
    except ValueError as error:
        problem("%s: unreadable URL %r (%s)" % (where, url, error))
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    say("host", parts.hostname.lower(), port, where)
    return True


def system_env(changes=None):
    """The environment the package managers are asked in: the image's, less
    what an earlier install could have put before the system's own tools
    (the packages folders on PATH; PYTHONPATH, NODE_PATH, NODE_OPTIONS and
    the loader's variables), which would let an installed package answer
    for its package manager. `changes`: names to set (a value) or drop (None)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PYTHON") and key not in ("NODE_PATH", "NODE_OPTIONS", "LD_PRELOAD", "LD_LIBRARY_PATH")
    }
    env["PATH"] = ":".join(
        entry for entry in os.environ.get("PATH", "").split(":") if entry and not entry.startswith("/packages")
    )
    for key, value in (changes or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run(argv, changes=None):
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=TIMEOUT, env=system_env(changes), cwd="/tmp"
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        problem("%s: %s" % (" ".join(argv), error))
        return None
    return done


def pip():
    # This interpreter (the image's, named by its full path), ignoring
    # PYTHONPATH and user site folders, so pip is the image's own.
    done = run([sys.executable, "-E", "-s", "-m", "pip", "config", "list"])
    if done is None or done.returncode != 0:
        problem("pip config list failed: %s" % (done.stderr.strip() if done else ""))
        return
    index_urls = []
    default = None
    try:
        from pip._internal.models.index import PyPI  # pip's own defaults

        default = PyPI
    except Exception as error:  # noqa: BLE001 (any failure: say it)
        problem("pip's default index is unreadable: %r" % error)
    for line in done.stdout.splitlines():
        key, _, value = line.partition("=")
        name = key.rsplit(".", 1)[-1]
        if name not in ("index-url", "extra-index-url", "find-links"):
            continue
        try:
            import ast

            value = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            pass
        for url in str(value).split():
            url_host(url, "pip " + key)
            if name == "index-url":
                index_urls.append(url.rstrip("/"))
    # pip's default index is used when no index-url is set, or names it;
    # its files are served from a host of their own.
    if default is not None and (not index_urls or default.simple_url.rstrip("/") in index_urls):
        url_host(default.simple_url, "pip default index")
        say("host", default.file_storage_domain, 443, "pip default file host")


def npm():
    done = run(["npm", "config", "list", "--json"])
    if done is None or done.returncode != 0:
        problem("npm config list failed: %s" % (done.stderr.strip() if done else ""))
        return
    try:
        config = json.loads(done.stdout)
    except ValueError as error:
        problem("npm config list printed no JSON: %s" % error)
        return
    for key, value in sorted(config.items()):
        if (key == "registry" or re.fullmatch(r"@[^:]+:registry", key)) and isinstance(value, str):
            url_host(value, "npm " + key)


def cargo():
    """Cargo's registry (its source replacement, or its default), as cargo
    itself names it when it cannot reach it: a probe project with one
    dependency, its proxy pointed at a closed local port, so nothing leaves."""
    probe = "/tmp/registry-probe"
    os.makedirs(os.path.join(probe, "src"), exist_ok=True)
    with open(os.path.join(probe, "Cargo.toml"), "w") as handle:
        handle.write('[package]\nname = "probe"\nversion = "0.1.0"\nedition = "2021"\n\n'
                     '[dependencies]\nregistry-probe-dependency = "1"\n')
    open(os.path.join(probe, "src", "lib.rs"), "w").close()
    # As images/rust/cargo-install.sh runs cargo.
    changes = {
        "CARGO_HOME": "/tmp/cargo-home",
        "CARGO_TERM_COLOR": "never",
        "CARGO_HTTP_PROXY": "http://127.0.0.1:9",
        "CARGO_NET_RETRY": "0",
        "CARGO_NET_OFFLINE": "false",
    }
    done = run(["cargo", "generate-lockfile", "--manifest-path", os.path.join(probe, "Cargo.toml")], changes)
    if done is None:
        return
    text = done.stdout + done.stderr
    urls = re.findall(r"`([a-z+]+://[^`\s]+)`", text)
    if not urls:
        problem("cargo named no registry URL: %s" % text.strip()[-600:])
    for url in dict.fromkeys(urls):
        if url.endswith("/config.json"):
            say("config", url[: -len("config.json")])
        url_host(url, "cargo registry index")


def cargo_download(index):
    """The download host of the sparse index at INDEX (its config.json's
    `dl`), fetched through the proxy like cargo does."""
    try:
        with urllib.request.urlopen(index.rstrip("/") + "/config.json", timeout=TIMEOUT) as response:
            config = json.load(response)
    except Exception as error:  # noqa: BLE001 (any failure: say it)
        problem("the cargo index's config.json is unreadable: %s" % error)
        return
    for key in ("dl",):
        if isinstance(config.get(key), str):
            url_host(config[key], "cargo index config.json " + key)


def go():
    # As images/go/go-install.sh runs go: without the image's GOPROXY=off.
    done = run(["go", "env", "GOPROXY", "GOSUMDB"], {"GOPROXY": None, "GOFLAGS": None})
    if done is None or done.returncode != 0:
        problem("go env failed: %s" % (done.stderr.strip() if done else ""))
        return
    lines = done.stdout.splitlines() + ["", ""]
    proxy, sumdb = lines[0].strip(), lines[1].strip()
    for entry in re.split(r"[,|]", proxy):
        entry = entry.strip()
        if entry and entry not in ("direct", "off"):
            url_host(entry if "://" in entry else "https://" + entry, "go GOPROXY")
    words = sumdb.split()
    if words and words[0] != "off":
        if len(words) > 1:
            url_host(words[1] if "://" in words[1] else "https://" + words[1], "go GOSUMDB")
        else:
            name = words[0].split("+", 1)[0]
            url_host("https://" + name, "go GOSUMDB")


def apt():
    files = ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*.list"))
    for path in files:
        try:
            lines = open(path, encoding="utf-8", errors="replace").read().splitlines()
        except FileNotFoundError:
            continue
        except OSError as error:
            problem("%s: %s" % (path, error))
            continue
        for line in lines:
            line = line.split("#", 1)[0]
            line = re.sub(r"\[[^\]]*\]", " ", line)
            words = line.split()
            if len(words) >= 2 and words[0] in ("deb", "deb-src"):
                url_host(words[1], "apt " + path)
    for path in sorted(glob.glob("/etc/apt/sources.list.d/*.sources")):
        try:
            text = open(path, encoding="utf-8", errors="replace").read()
        except OSError as error:
            problem("%s: %s" % (path, error))
            continue
        for stanza in re.split(r"\n\s*\n", text):
            fields = {}
            last = None
            for line in stanza.splitlines():
                if line.startswith("#"):
                    continue
                if line[:1] in (" ", "\t") and last:
                    fields[last] += " " + line.strip()
                    continue
                key, colon, value = line.partition(":")
                if colon:
                    last = key.strip().lower()
                    fields[last] = value.strip()
            if fields.get("enabled", "yes").lower() == "no":
                continue
            for url in fields.get("uris", "").split():
                url_host(url, "apt " + path)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "cargo-download":
        cargo_download(sys.argv[2])
        return
    managers = {"pip": pip, "npm": npm, "cargo": cargo, "go": go, "apt": apt}
    if len(sys.argv) != 2 or sys.argv[1] not in managers:
        problem("usage: registries.py %s|cargo-download URL" % "|".join(managers))
        return
    managers[sys.argv[1]]()


if __name__ == "__main__":
    main()
