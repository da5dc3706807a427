//! Offline training of the scorer's model: multinomial logistic regression fitted by
//! Newton's method on standardised features, with a Gaussian prior centred on a hand-set
//! model ([`prior`]) instead of on zero. Deterministic: no random initialisation, a fixed
//! iteration count, so the same dev set gives the same weights; and quick (a few dozen Newton
//! steps over ~50 parameters), so the tests refit it many times even in a debug build.
//!
//! Why a prior: every feature is a kind of demand (code, maths, writing, small talk...) whose
//! direction is known before any data is seen, but in the dev set most of them are carried by
//! one or two benchmarks. Fitted from zero, the model learns those benchmarks (code means
//! premium because SciCode is premium); pulled toward the prior, a weight moves only as far
//! as several sources agree, and a source the model never saw still lands where its
//! features say.

use super::features::{Features, FEATURE_NAMES, N_FEATURES};
use super::scorer::{softmax, Model};

/// Hyperparameters of a fit.
#[derive(Debug, Clone, Copy)]
pub struct TrainConfig {
    /// Strength of the pull toward [`prior`], on standardised weights, per example.
    pub l2: f64,
    /// Newton steps.
    pub iterations: usize,
}

/// The settings the committed weights were trained with.
pub const DEFAULT: TrainConfig = TrainConfig {
    l2: 0.15,
    iterations: 30,
};

/// Hand-set logit weights (cheap, mid, premium) per feature, in raw feature units, and the
/// biases: what each kind of demand says about the tier before any data is seen.
pub fn prior() -> Model {
    let mut m = Model {
        bias: PRIOR_BIAS,
        ..Model::ZERO
    };
    for (j, name) in FEATURE_NAMES.iter().enumerate() {
        if let Some((_, w)) = PRIOR.iter().find(|(n, _)| n == name) {
            for (row, wk) in m.weights.iter_mut().zip(w) {
                row[j] = *wk;
            }
        }
    }
    m
}

const PRIOR_BIAS: [f64; 3] = [0.5, 0.0, -0.5];

const PRIOR: [(&str, [f64; 3]); N_FEATURES] = [
    ("shortness", [1.5, 0.0, 0.0]),
    ("code", [-1.0, 0.6, 0.0]),
    ("maths", [-0.5, 0.0, 0.5]),
    ("advanced_maths", [-0.5, -0.3, 0.8]),
    ("maths_density", [-2.0, 0.0, 3.0]),
    ("science", [-0.3, 0.0, 0.4]),
    ("arithmetic", [-0.5, 0.6, 0.0]),
    ("numbers", [-0.3, 0.2, 0.1]),
    ("writing", [-0.8, 0.6, -0.2]),
    ("constraints", [-0.3, 0.3, 0.0]),
    ("question", [1.0, 0.0, 0.0]),
    ("multiple_choice", [1.5, 0.0, 0.0]),
    ("imperative", [-1.0, 0.4, 0.2]),
    ("small_talk", [4.0, 0.0, -2.0]),
    ("trivial_followup", [4.0, 0.0, -1.0]),
    ("hard_followup", [-0.5, 0.0, 0.5]),
];

/// Parameters per tier: a bias, then one weight per feature.
const P: usize = N_FEATURES + 1;
/// All parameters: three tiers.
const Q: usize = 3 * P;

/// Fits a model on feature vectors and tier indices (0 cheap, 1 mid, 2 premium).
pub fn fit(xs: &[Features], ys: &[usize], cfg: &TrainConfig) -> Model {
    let n = xs.len().max(1) as f64;
    let (mean, scale) = standardisation(xs);
    let zs: Vec<[f64; P]> = xs
        .iter()
        .map(|x| {
            let mut z = [1.0; P];
            for j in 0..N_FEATURES {
                z[j + 1] = (x[j] - mean[j]) / scale[j];
            }
            z
        })
        .collect();
    // The prior in standardised units: w * scale, and the bias absorbs w * mean.
    let p0 = prior();
    let mut theta0 = vec![0.0; Q];
    for k in 0..3 {
        theta0[k * P] = p0.bias[k];
        for j in 0..N_FEATURES {
            theta0[k * P] += p0.weights[k][j] * mean[j];
            theta0[k * P + 1 + j] = p0.weights[k][j] * scale[j];
        }
    }
    let ridge = |i: usize| if i.is_multiple_of(P) { 1e-6 } else { cfg.l2 };
    // Mean negative log-likelihood plus the prior's penalty.
    let loss = |theta: &[f64]| {
        let mut l = 0.0;
        for (z, &y) in zs.iter().zip(ys) {
            let logits: [f64; 3] =
                std::array::from_fn(|k| (0..P).map(|j| theta[k * P + j] * z[j]).sum());
            l -= softmax(logits)[y].max(f64::MIN_POSITIVE).ln() / n;
        }
        l + (0..Q)
            .map(|i| 0.5 * ridge(i) * (theta[i] - theta0[i]).powi(2))
            .sum::<f64>()
    };
    let mut theta = theta0.clone();
    for _ in 0..cfg.iterations {
        let mut grad = vec![0.0; Q];
        let mut hess = vec![0.0; Q * Q];
        for (z, &y) in zs.iter().zip(ys) {
            let mut logits = [0.0; 3];
            for (k, lk) in logits.iter_mut().enumerate() {
                *lk = (0..P).map(|j| theta[k * P + j] * z[j]).sum();
            }
            let p = softmax(logits);
            for k in 0..3 {
                let e = (p[k] - f64::from(u8::from(k == y))) / n;
                for j in 0..P {
                    grad[k * P + j] += e * z[j];
                }
                for l in k..3 {
                    let w = (p[k] * (f64::from(u8::from(k == l)) - p[l])) / n;
                    for a in 0..P {
                        let wa = w * z[a];
                        let row = (k * P + a) * Q + l * P;
                        for b in 0..P {
                            hess[row + b] += wa * z[b];
                        }
                    }
                }
            }
        }
        // Mirror the upper blocks, then add the prior's pull (a tiny one on the biases: the
        // softmax is unchanged by a shift of all three, so they need one).
        for k in 0..3 {
            for l in 0..k {
                for a in 0..P {
                    for b in 0..P {
                        hess[(k * P + a) * Q + l * P + b] = hess[(l * P + b) * Q + k * P + a];
                    }
                }
            }
        }
        for i in 0..Q {
            grad[i] += ridge(i) * (theta[i] - theta0[i]);
            hess[i * Q + i] += ridge(i);
        }
        let Some(step) = solve_spd(&mut hess, &grad) else {
            break;
        };
        // Damped: halve the step until the penalised loss goes down (nearly separable data
        // would make a full Newton step overshoot).
        let before = loss(&theta);
        let mut t = 1.0;
        for _ in 0..30 {
            let next: Vec<f64> = theta.iter().zip(&step).map(|(a, s)| a - t * s).collect();
            if loss(&next) <= before {
                theta = next;
                break;
            }
            t *= 0.5;
        }
    }
    let mut m = Model::ZERO;
    for k in 0..3 {
        m.bias[k] = theta[k * P];
        for j in 0..N_FEATURES {
            m.weights[k][j] = theta[k * P + j + 1];
        }
    }
    unstandardise(&m, &mean, &scale)
}

/// Solves `a x = b` for a symmetric positive definite `a` (row-major, overwritten by its
/// Cholesky factor). `None` if `a` is not positive definite.
fn solve_spd(a: &mut [f64], b: &[f64]) -> Option<Vec<f64>> {
    let n = b.len();
    for j in 0..n {
        let mut d = a[j * n + j];
        for k in 0..j {
            d -= a[j * n + k] * a[j * n + k];
        }
        if d <= 0.0 || !d.is_finite() {
            return None;
        }
        let d = d.sqrt();
        a[j * n + j] = d;
        for i in j + 1..n {
            let mut s = a[i * n + j];
            for k in 0..j {
                s -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = s / d;
        }
    }
    let mut y = b.to_vec();
    for i in 0..n {
        for k in 0..i {
            y[i] -= a[i * n + k] * y[k];
        }
        y[i] /= a[i * n + i];
    }
    for i in (0..n).rev() {
        for k in i + 1..n {
            y[i] -= a[k * n + i] * y[k];
        }
        y[i] /= a[i * n + i];
    }
    Some(y)
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
            l2: 0.001,
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
