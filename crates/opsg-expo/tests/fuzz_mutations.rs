//! Deterministic in-tree fuzzing: thousands of seeded mutations of the fuzz corpus
//! (`fuzz/corpus/parse`, the same seeds cargo-fuzz starts from), run through every entry point
//! in both formats and both modes. Asserts: no panic, every error and diagnostic located inside
//! the input, lenient mode never fails, and the streaming parser (fed through a reader that
//! returns a few bytes at a time) agrees with the whole-buffer parser exactly.

use std::fs;
use std::io::Read;
use std::path::PathBuf;

use opsg_expo::{Format, ParseOptions, Sample, parse, parse_reader, parse_with};

/// xorshift64*: a fixed seed makes every run test the same inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[u8] = b"{}\"\\=,# \n\t\r_:.eE+-0123456789\x00\xff\xc3\xa9";
const TOKENS: &[&[u8]] = &[
    b"# EOF",
    b"# TYPE ",
    b"# HELP ",
    b"# UNIT ",
    b" histogram",
    b" counter",
    b" summary",
    b" info",
    b" stateset",
    b" gaugehistogram",
    b"_bucket{le=\"+Inf\"}",
    b"_total",
    b"_created",
    b"_count",
    b"_sum",
    b"NaN",
    b"+Inf",
    b"-Inf",
    b" # {a=\"b\"} 1",
    b"{quantile=\"0.5\"}",
    b"\\n",
    b"\\\"",
    b"9223372036854775808",
    b"1e308",
    b"\xf0\x9f\x98\x80",
];

fn corpus() -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/parse");
    let mut files: Vec<PathBuf> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files.into_iter().map(|p| fs::read(p).unwrap()).filter(|b| b.len() < 16 * 1024).collect()
}

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut v = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(6) {
        let len = v.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                v[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(len + 1);
                v.insert(i, INTERESTING[rng.below(INTERESTING.len())]);
            }
            2 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below(16.min(len - i));
                v.drain(i..i + n);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below(32.min(len - i));
                let chunk: Vec<u8> = v[i..i + n].to_vec();
                let at = rng.below(len + 1);
                v.splice(at..at, chunk);
            }
            4 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                let at = rng.below(len + 1);
                v.splice(at..at, t.iter().copied());
            }
            5 => {
                let other = &seeds[rng.below(seeds.len())];
                if !other.is_empty() {
                    let i = rng.below(other.len());
                    let at = rng.below(len + 1);
                    v.splice(at..at, other[i..].iter().take(64).copied());
                }
            }
            6 if len > 0 => v.truncate(rng.below(len)),
            _ if len > 0 => {
                let i = rng.below(len);
                v[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            _ => v.push(b'\n'),
        }
    }
    v
}

/// A reader that hands out 1 to 7 bytes per call, to put chunk boundaries everywhere.
struct Dribble<'a> {
    data: &'a [u8],
    rng: Rng,
}

impl Read for Dribble<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (1 + self.rng.below(7)).min(self.data.len()).min(buf.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

fn check(input: &[u8], rng: &mut Rng) {
    let lines = input.split(|&b| b == b'\n').count() as u64;
    let within = |line: u64, col: u64| line >= 1 && line <= lines + 1 && col >= 1;
    for format in [Format::PrometheusText, Format::OpenMetrics] {
        for lenient in [false, true] {
            let opts = ParseOptions { format, lenient, ..Default::default() };
            match parse(input, &opts) {
                Ok(expo) => {
                    for d in &expo.diagnostics {
                        assert!(within(d.line, d.column), "{d} outside {lines} lines: {input:?}");
                    }
                    for s in expo.samples() {
                        assert!(u64::from(s.line) >= 1 && u64::from(s.line) <= lines);
                    }
                }
                Err(e) => {
                    assert!(!lenient, "lenient parse failed: {e}: {input:?}");
                    assert!(within(e.line, e.column), "{e} outside {lines} lines: {input:?}");
                }
            }
            let mut whole: Vec<Sample<'static>> = Vec::new();
            let a = parse_with(input, &opts, |_, s| whole.push(s.into_owned()));
            let mut streamed: Vec<Sample<'static>> = Vec::new();
            let reader = Dribble { data: input, rng: Rng(rng.next() | 1) };
            let b = parse_reader(reader, &opts, |_, s| streamed.push(s.clone().into_owned()));
            match (&a, &b) {
                (Ok(x), Ok(y)) => {
                    // Compare via Debug: NaN values make `==` on samples false.
                    assert_eq!(format!("{whole:?}"), format!("{streamed:?}"), "{input:?}");
                    assert_eq!(format!("{:?}", x.diagnostics), format!("{:?}", y.diagnostics));
                    assert_eq!(x.families, y.families);
                }
                (Err(x), Err(opsg_expo::StreamError::Parse(y))) => assert_eq!(x, y, "{input:?}"),
                _ => panic!("whole {a:?} vs streamed {b:?} for {input:?}"),
            }
        }
    }
}

#[test]
fn corpus_seeds_never_panic() {
    let mut rng = Rng(0x5eed);
    for seed in corpus() {
        check(&seed, &mut rng);
    }
}

#[test]
fn seeded_mutations_never_panic_and_locate_errors() {
    let seeds = corpus();
    assert!(seeds.len() > 200, "corpus present");
    let mut rng = Rng(0x0b5e_55ed_c0ff_ee01);
    for _ in 0..4000 {
        let input = mutate(&mut rng, &seeds);
        check(&input, &mut rng);
    }
}
