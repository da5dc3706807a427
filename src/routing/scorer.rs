//! The complexity scorer: a pure function from a request to a score in [0, 1], the signals
//! that produced it, and (with the configured thresholds) a tier. A first honest heuristic:
//! weighted signals for length, code, mathematics, multi-step and design language, tools and
//! requested output size, plus a nudge from a hard earlier turn.

use crate::api::{ChatRequest, Role};

/// One named contribution to the score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Signal {
    pub name: &'static str,
    pub weight: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    pub value: f64,
    pub signals: Vec<Signal>,
}

const MATH_WORDS: &[&str] = &[
    "prove",
    "proof",
    "theorem",
    "lemma",
    "integral",
    "derivative",
    "equation",
    "probability",
    "matrix",
    "polynomial",
    "prime",
    "modulo",
    "combinatori",
    "eigen",
    "\\frac",
    "\\sum",
    "\\int",
    "$$",
];
const STEP_WORDS: &[&str] = &[
    "step by step",
    "first,",
    "then ",
    "finally",
    "must ",
    "ensure",
    "constraint",
    "at least",
    "at most",
    "without using",
    "explain why",
    "justify",
    "show your work",
    "compare",
];
const DESIGN_WORDS: &[&str] = &[
    "architecture",
    "design",
    "scalab",
    "distributed",
    "trade-off",
    "tradeoff",
    "refactor",
    "concurren",
    "algorithm",
    "complexity",
    "optimi",
    "implement",
];
const CODE_MARKERS: &[&str] = &[
    "```", "fn ", "def ", "class ", "=>", "();", "#include", "select ", "import ",
];

fn count_any(text: &str, needles: &[&str]) -> usize {
    needles.iter().filter(|n| text.contains(*n)).count()
}

/// Scores a request. Cheap to run: one lowercase copy of the last user turn and a few scans.
pub fn score(req: &ChatRequest) -> Score {
    let last_user = req
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map(|m| m.text().to_lowercase())
        .unwrap_or_default();
    let total_chars: usize = req.messages.iter().map(|m| m.text().len()).sum();
    let mut signals = Vec::new();
    let mut add = |name: &'static str, weight: f64| {
        if weight > 0.0 {
            signals.push(Signal { name, weight });
        }
    };
    add("length", (last_user.len() as f64 / 2000.0).min(1.0) * 0.25);
    add("context", (total_chars as f64 / 20000.0).min(1.0) * 0.10);
    add(
        "code",
        (count_any(&last_user, CODE_MARKERS) as f64 / 2.0).min(1.0) * 0.20,
    );
    add(
        "math",
        (count_any(&last_user, MATH_WORDS) as f64 / 2.0).min(1.0) * 0.35,
    );
    add(
        "steps",
        (count_any(&last_user, STEP_WORDS) as f64 / 3.0).min(1.0) * 0.15,
    );
    add(
        "design",
        (count_any(&last_user, DESIGN_WORDS) as f64 / 3.0).min(1.0) * 0.20,
    );
    let tools = req.tools.as_ref().map_or(0, Vec::len);
    add("tools", (tools as f64 / 4.0).min(1.0) * 0.10);
    add(
        "json_output",
        if req.response_format.is_some() {
            0.05
        } else {
            0.0
        },
    );
    let max_out = req.max_output_tokens().unwrap_or(0);
    add("output_size", (f64::from(max_out) / 8000.0).min(1.0) * 0.10);
    let value = signals.iter().map(|s| s.weight).sum::<f64>().min(1.0);
    signals.sort_by(|a, b| b.weight.total_cmp(&a.weight));
    Score { value, signals }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(text: &str) -> ChatRequest {
        serde_json::from_value(serde_json::json!({"messages": [{"role": "user", "content": text}]}))
            .expect("valid request")
    }

    #[test]
    fn greeting_scores_low_and_proof_scores_high() {
        let hi = score(&req("hi there!"));
        assert!(hi.value < 0.1, "{hi:?}");
        let proof = score(&req(
            "Prove the theorem that there are infinitely many primes p such that p modulo 4 equals 3. \
             Justify each step and show your work; then compare with the proof for 1 modulo 4.",
        ));
        assert!(proof.value > hi.value + 0.3, "{proof:?}");
        assert_eq!(proof.signals[0].name, "math");
    }

    #[test]
    fn code_and_design_raise_the_score() {
        let s = score(&req(
            "Design a distributed rate limiter architecture and implement it:\n```rust\nfn main() {}\n```",
        ));
        assert!(s.signals.iter().any(|x| x.name == "code"));
        assert!(s.signals.iter().any(|x| x.name == "design"));
    }
}
