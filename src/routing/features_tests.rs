//! One test per signal: the feature moves with what it claims to measure.

use super::*;
use serde_json::json;

fn req(messages: Value) -> ChatRequest {
    serde_json::from_value(json!({ "messages": messages })).expect("valid request")
}

fn user(text: &str) -> Features {
    extract(&req(json!([{"role": "user", "content": text}])))
}

fn f(x: &Features, name: &str) -> f64 {
    let j = FEATURE_NAMES
        .iter()
        .position(|n| *n == name)
        .expect("known feature");
    x[j]
}

/// `name` is zero on `plain` and positive on `marked`.
fn fires(name: &str, plain: &str, marked: &str) {
    let (p, m) = (f(&user(plain), name), f(&user(marked), name));
    assert_eq!(p, 0.0, "{name} on {plain:?}");
    assert!(m > 0.0, "{name} on {marked:?}");
}

#[test]
fn names_are_unique_and_counted() {
    let mut names = FEATURE_NAMES.to_vec();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), N_FEATURES);
}

#[test]
fn length_lines_and_shortness() {
    let short = user("hi");
    let long = user(&"word ".repeat(400));
    assert!(f(&long, "length") > f(&short, "length"));
    assert!(f(&short, "shortness") > 0.9 && f(&long, "shortness") == 0.0);
    assert!(f(&user("a\nb\nc"), "lines") > 0.0);
}

#[test]
fn code_signals() {
    fires("code_fences", "no code here", "```python\nx = 1\n```");
    assert_eq!(f(&user("```a``` ```b```"), "code_fences"), 4.0);
    fires("code_words", "tell me a story", "def f(): return None");
    fires(
        "code_punctuation",
        "plain words",
        "int main() { return 0; }",
    );
}

#[test]
fn mathematics_signals() {
    fires(
        "latex",
        "a plain sentence",
        r"Find $\frac{a}{b}$ when $x=2$",
    );
    fires("math_symbols", "plain words", "a^2 + b^2 = c^2");
    fires("math_symbols", "plain words", "(~E ⊃ F) ∨ (C ≡ S)");
    fires("math_variables", "I have a dog", "Let x be real and 3n odd");
    assert_eq!(f(&user("the 5th of May 1980s"), "math_variables"), 0.0);
    fires(
        "math_words",
        "tell me a story",
        "Find every prime root of the polynomial",
    );
    fires(
        "algebra_logic",
        "tell me a story",
        "Is every abelian group cyclic?",
    );
    fires(
        "proof_words",
        "tell me a story",
        "Prove the lemma, and show that it holds",
    );
    fires("numbers", "no digits", "42 and 7");
    let dense = f(&user("x^2 + y^2 = z^2 for integer x"), "math_density");
    let sparse = f(
        &user("John buys 3 apples at the market on Monday"),
        "math_density",
    );
    assert!(dense > sparse, "{dense} vs {sparse}");
}

#[test]
fn science_sql_and_quantity_signals() {
    fires(
        "science",
        "tell me a story",
        "Simulate the quantum lattice with numpy",
    );
    fires(
        "sql",
        "tell me a story",
        "Write a SQL query to select rows from the table",
    );
    fires(
        "quantities",
        "tell me a story",
        "Apples cost $3 each; how much for 5?",
    );
}

#[test]
fn instruction_signals() {
    fires(
        "constraints",
        "tell me a story",
        "You must include exactly three items",
    );
    fires(
        "design",
        "tell me a story",
        "Design a scalable distributed architecture",
    );
    fires("writing", "hello", "Write an essay outline");
    fires(
        "roleplay",
        "tell me a story",
        "Imagine you are a tree; act as one",
    );
    fires(
        "edit_previous",
        "tell me a story",
        "Rewrite your previous reply",
    );
    fires("question_marks", "statement.", "really? why?");
}

#[test]
fn small_talk_signals() {
    fires("greeting", "what is rust", "Hello there!");
    fires("thanks", "what is rust", "Thank you!");
    fires(
        "identity",
        "what is rust",
        "Who are you? Tell me about yourself",
    );
    fires(
        "summarize",
        "what is rust",
        "Summarize that in one sentence",
    );
    fires("short_wh_question", "Tell me about Rust", "What is Rust?");
    assert_eq!(
        f(
            &user(&format!("What {}", "is ".repeat(60))),
            "short_wh_question"
        ),
        0.0
    );
}

#[test]
fn multiple_choice_needs_three_options_at_line_starts() {
    let mc = "Which?\n\nA. one\nB. two\nC. three\nD. four";
    assert_eq!(f(&user(mc), "multiple_choice"), 1.0);
    assert_eq!(f(&user("Plan A. then B. then C."), "multiple_choice"), 0.0);
}

#[test]
fn context_signals_separate_hard_and_trivial_follow_ups() {
    let maths = "Find the smallest value of (a^3+b^3)/(a+b) for positive a, b.";
    let answer = "Since a^3+b^3 = (a+b)(a^2-ab+b^2) >= (a+b)ab, the minimum is ab.";
    let convo = |last: &str| {
        extract(&req(json!([
            {"role": "user", "content": maths},
            {"role": "assistant", "content": answer},
            {"role": "user", "content": last},
        ])))
    };
    let hard = convo("And what if a, b may be negative?");
    let trivial = convo("Thanks!");
    assert!(f(&hard, "turns") > 0.0 && f(&hard, "context_length") > 0.0);
    assert!(f(&hard, "context_math") > 0.0);
    assert!(f(&hard, "hard_followup") > 0.0 && f(&hard, "trivial_followup") == 0.0);
    assert!(f(&trivial, "hard_followup") == 0.0 && f(&trivial, "trivial_followup") == 1.0);
    let code = convo("```rust\nfn main() {}\n```");
    assert_eq!(f(&code, "context_code"), 0.0);
    let after_code = extract(&req(json!([
        {"role": "user", "content": "```rust\nfn main() { print(1); }\n```"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "why?"},
    ])));
    assert!(f(&after_code, "context_code") > 0.0);
    assert_eq!(f(&user(maths), "turns"), 0.0);
}

#[test]
fn system_prompt_signals() {
    let x = extract(&req(json!([
        {"role": "system", "content": "Schema: CREATE TABLE players (id int, earnings int)"},
        {"role": "user", "content": "Average earnings?"},
    ])));
    assert!(f(&x, "system_length") > 0.0 && f(&x, "system_sql") > 0.0);
    assert_eq!(f(&x, "turns"), 0.0);
    let math_sys = extract(&req(json!([
        {"role": "system", "content": "You are an expert on mathematics and proofs of theorems about integers."},
        {"role": "user", "content": "hi"},
    ])));
    assert!(f(&math_sys, "system_math") > 0.0);
}

#[test]
fn content_parts_count_like_a_string() {
    let text = "Prove that x^2 >= 0 for real x.";
    let parts = extract(&req(json!([{"role": "user", "content": [
        {"type": "text", "text": "Prove that x^2 >= 0"},
        {"type": "image_url", "image_url": {"url": "http://x"}},
        {"type": "text", "text": " for real x."},
    ]}])));
    let plain = user(text);
    for name in [
        "math_symbols",
        "math_variables",
        "proof_words",
        "math_words",
    ] {
        assert_eq!(f(&parts, name), f(&plain, name), "{name}");
    }
}
