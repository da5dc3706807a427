// One schema for SQLite and PostgreSQL: portable column types only. Money is integer
// micro-dollars (BigInt), never a float.

diesel::table! {
    api_keys (id) {
        id -> Text,
        key_hash -> Text,
        label -> Text,
        created_at -> Timestamp,
        disabled -> Bool,
        daily_budget_micros -> Nullable<BigInt>,
        monthly_budget_micros -> Nullable<BigInt>,
        rpm_limit -> Nullable<Integer>,
        notify_email -> Nullable<Text>,
        webhook_url -> Nullable<Text>,
        account_id -> Text,
        role -> Text,
    }
}

diesel::table! {
    accounts (id) {
        id -> Text,
        created_at -> Timestamp,
        balance_micros -> BigInt,
        free_requests_remaining -> BigInt,
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
        premium_cost_micros -> BigInt,
        protocol -> Text,
        cached_tokens -> BigInt,
        reasoning_tokens -> BigInt,
        account_id -> Text,
        body_sha256 -> Nullable<Text>,
    }
}

diesel::joinable!(usage -> api_keys (key_id));
diesel::allow_tables_to_appear_in_same_query!(api_keys, usage);

diesel::table! {
    ledger (id) {
        id -> Text,
        key_id -> Text,
        kind -> Text,
        reference -> Text,
        amount_micros -> BigInt,
        memo -> Nullable<Text>,
        created_at -> Timestamp,
        account_id -> Text,
    }
}

diesel::table! {
    notifications (key_id, budget_window, window_start, threshold) {
        key_id -> Text,
        budget_window -> Text,
        window_start -> Timestamp,
        threshold -> Integer,
        created_at -> Timestamp,
    }
}

diesel::table! {
    retired_keys (key_hash) {
        key_hash -> Text,
        key_id -> Text,
        retired_at -> Timestamp,
    }
}

diesel::joinable!(ledger -> api_keys (key_id));
diesel::allow_tables_to_appear_in_same_query!(api_keys, ledger);

diesel::table! {
    invoices (id) {
        id -> Text,
        key_id -> Text,
        backend -> Text,
        payment_hash -> Text,
        bolt11 -> Text,
        amount_sats -> BigInt,
        status -> Text,
        checkout_url -> Nullable<Text>,
        created_at -> Timestamp,
        expires_at -> Timestamp,
        paid_at -> Nullable<Timestamp>,
        account_id -> Text,
    }
}

diesel::joinable!(invoices -> api_keys (key_id));
diesel::allow_tables_to_appear_in_same_query!(api_keys, invoices);

diesel::table! {
    responses (id) {
        id -> Text,
        key_id -> Text,
        created_at -> Timestamp,
        items -> Text,
        response -> Text,
    }
}

diesel::table! {
    free_spend (day) {
        day -> Timestamp,
        spent_micros -> BigInt,
    }
}

diesel::table! {
    key_mints (ip, window_start) {
        ip -> Text,
        window_start -> Timestamp,
        mints -> BigInt,
    }
}

diesel::joinable!(api_keys -> accounts (account_id));
diesel::allow_tables_to_appear_in_same_query!(accounts, api_keys);

diesel::table! {
    replicas (id) {
        id -> Text,
        seen_at -> Timestamp,
    }
}

diesel::table! {
    holds (id) {
        id -> Text,
        replica_id -> Text,
        account_id -> Text,
        key_id -> Text,
        estimate_micros -> BigInt,
        free -> Bool,
        created_at -> Timestamp,
    }
}

diesel::table! {
    key_spend (key_id, budget_window, window_start) {
        key_id -> Text,
        budget_window -> Text,
        window_start -> Timestamp,
        spent_micros -> BigInt,
    }
}

diesel::table! {
    rpm_buckets (key_id, second) {
        key_id -> Text,
        second -> Timestamp,
        hits -> BigInt,
    }
}

diesel::table! {
    session_pins (key_id, session) {
        key_id -> Text,
        session -> Text,
        tier -> Integer,
        seen_at -> Timestamp,
    }
}

diesel::allow_tables_to_appear_in_same_query!(holds, replicas);
