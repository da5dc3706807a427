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

fn tools() -> Value {
    json!([{"type": "function", "function": {"name": "read_file"}}])
}

#[test]
fn shortness() {
    let short = user("hi");
    let long = user(&"word ".repeat(400));
    assert!(f(&short, "shortness") > 0.9 && f(&long, "shortness") == 0.0);
}

#[test]
fn code_signals() {
    fires("code", "nothing to see here", "```python\nx = 1\n```");
    fires("code", "tell me a story", "def f(): return None");
    fires("code", "plain words", "int main() { return 0; }");
}

#[test]
fn code_in_a_fence_is_not_maths() {
    let code = "Complete this:\n```python\ndef f(x, y):\n    return x * y + 2 ** n / 3 < 4\n```";
    let x = user(code);
    assert!(f(&x, "code") > 0.0);
    assert_eq!(f(&x, "maths"), 0.0, "{x:?}");
    assert_eq!(f(&x, "numbers"), 0.0);
}

#[test]
fn mathematics_signals() {
    fires(
        "maths",
        "a plain sentence",
        r"Find $\frac{a}{b}$ when $x=2$",
    );
    fires("maths", "plain words", "a^2 + b^2 = c^2");
    fires("maths", "plain words", "if x<y and y>z");
    fires("maths", "plain words", "(~E ⊃ F) ∨ (C ≡ S)");
    fires("maths", "I have a dog", "Let x be real and 3n odd");
    assert_eq!(f(&user("the 5th of May 1980s"), "maths"), 0.0);
    assert_eq!(f(&user("I'm sure it's fine, don't worry"), "maths"), 0.0);
    fires(
        "maths",
        "tell me a story",
        "Find every prime root of the polynomial",
    );
    fires(
        "advanced_maths",
        "tell me a story",
        "Is every abelian group cyclic?",
    );
    fires(
        "advanced_maths",
        "tell me a story",
        "Prove the lemma, and show that it holds",
    );
    fires("numbers", "no digits", "42 and 7");
    let dense = f(&user("x^2 + y^2 = z^2 for integer x"), "maths_density");
    let sparse = f(
        &user("John buys 3 apples at the market on Monday"),
        "maths_density",
    );
    assert!(dense > sparse, "{dense} vs {sparse}");
}

#[test]
fn science_and_arithmetic_signals() {
    fires(
        "science",
        "tell me a story",
        "Simulate the quantum lattice with numpy",
    );
    fires(
        "arithmetic",
        "tell me a story",
        "Apples cost $3 each; how much for 5?",
    );
    assert_eq!(f(&user("Apples cost a lot each"), "arithmetic"), 0.0);
}

#[test]
fn instruction_signals() {
    fires(
        "constraints",
        "tell me a story",
        "You must include exactly three items",
    );
    fires("writing", "hello", "Write an essay outline");
    fires(
        "writing",
        "the weather is nice",
        "Design a scalable distributed architecture",
    );
    fires(
        "writing",
        "the weather is nice",
        "Imagine you are a tree; act as one",
    );
    fires("imperative", "What is an essay?", "Write an essay.");
    fires(
        "imperative",
        "I like essays.",
        "Could you please write an essay?",
    );
    fires("imperative", "The proof is long.", "Hi! Now, prove it.");
    fires("question", "Write a poem.", "really? why?");
    assert_eq!(
        f(&user("Could you help me? Write a poem."), "question"),
        0.0
    );
    fires("question", "Tell me about Rust", "Hi, what is Rust");
}

#[test]
fn small_talk_is_the_whole_message_not_a_greeting_around_a_task() {
    fires("small_talk", "what is rust", "Hello there!");
    fires("small_talk", "what is rust", "Thank you!");
    fires(
        "small_talk",
        "what is rust",
        "Who are you? Tell me about yourself",
    );
    fires(
        "small_talk",
        "what is rust",
        "Hello there, hope you're doing well. Thank you!",
    );
    let task = "Prove that there are infinitely many primes of the form 4k+3.";
    assert_eq!(f(&user(&format!("Hi! {task} Thanks!")), "small_talk"), 0.0);
}

#[test]
fn multiple_choice_needs_three_options_at_line_starts() {
    let mc = "Which?\n\nA. one\nB. two\nC. three\nD. four";
    assert_eq!(f(&user(mc), "multiple_choice"), 1.0);
    assert_eq!(f(&user(&mc.replace('\n', "\r\n")), "multiple_choice"), 1.0);
    assert_eq!(f(&user("Plan A. then B. then C."), "multiple_choice"), 0.0);
}

#[test]
fn markdown_is_layout() {
    let plain = "Prove that x^2 >= 0 for real x.";
    for md in [
        format!("**{plain}**"),
        format!("## Task\n\n{plain}\n\n---"),
        format!("> {plain}"),
        format!("  {plain}\r\n\r\n"),
        format!("<task>\n{plain}\n</task>"),
    ] {
        for name in ["maths", "code", "advanced_maths"] {
            assert_eq!(
                f(&user(&md), name),
                f(&user(plain), name),
                "{name} on {md:?}"
            );
        }
    }
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
    let summary = convo("Now summarize that in one sentence, without the working.");
    assert!(f(&hard, "hard_followup") > 0.0 && f(&hard, "trivial_followup") == 0.0);
    assert!(f(&trivial, "hard_followup") == 0.0 && f(&trivial, "trivial_followup") == 1.0);
    assert_eq!(f(&summary, "trivial_followup"), 1.0);
    // A greeting does not make a real follow-up trivial.
    let greeted = convo("Hi again! And what if a, b may be negative?");
    assert_eq!(f(&greeted, "trivial_followup"), 0.0);
    assert_eq!(f(&user(maths), "hard_followup"), 0.0);
}

#[test]
fn small_talk_before_a_task_changes_nothing() {
    let task = "Find the smallest value of (a^3+b^3)/(a+b) for positive a, b.";
    let alone = user(task);
    let after_chat = extract(&req(json!([
        {"role": "user", "content": "Hi! How are you today?"},
        {"role": "assistant", "content": "I'm doing well, thanks! How can I help?"},
        {"role": "user", "content": task},
    ])));
    assert_eq!(alone, after_chat);
}

#[test]
fn a_schema_in_the_system_prompt_is_part_of_the_task_a_generic_one_is_not() {
    let sql = extract(&req(json!([
        {"role": "system", "content": "Schema: CREATE TABLE players (id int, earnings int); SELECT queries only."},
        {"role": "user", "content": "Average earnings?"},
    ])));
    assert!(f(&sql, "code") > 0.0);
    let generic = extract(&req(json!([
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Average earnings?"},
    ])));
    assert_eq!(generic, user("Average earnings?"));
}

#[test]
fn an_agents_system_prompt_and_tools_are_boilerplate() {
    let task = "What does HTTP status 418 mean?";
    let agent: ChatRequest = serde_json::from_value(json!({
        "messages": [
            {"role": "system", "content": "You are a coding agent. Use `read_file` and `run_command`; write code in ```rust blocks { }; prove your changes with tests."},
            {"role": "user", "content": task},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function",
                "function": {"name": "read_file", "arguments": "{\"path\": \"src/main.rs\"}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "fn main() {}"},
        ],
        "tools": tools(),
    }))
    .expect("valid request");
    assert_eq!(extract(&agent), user(task));
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
    for name in ["maths", "advanced_maths", "imperative"] {
        assert_eq!(f(&parts, name), f(&plain, name), "{name}");
    }
}

#[test]
fn reading_is_bounded() {
    // Earlier turns are read newest first within CONTEXT_BUDGET bytes: maths further back
    // than that does not reach the follow-up.
    let old_maths = "x^2 + y^2 = z^2 and a_n = a_{n-1} + a_{n-2}. ";
    let filler = "We talked about the weather and lunch plans. ".repeat(40);
    let convo = |first: &str| {
        extract(&req(json!([
            {"role": "user", "content": first},
            {"role": "assistant", "content": filler},
            {"role": "user", "content": "And then what?"},
        ])))
    };
    assert!(filler.len() > CONTEXT_BUDGET);
    assert_eq!(convo(old_maths), convo("hello"));
    // The last user turn is read up to LAST_BUDGET bytes.
    let long = format!("Write an essay. {}", "word ".repeat(LAST_BUDGET));
    let longer = format!("{long}{}", "x^2 = y ".repeat(1000));
    assert_eq!(user(&long), user(&longer));
}
