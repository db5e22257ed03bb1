//! Fuzzer for the decode path (inputs -> decode -> preprocess), on stable Rust without
//! libFuzzer: mutates seed files (bit flips, magic values, truncations, splices, big
//! integers where sizes live) and feeds them to `decode_bytes` + `preprocess` under
//! `catch_unwind`. A panic, or an input slower than the limit, is saved for a regression test.
//!
//!   cargo run --release --example fuzz_decode -- SECONDS OUT_DIR SEED_FILE...
//!
//! Prints inputs tried, errors (expected), panics and slow inputs; exits 1 on any panic.

use anyhow::{bail, Result};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use whyxray::image::{decode_bytes_with, preprocess, DecodeOptions};
use whyxray::model::config::{Interpolation, PreprocessConfig, ResizeMode};

const SLOW: Duration = Duration::from_secs(1);
/// A 16-megapixel budget: big enough for every seed, small enough that a mutated header that
/// declares a huge (but allowed) image costs milliseconds, not seconds, per input.
const MAX_PIXELS: u64 = 16_000_000;

/// SplitMix64: small, seeded, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn mutate(seed: &[u8], others: &[Vec<u8>], rng: &mut Rng) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..1 + rng.below(8) {
        if b.is_empty() {
            break;
        }
        let at = rng.below(b.len());
        match rng.below(7) {
            0 => b[at] ^= 1 << rng.below(8),
            1 => b[at] = [0, 0xff, 0x7f, 0x80, 1][rng.below(5)],
            2 => b.truncate(at),
            3 => {
                // A big value where a size or count may be stored.
                let v = [0xffff_ffffu32, 0x7fff_ffff, 0xffff, 0x1_0000, 0][rng.below(5)];
                let end = (at + 4).min(b.len());
                let bytes = v.to_le_bytes();
                b[at..end].copy_from_slice(&bytes[..end - at]);
            }
            4 => {
                let n = rng.below(64).min(b.len() - at);
                let chunk = b[at..at + n].to_vec();
                b.splice(at..at, chunk);
            }
            5 => {
                let other = &others[rng.below(others.len())];
                let from = rng.below(other.len());
                let n = rng.below(256).min(other.len() - from);
                b.splice(at..at, other[from..from + n].iter().copied());
            }
            _ => {
                let n = rng.below(32).min(b.len() - at);
                b.drain(at..at + n);
            }
        }
    }
    b
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [secs, out, seeds @ ..] = args.as_slice() else {
        bail!("usage: fuzz_decode SECONDS OUT_DIR SEED_FILE...");
    };
    if seeds.is_empty() {
        bail!("give at least one seed file");
    }
    let (limit, out) = (Duration::from_secs(secs.parse()?), PathBuf::from(out));
    std::fs::create_dir_all(&out)?;
    let seeds: Vec<Vec<u8>> = seeds.iter().map(std::fs::read).collect::<Result<_, _>>()?;
    let pp = PreprocessConfig {
        size: 224,
        mean: [0.5; 3],
        std: [0.5; 3],
        interpolation: Interpolation::Bicubic,
        resize_mode: ResizeMode::Shortest,
    };
    std::panic::set_hook(Box::new(|_| {})); // counted below, not printed per input
    let mut rng = Rng(0x5eed);
    let (mut tried, mut errors, mut panics, mut slow) = (0u64, 0u64, 0u64, 0u64);
    let (start, mut slowest) = (Instant::now(), Duration::ZERO);
    while start.elapsed() < limit {
        let input = mutate(&seeds[rng.below(seeds.len())], &seeds, &mut rng);
        let t = Instant::now();
        let result = std::panic::catch_unwind(|| {
            let opts = DecodeOptions {
                max_pixels: MAX_PIXELS,
                ..DecodeOptions::default()
            };
            decode_bytes_with(&input, &opts).map(|d| preprocess(&d, &pp).len())
        });
        let took = t.elapsed();
        slowest = slowest.max(took);
        tried += 1;
        match result {
            Ok(Ok(_)) => {}
            Ok(Err(_)) => errors += 1,
            Err(_) => {
                panics += 1;
                save(&out, "panic", tried, &input)?;
            }
        }
        if took > SLOW {
            slow += 1;
            save(&out, "slow", tried, &input)?;
        }
    }
    println!(
        "{tried} inputs in {:.0} s: {errors} decode errors, {panics} panics, {slow} slower than {} s (slowest {:.2} s)",
        start.elapsed().as_secs_f64(),
        SLOW.as_secs(),
        slowest.as_secs_f64()
    );
    if panics > 0 {
        std::process::exit(1);
    }
    Ok(())
}

fn save(dir: &Path, kind: &str, n: u64, bytes: &[u8]) -> Result<()> {
    Ok(std::fs::write(dir.join(format!("{kind}-{n}.bin")), bytes)?)
}
