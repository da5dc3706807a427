//! SHA-256 of what every request hashes (its body for `X-Pura-Body-Sha256`, its bearer token to
//! find its key), as lowercase hex on the stack, by the fastest code this CPU allows.
//!
//! With SHA extensions (AMD Zen, Intel since Ice Lake), `sha2` runs them and is the fastest:
//! natively on this project's AMD EPYC machine, 70 ns for a 45-byte token and 90 ns for a
//! 110-byte body, against 110 and 150 ns for `ring`. Without them (x86 servers before Ice Lake,
//! and valgrind's CPU) `sha2` falls back to portable code of about 3,500 instructions a block,
//! and `ring`'s assembly takes two thirds of that (4,642 instructions against 7,058 for a
//! 110-byte body, callgrind): that is what [`hex`] runs there.

/// The CPU has SHA-256 instructions, which `sha2` uses.
pub fn hardware() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("sha")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("sha2")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// The SHA-256 of `bytes` as lowercase hex, by `sha2` where the CPU has SHA instructions and by
/// `ring` elsewhere.
pub fn hex(bytes: &[u8]) -> [u8; 64] {
    if hardware() {
        by_sha2(bytes)
    } else {
        by_ring(bytes)
    }
}

/// Into a buffer, not `hex::encode`: that one pushes the digits char by char through an
/// iterator, which cost more than the lookup the key's hash serves.
fn by_sha2(bytes: &[u8]) -> [u8; 64] {
    use sha2::Digest;
    let mut hex = [0u8; 64];
    // 32 digest bytes always fill 64 hex digits: the error case cannot happen.
    let _ = hex::encode_to_slice(sha2::Sha256::digest(bytes), &mut hex);
    hex
}

fn by_ring(bytes: &[u8]) -> [u8; 64] {
    let mut hex = [0u8; 64];
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let _ = hex::encode_to_slice(digest.as_ref(), &mut hex);
    hex
}

/// The hex digits as text.
pub fn as_str(hex: &[u8; 64]) -> &str {
    // Hex digits are ASCII: the check passes (`from_utf8_lossy` walked them byte by byte).
    std::str::from_utf8(hex).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both implementations give FIPS 180-2's digest, and the same digest at every length
    /// around the block edges, whichever of them this CPU picks.
    #[test]
    fn both_implementations_give_the_same_lowercase_hex_sha256() {
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(as_str(&by_sha2(b"abc")), abc);
        assert_eq!(as_str(&by_ring(b"abc")), abc);
        assert_eq!(as_str(&hex(b"abc")), abc);
        let body: Vec<u8> = (0..1_100u32).map(|i| (i * 7 + i / 3) as u8).collect();
        for n in 0..body.len() {
            let bytes = &body[..n];
            assert_eq!(by_ring(bytes), by_sha2(bytes), "{n}");
            assert_eq!(hex(bytes), by_sha2(bytes), "{n}");
        }
    }
}
