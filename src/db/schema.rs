// One schema for SQLite and PostgreSQL: portable column types only. Money is integer
// micro-dollars (BigInt), never a float.

diesel::table! {
    api_keys (id) {
        id -> Text,
        key_hash -> Text,
        label -> Text,
        created_at -> Timestamp,
        disabled -> Bool,
        free_requests_remaining -> BigInt,
        daily_budget_micros -> Nullable<BigInt>,
        monthly_budget_micros -> Nullable<BigInt>,
        rpm_limit -> Nullable<Integer>,
        notify_email -> Nullable<Text>,
        webhook_url -> Nullable<Text>,
    }
}

diesel::table! {
    usage (id) {
        id -> Text,
        key_id -> Text,
        provider -> Text,
        model -> Text,
        tier -> Text,
        prompt_tokens -> BigInt,
        completion_tokens -> BigInt,
        cost_micros -> BigInt,
        latency_ms -> BigInt,
        ttft_ms -> Nullable<BigInt>,
        status -> Text,
        stream -> Bool,
        upstream_request_id -> Nullable<Text>,
        client_request_id -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::joinable!(usage -> api_keys (key_id));
diesel::allow_tables_to_appear_in_same_query!(api_keys, usage);
