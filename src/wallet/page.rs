//! The public invoice page (`GET /invoice/{id}`): amount, status, the BOLT11 and a QR code of
//! `lightning:<BOLT11>`. Every text written into it is HTML-escaped: the BOLT11 comes from the
//! Lightning backend, and a page anyone may open must not run what a backend (or a row in
//! the database) says. Its Content-Security-Policy allows nothing but its own inline style.

use base64::Engine;
use sha2::{Digest, Sha256};

use super::view::visible_status;
use crate::db::models::invoice::Invoice;

/// The rendered page and the Content-Security-Policy to send with it.
pub struct Page {
    pub html: String,
    pub csp: String,
}

pub fn render(inv: &Invoice) -> Page {
    // Upper case makes a denser QR code (alphanumeric mode); BOLT11 is case-insensitive.
    let uri = format!("lightning:{}", inv.bolt11.to_ascii_uppercase());
    // The SVG is the qrcode crate's own markup of the modules; no text of ours is in it.
    let qr = qrcode::QrCode::new(uri.as_bytes())
        .map(|c| {
            c.render::<qrcode::render::svg::Color>()
                .min_dimensions(280, 280)
                .build()
        })
        .unwrap_or_default();
    let status = visible_status(inv);
    // No script may run here, so a pending page reloads itself to show the payment land.
    let refresh = if status == crate::db::models::invoice::PENDING {
        "\n<meta http-equiv=\"refresh\" content=\"3\">"
    } else {
        ""
    };
    let html = format!(
        include_str!("../../static/invoice.html"),
        refresh = refresh,
        amount = inv.amount_sats,
        status = escape(status),
        expires = escape(&inv.expires_at.format("%Y-%m-%d %H:%M UTC").to_string()),
        qr = qr,
        uri = escape(&uri),
        bolt11 = escape(&inv.bolt11),
    );
    let csp = csp(&html);
    Page { html, csp }
}

/// Text for an HTML element or a double- or single-quoted attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// No script, no connection, no form, no frame; the page's one `<style>` element by its hash
/// (so an injected one would not apply) and inline SVG.
fn csp(html: &str) -> String {
    let style = html
        .split_once("<style>")
        .and_then(|(_, rest)| rest.split_once("</style>"))
        .map_or("", |(style, _)| style);
    let hash = base64::engine::general_purpose::STANDARD.encode(Sha256::digest(style));
    format!(
        "default-src 'none'; style-src 'sha256-{hash}'; img-src data:; form-action 'none'; \
         base-uri 'none'; frame-ancestors 'none'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEMPLATE: &str = include_str!("../../static/invoice.html");

    fn invoice(bolt11: &str, status: &str) -> Invoice {
        let now = crate::time::now();
        Invoice {
            id: "inv_1".into(),
            key_id: "key_1".into(),
            backend: "lnbits".into(),
            payment_hash: "hash".into(),
            bolt11: bolt11.into(),
            amount_sats: 1000,
            status: status.into(),
            checkout_url: None,
            created_at: now,
            expires_at: now + chrono::Duration::hours(1),
            paid_at: None,
            account_id: "acc_1".into(),
        }
    }

    #[test]
    fn escapes_the_five_html_characters() {
        assert_eq!(
            escape(r#"<a href="x" onclick='y'>&</a>"#),
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
        assert_eq!(escape("lnbc10u1p"), "lnbc10u1p");
    }

    #[test]
    fn a_hostile_bolt11_or_status_is_shown_as_text_never_as_markup() {
        let evil = r#"lnbc1"><script>alert(1)</script><img src=x onerror=alert(2)>"#;
        let page = render(&invoice(evil, "<b>paid</b>"));
        assert!(!page.html.contains("<script>"), "{}", page.html);
        assert!(!page.html.contains("<img"), "{}", page.html);
        assert!(!page.html.contains("<b>"), "{}", page.html);
        assert!(page.html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(page.html.contains("&lt;b&gt;paid&lt;/b&gt;"));
        // The link's attribute is not broken out of either.
        assert!(
            page.html.contains(r#"href="lightning:LNBC1&quot;&gt;"#),
            "{}",
            page.html
        );
    }

    #[test]
    fn the_policy_allows_no_script_and_only_the_page_style() {
        assert_eq!(TEMPLATE.matches("<style>").count(), 1);
        let page = render(&invoice("lnbc10u1pexample", "pending"));
        assert!(page
            .csp
            .starts_with("default-src 'none'; style-src 'sha256-"));
        assert!(!page.csp.contains("script-src"));
        assert!(!page.csp.contains("unsafe-inline"));
        let style = page
            .html
            .split_once("<style>")
            .and_then(|(_, r)| r.split_once("</style>"))
            .map(|(s, _)| s)
            .unwrap_or_default();
        assert!(
            style.contains("font-family"),
            "the hashed style is the page's own"
        );
    }
}
