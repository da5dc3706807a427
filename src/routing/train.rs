//! Offline training of the scorer's model: multinomial logistic regression with L2, fitted
//! by full-batch gradient descent with momentum on standardised features. Deterministic: no
//! random initialisation, a fixed iteration count, so the same dev set gives the same weights.

use super::features::{Features, N_FEATURES};
use super::scorer::{softmax, Model};

/// Hyperparameters of a fit.
#[derive(Debug, Clone, Copy)]
pub struct TrainConfig {
    /// L2 penalty on the standardised weights (not the biases).
    pub l2: f64,
    pub iterations: usize,
    pub learning_rate: f64,
    pub momentum: f64,
}

/// The settings the committed weights were trained with.
pub const DEFAULT: TrainConfig = TrainConfig {
    l2: 0.01,
    iterations: 3000,
    learning_rate: 0.3,
    momentum: 0.9,
};

/// Fits a model on feature vectors and tier indices (0 cheap, 1 mid, 2 premium).
pub fn fit(xs: &[Features], ys: &[usize], cfg: &TrainConfig) -> Model {
    let n = xs.len().max(1) as f64;
    let (mean, scale) = standardisation(xs);
    let zs: Vec<Features> = xs
        .iter()
        .map(|x| std::array::from_fn(|j| (x[j] - mean[j]) / scale[j]))
        .collect();
    let mut m = Model::ZERO;
    let mut vel = Model::ZERO;
    for _ in 0..cfg.iterations {
        let mut g = Model::ZERO;
        for (x, &y) in zs.iter().zip(ys) {
            let p = softmax(m.logits(x));
            for (k, pk) in p.iter().enumerate() {
                let e = (pk - f64::from(u8::from(k == y))) / n;
                g.bias[k] += e;
                for (gj, xj) in g.weights[k].iter_mut().zip(x) {
                    *gj += e * xj;
                }
            }
        }
        for k in 0..3 {
            vel.bias[k] = cfg.momentum * vel.bias[k] - cfg.learning_rate * g.bias[k];
            m.bias[k] += vel.bias[k];
            for j in 0..N_FEATURES {
                let grad = g.weights[k][j] + cfg.l2 * m.weights[k][j];
                vel.weights[k][j] = cfg.momentum * vel.weights[k][j] - cfg.learning_rate * grad;
                m.weights[k][j] += vel.weights[k][j];
            }
        }
    }
    unstandardise(&m, &mean, &scale)
}

/// Per-feature mean and standard deviation (1 for a constant feature).
fn standardisation(xs: &[Features]) -> (Features, Features) {
    let n = xs.len().max(1) as f64;
    let mut mean = [0.0; N_FEATURES];
    let mut var = [0.0; N_FEATURES];
    for x in xs {
        for j in 0..N_FEATURES {
            mean[j] += x[j] / n;
        }
    }
    for x in xs {
        for j in 0..N_FEATURES {
            var[j] += (x[j] - mean[j]).powi(2) / n;
        }
    }
    let scale = var.map(|v| if v > 1e-12 { v.sqrt() } else { 1.0 });
    (mean, scale)
}

/// Folds the standardisation into the weights, so request time needs no extra arithmetic.
fn unstandardise(m: &Model, mean: &Features, scale: &Features) -> Model {
    let mut out = m.clone();
    for k in 0..3 {
        for j in 0..N_FEATURES {
            out.weights[k][j] = m.weights[k][j] / scale[j];
            out.bias[k] -= out.weights[k][j] * mean[j];
        }
    }
    out
}

/// Deterministic stratified assignment of examples to `k` folds: each tier's examples are
/// shuffled with a fixed-seed generator and dealt round-robin.
pub fn stratified_folds(ys: &[usize], k: usize, seed: u64) -> Vec<usize> {
    let mut fold = vec![0; ys.len()];
    let mut rng = SplitMix64(seed);
    for tier in 0..3 {
        let mut idx: Vec<usize> = (0..ys.len()).filter(|&i| ys[i] == tier).collect();
        // Fisher–Yates with our own generator, so folds do not change with a crate version.
        for i in (1..idx.len()).rev() {
            let j = (rng.next() % (i as u64 + 1)) as usize;
            idx.swap(i, j);
        }
        for (r, i) in idx.into_iter().enumerate() {
            fold[i] = r % k.max(1);
        }
    }
    fold
}

/// SplitMix64: tiny, well-distributed, and fixed forever.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_separates_a_toy_problem_and_is_deterministic() {
        let mut xs = Vec::new();
        let mut ys = Vec::new();
        for i in 0..30 {
            let mut x = [0.0; N_FEATURES];
            x[0] = (i % 3) as f64 * 10.0 + (i as f64 * 0.1);
            xs.push(x);
            ys.push(i % 3);
        }
        let cfg = TrainConfig {
            iterations: 500,
            ..DEFAULT
        };
        let m = fit(&xs, &ys, &cfg);
        for (x, &y) in xs.iter().zip(&ys) {
            let p = softmax(m.logits(x));
            assert!(p[y] > 0.5, "{p:?} for tier {y}");
        }
        assert_eq!(m, fit(&xs, &ys, &cfg));
    }

    #[test]
    fn folds_are_stratified_and_fixed() {
        let ys: Vec<usize> = (0..30).map(|i| i % 3).collect();
        let f = stratified_folds(&ys, 5, 7);
        assert_eq!(f, stratified_folds(&ys, 5, 7));
        for fold in 0..5 {
            for tier in 0..3 {
                let n = (0..30).filter(|&i| f[i] == fold && ys[i] == tier).count();
                assert_eq!(n, 2);
            }
        }
    }
}
