//! Redaction of secrets-looking tokens in log lines (and command lines) before anything is stored
//! or put into a record.
//!
//! Hand-written scanning, no regex engine: each rule is a small, linear pass over the line. The
//! rules err on the side of redacting (a request id that looks like a key is lost; a leaked key
//! is not). Covered:
//! - `Bearer <token>` / `Basic <token>` (any case), and `Authorization: <scheme> <token>`;
//! - `key=value`, `key: value`, `"key": "value"` and `--key value` for secret-ish keys
//!   (`password`, `passwd`, `secret`, `token`, `api_key`/`api-key`/`apikey`, `access_key`,
//!   `secret_key`, `private_key`, `client_secret`, `credentials`, …, also as suffixes such as
//!   `hf_token` or `AWS_SECRET_ACCESS_KEY`);
//! - credentials in URLs (`https://user:pass@host`);
//! - well-known key shapes: OpenAI `sk-…`, Hugging Face `hf_…`, AWS `AKIA…`/`ASIA…`, GitHub
//!   `ghp_…`/`github_pat_…`, GitLab `glpat-…`, Slack `xox?-…`;
//! - long opaque tokens: 32+ hex digits, or 32+ base64/base64url characters mixing upper case,
//!   lower case and digits with high entropy (JWT segments, random keys).

/// What a redacted value is replaced with.
pub const REDACTED: &str = "[REDACTED]";

/// Keys whose value is a secret. Matched case-insensitively, also as the end of a longer key
/// (`hf_token`, `OPENAI_API_KEY`), but not when followed by more name characters (`tokens=`).
const SECRET_KEYS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "api-key",
    "apikey",
    "access_key",
    "access-key",
    "secret_key",
    "secret-key",
    "private_key",
    "private-key",
    "client_secret",
    "credentials",
    "authorization",
    "auth",
];

/// Prefixes of well-known credential formats and the minimum length of what follows.
const KEY_PREFIXES: &[(&str, usize)] = &[
    ("sk-", 16),
    ("hf_", 20),
    ("ghp_", 20),
    ("gho_", 20),
    ("github_pat_", 20),
    ("glpat-", 16),
    ("xoxb-", 10),
    ("xoxp-", 10),
    ("xoxa-", 10),
    ("AKIA", 16),
    ("ASIA", 16),
];

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+' | '/' | '=' | '.' | '~')
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// Redact every secrets-looking token in `line`.
pub fn redact_line(line: &str) -> String {
    let step1 = redact_url_credentials(line);
    let step2 = redact_schemes(&step1);
    let step3 = redact_keyed(&step2);
    redact_opaque(&step3)
}

/// `scheme://user:password@host` -> `scheme://user:[REDACTED]@host`.
fn redact_url_credentials(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(pos) = rest.find("://") {
        let (head, tail) = rest.split_at(pos + 3);
        out.push_str(head);
        let authority_end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        let authority = &tail[..authority_end];
        match authority.rfind('@') {
            Some(at) if authority[..at].contains(':') => {
                let colon = authority[..at].find(':').unwrap_or(at);
                out.push_str(&authority[..colon + 1]);
                out.push_str(REDACTED);
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[authority_end..];
    }
    out.push_str(rest);
    out
}

/// `Bearer <token>` and `Basic <token>` (HTTP authorization schemes), any case.
fn redact_schemes(line: &str) -> String {
    let lower = line.to_ascii_lowercase();
    let mut out = String::with_capacity(line.len());
    let mut i = 0;
    while i < line.len() {
        let found = ["bearer ", "basic "]
            .iter()
            .filter_map(|s| lower[i..].find(s).map(|p| (i + p, s.len())))
            .min();
        let Some((start, len)) = found else { break };
        let boundary = start == 0 || !line[..start].ends_with(|c: char| c.is_ascii_alphanumeric());
        let value_start = start + len;
        let value_start =
            value_start + (line.len() - value_start - line[value_start..].trim_start().len());
        let value_len = line[value_start..]
            .find(|c: char| !is_token_char(c))
            .unwrap_or(line.len() - value_start);
        out.push_str(&line[i..value_start]);
        // A word shorter than 8 characters is prose ("basic setup"), not a credential.
        if boundary && value_len >= 8 {
            out.push_str(REDACTED);
        } else {
            out.push_str(&line[value_start..value_start + value_len]);
        }
        i = value_start + value_len;
    }
    out.push_str(&line[i.min(line.len())..]);
    out
}

/// `key=value`, `key: value`, `"key": "value"`, `--key value` for [`SECRET_KEYS`].
fn redact_keyed(line: &str) -> String {
    let lower = line.to_ascii_lowercase();
    let bytes = line.as_bytes();
    let mut out = String::with_capacity(line.len());
    let mut copied = 0;
    let mut i = 0;
    while i < line.len() {
        let hit = SECRET_KEYS
            .iter()
            .filter_map(|k| lower[i..].find(k).map(|p| (i + p, k.len())))
            .min_by_key(|&(p, l)| (p, usize::MAX - l));
        let Some((key_start, key_len)) = hit else { break };
        let key_end = key_start + key_len;
        i = key_end;
        // The key must end the name: `tokens=` or `secretary` are not secrets.
        if line[key_end..].starts_with(is_name_char) {
            continue;
        }
        let mut j = key_end;
        // Optional closing quote of a JSON/YAML key.
        if matches!(bytes.get(j), Some(b'"') | Some(b'\'')) {
            j += 1;
        }
        let spaces =
            |j: usize| j + (line[j..].len() - line[j..].trim_start_matches([' ', '\t']).len());
        let word_start = line[..key_start]
            .rfind(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '=' | ','))
            .map_or(0, |p| p + 1);
        let flag = line[word_start..key_start].starts_with("--");
        let after_ws = spaces(j);
        let value_start = match bytes.get(after_ws) {
            Some(b'=') | Some(b':') => spaces(after_ws + 1),
            // `--api-key sk-…` (a command-line flag followed by its value).
            _ if flag && after_ws > j => after_ws,
            _ => continue,
        };
        if line[value_start..].starts_with(REDACTED) {
            i = value_start + REDACTED.len();
            continue;
        }
        let mut v = value_start;
        // `'api_key': ['sk-…']` (a Python list repr in vLLM's "non-default args" line).
        if bytes.get(v) == Some(&b'[') {
            v += 1;
        }
        let quote = match bytes.get(v) {
            Some(&q @ (b'"' | b'\'')) => {
                v += 1;
                Some(q as char)
            }
            _ => None,
        };
        let end_of = |from: usize| -> usize {
            let stop = |c: char| match quote {
                Some(q) => c == q,
                None => {
                    c.is_whitespace() || matches!(c, ',' | ';' | '&' | '}' | ')' | ']' | '"' | '\'')
                }
            };
            from + line[from..].find(stop).unwrap_or(line.len() - from)
        };
        let mut value_end = end_of(v);
        // `Authorization: Bearer xyz` keeps the scheme and redacts what follows.
        let word = &line[v..value_end];
        if quote.is_none()
            && ["bearer", "basic", "token"].contains(&word.to_ascii_lowercase().as_str())
        {
            let next = spaces(value_end);
            if next > value_end {
                v = next;
                value_end = end_of(v);
            }
        }
        if value_end > v && !line[v..].starts_with(REDACTED) {
            out.push_str(&line[copied..v]);
            out.push_str(REDACTED);
            copied = value_end;
        }
        i = value_end.max(i);
    }
    out.push_str(&line[copied..]);
    out
}

/// Shannon entropy in bits per character.
fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 128];
    let mut n = 0u32;
    for b in s.bytes().filter(u8::is_ascii) {
        counts[b as usize] += 1;
        n += 1;
    }
    if n == 0 {
        return 0.0;
    }
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / f64::from(n);
            -p * p.log2()
        })
        .sum()
}

fn looks_opaque(word: &str) -> bool {
    if word == REDACTED {
        return false;
    }
    if let Some(&(prefix, min)) = KEY_PREFIXES.iter().find(|(p, _)| word.starts_with(p)) {
        let rest = &word[prefix.len()..];
        if rest.len() >= min
            && rest.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return true;
        }
    }
    // Long hex: API keys, session ids, HMACs.
    let hex = word.chars().filter(char::is_ascii_hexdigit).count();
    if hex >= 32 && hex == word.len() && word.chars().any(|c| c.is_ascii_digit()) {
        return true;
    }
    // Base64/base64url runs mixing classes with high entropy. Paths (`/usr/lib/python3`) and
    // identifiers rarely mix upper, lower and digits this densely; random keys almost always do.
    word.len() >= 32
        && word.chars().any(|c| c.is_ascii_uppercase())
        && word.chars().any(|c| c.is_ascii_lowercase())
        && word.chars().filter(char::is_ascii_digit).count() >= 2
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=' | '_' | '-'))
        && word.matches('/').count() <= 2
        && entropy(word) >= 4.0
}

/// Redact opaque tokens: maximal runs of token characters, split further at `.` so a JWT's
/// segments (or `key.value` pairs) are judged one by one.
fn redact_opaque(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while !rest.is_empty() {
        let start = rest.find(|c: char| c.is_ascii_alphanumeric()).unwrap_or(rest.len());
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let len = rest.find(|c: char| !(is_token_char(c) && c != '.')).unwrap_or(rest.len());
        let word = &rest[..len];
        if looks_opaque(word) {
            out.push_str(REDACTED);
        } else {
            out.push_str(word);
        }
        rest = &rest[len..];
        if rest.starts_with(|c: char| !c.is_ascii_alphanumeric()) {
            let skip = rest.chars().next().map_or(0, char::len_utf8);
            out.push_str(&rest[..skip]);
            rest = &rest[skip..];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn redacts(line: &str, secret: &str) {
        let out = redact_line(line);
        assert!(!out.contains(secret), "`{secret}` survived in `{out}`");
        assert!(out.contains(REDACTED), "nothing redacted in `{out}`");
    }

    #[track_caller]
    fn keeps(line: &str) {
        assert_eq!(redact_line(line), line);
    }

    #[test]
    fn bearer_and_basic_tokens() {
        redacts("GET /v1/models Authorization: Bearer abcDEF123456ghiJKL", "abcDEF123456ghiJKL");
        redacts("curl -H 'authorization: bearer tok_live_5f2a91c3'", "tok_live_5f2a91c3");
        redacts("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA");
    }

    #[test]
    fn key_value_forms() {
        redacts("connecting with password=hunter2!x to db", "hunter2!x");
        redacts("api_key=AbC123", "AbC123");
        redacts("{\"api_key\": \"s3cr3t-value\", \"model\": \"llama\"}", "s3cr3t-value");
        redacts("HF_TOKEN=abcdefgh12345678", "abcdefgh12345678");
        redacts("export OPENAI_API_KEY='xyz-123-abc'", "xyz-123-abc");
        redacts("token: 0123abcd", "0123abcd");
        redacts(
            "vllm serve meta-llama/Llama-3.1-8B --api-key my-local-key --port 8000",
            "my-local-key",
        );
        redacts("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI");
        // The rest of the line survives.
        let out = redact_line("user=alice password=hunter2 host=db1");
        assert_eq!(out, "user=alice password=[REDACTED] host=db1");
    }

    #[test]
    fn well_known_key_shapes() {
        redacts("using key sk-proj-AbCdEfGhIjKlMnOpQrStUv", "AbCdEfGhIjKlMnOpQrStUv");
        redacts("downloading with hf_AbCdEfGhIjKlMnOpQrStUvWx", "hf_AbCdEfGhIjKlMnOpQrStUvWx");
        redacts("aws key AKIAIOSFODNN7EXAMPLE in env", "AKIAIOSFODNN7EXAMPLE");
        redacts("ghp_0123456789abcdefABCDEF0123456789abcd leaked", "ghp_0123456789abcdef");
    }

    #[test]
    fn opaque_tokens() {
        redacts(
            "session 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 ok",
            "9f86d081884c7d65",
        );
        redacts(
            "jwt eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        );
    }

    #[test]
    fn url_credentials() {
        let out = redact_line("pulling from https://deploy:s3cret@registry.example.com/v2/");
        assert_eq!(out, "pulling from https://deploy:[REDACTED]@registry.example.com/v2/");
    }

    #[test]
    fn ordinary_log_lines_survive() {
        keeps(
            "INFO 05-01 12:00:00 metrics.py:341] Avg prompt throughput: 512.3 tokens/s, Running: 12 reqs",
        );
        keeps("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB");
        keeps("max_num_batched_tokens=8192 max_tokens=256 gpu_memory_utilization=0.9");
        keeps(
            "File \"/usr/lib/python3/dist-packages/vllm/v1/engine/core.py\", line 512, in run_engine_core",
        );
        keeps("NVRM: Xid (PCI:0000:3b:00): 79, pid=1234, GPU has fallen off the bus.");
        keeps("model=/models/meta-llama--Llama-3.1-8B-Instruct tokenizer_mode=auto");
        keeps("we use basic setup here");
        keeps("request cmpl-1234 finished");
        keeps("déjà vu: non-ASCII stays intact ✓");
    }

    #[test]
    fn redaction_is_idempotent() {
        // Regression: the scheme rule and the `authorization` key rule both fired, and the second
        // redacted the first's placeholder up to its `]`, leaving `[REDACTED]]`.
        let header = redact_line("Authorization: Bearer abcdefghijklmnop");
        assert_eq!(header, "Authorization: Bearer [REDACTED]");
        let once = redact_line("password=hunter2 Bearer abcdefghijklmnop sk-AbCdEfGhIjKlMnOpQrSt");
        assert_eq!(redact_line(&once), once);
    }

    #[test]
    fn arbitrary_text_never_panics_and_never_grows_a_secret() {
        // A deterministic xorshift walk over an alphabet of separators, key fragments and
        // multi-byte characters: slicing at a non-boundary would panic here.
        let alphabet = [
            "=",
            ":",
            " ",
            "\"",
            "'",
            "[",
            "]",
            "--",
            "Bearer ",
            "basic ",
            "token",
            "password",
            "api-key",
            "sk-",
            "hf_",
            "AKIA",
            "://",
            "@",
            "é",
            "✓",
            "A",
            "z",
            "9",
            "/",
            "+",
            "-",
            "_",
            ".",
            "\t",
            "[REDACTED]",
        ];
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            let mut line = String::new();
            for _ in 0..(state % 40) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                line.push_str(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            let once = redact_line(&line);
            assert_eq!(redact_line(&once), once, "not idempotent on `{line}`");
        }
    }
}
