//! Percent-encoding of rule comments in rules.cfg (spec section 2.4):
//! control characters, non-ASCII, `:` and `%` are written as `%XX` of
//! their UTF-8 bytes, so any comment fits on one line.

/// Encodes a comment for rules.cfg.
pub fn encode_comment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &byte in text.as_bytes() {
        let safe = (0x20..=0x7e).contains(&byte) && byte != b':' && byte != b'%';
        if safe {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Decodes a comment read from rules.cfg. Characters that were not
/// encoded (hand-edited files) are taken as they are; a `%` must start a
/// valid `%XX` escape and the bytes must form UTF-8.
pub fn decode_comment(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut pos = 0;
    while pos < bytes.len() {
        if bytes[pos] == b'%' {
            let hex = bytes
                .get(pos + 1..pos + 3)
                .and_then(|pair| std::str::from_utf8(pair).ok())
                .and_then(|pair| u8::from_str_radix(pair, 16).ok().map(|b| (pair, b)));
            match hex {
                Some((pair, byte)) if pair.bytes().all(|b| b.is_ascii_hexdigit()) => {
                    out.push(byte);
                    pos += 3;
                }
                _ => {
                    let end = (pos + 3).min(bytes.len());
                    let token = String::from_utf8_lossy(&bytes[pos..end]);
                    return Err(format!("invalid percent escape '{token}'"));
                }
            }
        } else {
            out.push(bytes[pos]);
            pos += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "percent escapes do not form UTF-8 text".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_unsafe_characters() {
        assert_eq!(encode_comment("plain text, ok!"), "plain text, ok!");
        assert_eq!(encode_comment("a:b%c"), "a%3Ab%25c");
        assert_eq!(encode_comment("tab\there\n"), "tab%09here%0A");
        assert_eq!(encode_comment("né"), "n%C3%A9");
        assert_eq!(encode_comment("\u{7f}"), "%7F");
    }

    #[test]
    fn decodes_and_round_trips() {
        for text in ["", "a:b%c", "tab\there", "né ✓", "100% sure: yes"] {
            assert_eq!(decode_comment(&encode_comment(text)).unwrap(), text);
        }
        assert_eq!(decode_comment("raw: é%3a").unwrap(), "raw: é:");
    }

    #[test]
    fn rejects_bad_escapes() {
        assert_eq!(
            decode_comment("50%").unwrap_err(),
            "invalid percent escape '%'"
        );
        assert_eq!(
            decode_comment("a%zz").unwrap_err(),
            "invalid percent escape '%zz'"
        );
        assert_eq!(
            decode_comment("a%+1").unwrap_err(),
            "invalid percent escape '%+1'"
        );
        assert!(decode_comment("%FF").unwrap_err().contains("UTF-8"));
    }
}
