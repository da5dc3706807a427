//! Issue 12, item 7, on stable: the `cargo fuzz` targets' corpus (`fuzz/corpus/<target>/`)
//! through the same harness (`fuzz/harness.rs`): every seed as it is, then deterministic
//! mutations of it (bytes flipped, inserted, deleted, ranges duplicated, cut short, two seeds
//! spliced), so CI fuzzes every request decoder and upstream parser without nightly. The long
//! coverage-guided runs are `cargo +nightly fuzz run <target>` (see `scripts/fuzz.sh`).

#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::Path;

/// Mutations per seed: about 5,000 inputs per target, a few seconds for all in a debug build.
const MUTATIONS: usize = 1500;

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Bytes a JSON or SSE parser cares about, so mutations reach past the first syntax check.
const INTERESTING: &[u8] = b"{}[]\":,\\\n\r 0-9eE.tfn\xff\x00";

fn mutate(rng: &mut Rng, seed: &[u8], other: &[u8]) -> Vec<u8> {
    let mut d = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let len = d.len();
        match rng.below(6) {
            0 if len > 0 => {
                let i = rng.below(len);
                d[i] ^= 1 << rng.below(8);
            }
            1 => {
                let b = INTERESTING[rng.below(INTERESTING.len())];
                d.insert(rng.below(len + 1), b);
            }
            2 if len > 0 => {
                let i = rng.below(len);
                let n = rng.below(16).min(len - i);
                d.drain(i..i + n);
            }
            3 if len > 0 => {
                let i = rng.below(len);
                let n = rng.below(64).min(len - i);
                let piece = d[i..i + n].to_vec();
                let at = rng.below(len + 1);
                d.splice(at..at, piece);
            }
            4 => d.truncate(rng.below(len + 1)),
            _ => {
                let cut = rng.below(len + 1);
                let from = rng.below(other.len() + 1);
                d.truncate(cut);
                d.extend_from_slice(&other[from..]);
            }
        }
    }
    d
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read(p).expect("seed"))
        .collect()
}

#[test]
fn every_target_survives_its_corpus_and_its_mutations() {
    for (name, run) in harness::TARGETS {
        let seeds = seeds(name);
        assert!(!seeds.is_empty(), "{name}: no seed");
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ name.len() as u64);
        let mut inputs = 0;
        for (i, seed) in seeds.iter().enumerate() {
            run(seed);
            let other = &seeds[(i + 1) % seeds.len()];
            for _ in 0..MUTATIONS {
                let input = mutate(&mut rng, seed, other);
                if std::panic::catch_unwind(|| run(&input)).is_err() {
                    panic!("{name} panicked on {:?}", String::from_utf8_lossy(&input));
                }
                inputs += 1;
            }
        }
        eprintln!("{name}: {} seeds, {inputs} mutated inputs", seeds.len());
    }
}
