//! BOLT11 checks on what a backend returns: a well-formed, correctly signed invoice for the
//! amount we asked and the payment hash the backend reported. Parsing is the lenient
//! signed-raw form, because LNbits FakeWallet invoices carry no feature bits (which the strict
//! parser requires) while their signature is valid.

use std::str::FromStr;

use lightning_invoice::SignedRawBolt11Invoice;

/// What a checked invoice says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    pub payment_hash: String,
    pub amount_msat: u64,
    /// Unix seconds.
    pub expires_at: u64,
}

/// Expiry when the invoice states none (BOLT11's default).
const DEFAULT_EXPIRY_SECS: u64 = 3600;

/// Parses and checks `bolt11` against the amount and hash we expect.
pub fn verify(bolt11: &str, amount_sats: i64, payment_hash: &str) -> Result<Decoded, String> {
    let text = bolt11.trim().to_ascii_lowercase();
    let text = text.strip_prefix("lightning:").unwrap_or(&text);
    let signed =
        SignedRawBolt11Invoice::from_str(text).map_err(|e| format!("invalid BOLT11: {e}"))?;
    if !signed.check_signature() {
        return Err("BOLT11 signature does not verify".into());
    }
    let raw = signed.raw_invoice();
    let amount_msat = raw
        .amount_pico_btc()
        .map(|p| p / 10)
        .ok_or("BOLT11 invoice has no amount")?;
    let hash = raw
        .payment_hash()
        .map(|h| h.0.to_string())
        .ok_or("BOLT11 invoice has no payment hash")?;
    let expected_msat = u64::try_from(amount_sats).unwrap_or(0) * 1000;
    if amount_msat != expected_msat {
        return Err(format!(
            "BOLT11 amount {amount_msat} msat, expected {expected_msat} msat"
        ));
    }
    if !hash.eq_ignore_ascii_case(payment_hash) {
        return Err(format!(
            "BOLT11 payment hash {hash} differs from the backend's {payment_hash}"
        ));
    }
    let expiry = raw
        .expiry_time()
        .map_or(DEFAULT_EXPIRY_SECS, |e| e.as_seconds());
    Ok(Decoded {
        payment_hash: hash,
        amount_msat,
        expires_at: raw.data.timestamp.as_unix_timestamp() + expiry,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The BOLT11 spec's first test vector: 2500 µBTC (250,000 sat).
    const SPEC: &str = "lnbc2500u1pvjluezsp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygspp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5xysxxatsyp3k7enxv4jsxqzpu9qrsgquk0rl77nj30yxdy8j9vdx85fkpmdla2087ne0xh8nhedh8w27kyke0lp53ut353s06fv3qfegext0eh0ymjpf39tuven09sam30g4vgpfna3rh";
    const SPEC_HASH: &str = "0001020304050607080900010203040506070809000102030405060708090102";

    #[test]
    fn accepts_a_valid_invoice_with_matching_amount_and_hash() {
        let d = verify(SPEC, 250_000, SPEC_HASH).expect("valid");
        assert_eq!(d.amount_msat, 250_000_000);
        assert_eq!(d.payment_hash, SPEC_HASH);
        assert_eq!(d.expires_at, 1_496_314_658 + 60);
        assert!(verify(
            &format!("lightning:{}", SPEC.to_uppercase()),
            250_000,
            SPEC_HASH
        )
        .is_ok());
    }

    #[test]
    fn rejects_wrong_amount_hash_or_garbage() {
        assert!(verify(SPEC, 1, SPEC_HASH).unwrap_err().contains("amount"));
        assert!(verify(SPEC, 250_000, &"ab".repeat(32))
            .unwrap_err()
            .contains("hash"));
        assert!(verify("lnbc1garbage", 1, SPEC_HASH).is_err());
        let mut broken = SPEC.to_owned();
        broken.replace_range(40..41, "q");
        assert!(verify(&broken, 250_000, SPEC_HASH).is_err());
    }
}
