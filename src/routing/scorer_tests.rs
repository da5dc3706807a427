use super::*;
use serde_json::json;

fn req(body: Value) -> ChatRequest {
    serde_json::from_value(body).expect("valid request")
}

fn ask(text: &str) -> Score {
    score(&req(
        json!({"messages": [{"role": "user", "content": text}]}),
    ))
}

/// The tier with the highest probability.
fn top(s: &Score) -> &'static str {
    let k = (0..3).fold(0, |b, k| if s.probs[k] > s.probs[b] { k } else { b });
    TIERS[k]
}

#[test]
fn committed_weights_parse_and_match_the_features() {
    let w: WeightsFile = serde_json::from_str(WEIGHTS_JSON).expect("weights.json parses");
    let m = w.model().expect("weights.json matches FEATURE_NAMES");
    assert_ne!(m, Model::ZERO, "weights.json holds a trained model");
    assert_eq!(committed_model(), &m);
}

#[test]
fn a_stale_weights_file_is_refused() {
    let mut w = WeightsFile::from_model(&Model::ZERO);
    w.features[3].name = "renamed".into();
    assert!(w.model().is_err());
    w.features.pop();
    assert!(w.model().is_err());
}

#[test]
fn score_is_the_expected_tier_and_probabilities_sum_to_one() {
    let s = ask("Write a short story about a lighthouse keeper.");
    assert!((s.probs.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    assert!((s.value - (0.5 * s.probs[1] + s.probs[2])).abs() < 1e-12);
    assert!((0.0..=1.0).contains(&s.value));
    assert_eq!(
        score_with(&Model::ZERO, &req(json!({"messages": []}))).value,
        0.5
    );
}

#[test]
fn tiers_of_need() {
    assert_eq!(top(&ask("hi there!")), "cheap");
    assert_eq!(top(&ask("What is the capital of Australia?")), "cheap");
    let essay = "Write a persuasive blog post of about 600 words for small business owners on \
                 why they should adopt accessible web design. Include an outline, a catchy \
                 headline and three concrete examples.";
    assert_eq!(top(&ask(essay)), "mid");
    let proof = "Let a, b, c be positive reals with a+b+c = 3. Prove that \
                 $\\sum \\frac{a^2}{b+c} \\geq \\frac{3}{2}$ and find when equality holds.";
    assert_eq!(top(&ask(proof)), "premium");
}

#[test]
fn thanks_after_hard_maths_is_cheap_but_a_maths_follow_up_is_not() {
    let convo = |last: &str| {
        score(&req(json!({"messages": [
            {"role": "user", "content": "How many subsets of {1, 2, ..., n} have no two consecutive integers? Prove your formula."},
            {"role": "assistant", "content": "Let a_n count them. Then a_n = a_{n-1} + a_{n-2}, with a_1 = 2 and a_2 = 3, so a_n = F_{n+2}."},
            {"role": "user", "content": last},
        ]})))
    };
    let thanks = convo("Thank you!");
    let follow = convo("Now count those subsets of size k, and prove the count is C(n-k+1, k).");
    assert_eq!(top(&thanks), "cheap", "{thanks:?}");
    assert!(follow.value > thanks.value + 0.4, "{follow:?}");
}

#[test]
fn signals_explain_the_decision() {
    let s = ask("Hello!");
    assert!(!s.signals.is_empty() && s.signals.len() <= 6);
    assert!(s.signals.windows(2).all(|w| w[0].weight >= w[1].weight));
    assert!(s.signals.iter().all(|x| x.weight > 0.0));
}

#[test]
fn tools_response_format_and_output_size_nudge_the_score() {
    let base = json!({"messages": [{"role": "user", "content": "Book a table for two tonight."}]});
    let plain = score(&req(base.clone()));
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        score(&req(b))
    };
    let tool = |n: usize| json!({"type": "function", "function": {"name": format!("t{n}")}});
    let tools = with("tools", Value::Array((0..6).map(tool).collect()));
    assert!(tools.value > plain.value, "{tools:?} vs {plain:?}");
    assert!(request_priors(&req(base.clone()))
        .iter()
        .all(Option::is_none));
    let schema = with(
        "response_format",
        json!({"type": "json_schema", "json_schema": {}}),
    );
    assert!(schema.value > plain.value);
    let json_mode = with("response_format", json!({"type": "json_object"}));
    assert!(json_mode.value > plain.value && json_mode.value < schema.value);
    let tiny = with("max_tokens", json!(16));
    let huge = with("max_completion_tokens", json!(32000));
    assert!(tiny.value < plain.value && huge.value > plain.value);
    assert!(huge.signals.iter().any(|s| s.name == "output_size") || top(&huge) == "cheap");
}

#[test]
fn an_agent_is_scored_by_its_task_not_its_boilerplate() {
    let examples = [
        ("What does HTTP status 418 mean?", "cheap"),
        (
            "Let p be an odd prime. Prove that the sum of the quadratic residues modulo p \
             is divisible by p when p > 3, and find when it is not.",
            "premium",
        ),
    ];
    for (task, tier) in examples {
        let agent = crate::routing::augment::agent_request(
            &req(json!({"messages": [
                {"role": "user", "content": task},
            ]})),
            1,
        )
        .expect("agent request");
        let s = score(&agent);
        assert_eq!(top(&s), tier, "{task}: {s:?}");
        assert_eq!(top(&ask(task)), tier, "{task} without the agent");
        assert!(
            s.signals
                .iter()
                .all(|x| x.name != "tools" || x.weight < 0.3),
            "{s:?}"
        );
    }
}

#[test]
fn the_header_names_what_decided() {
    let s = ask("Let G be a finite abelian group. Prove that G is cyclic iff it has at most one subgroup of each order.");
    let h = crate::routing::policy::score_header(&s);
    assert!(h.contains("advanced_maths") || h.contains("maths"), "{h}");
    let hi = crate::routing::policy::score_header(&ask("Hello!"));
    assert!(hi.contains("small_talk"), "{hi}");
}
