//! Phone numbers in E.164, read the same way for every vendor.
//!
//! One number always normalizes to the same result, whichever vendor stored it; the only
//! input besides the number is the country it is dialled in, when the vendor stores one
//! (Libredesk's calling-code field, CAAC's member country). The rules, in order:
//!
//! 1. **Separators people type are dropped**: white space (non-breaking too), `-`, `.`, `/`,
//!    `(` and `)`. (`/` was kept by Libredesk, CAAC and LlamadaPro before, so `030/1234567`
//!    never became E.164 there.)
//! 2. **International form**: a leading `+`, or the ITU international prefix `00`, means the
//!    country code follows. (`00` was read as international only by LlamadaPro and
//!    ChatCaptain; Libredesk and CAAC read `0044…` as a national number: the stored country's
//!    code in front of it, one zero dropped, or kept as stored.) A trunk zero written in
//!    brackets after the country code, `+44 (0)20 …`, is not dialled from abroad and is
//!    dropped — except for the countries that keep it (rule 3), where the brackets alone go.
//!    (No vendor read the bracketed zero before: `+44 (0)20…` became `+44020…`.)
//! 3. **National form**: with no international prefix the number is national, and only
//!    becomes E.164 when the country is known: one trunk `0` is dropped and the country's
//!    calling code put in front. Italy (`+39`, also dialled for the Vatican), San Marino
//!    (`+378`), Côte d'Ivoire (`+225`) and the Republic of the Congo (`+242`) keep the leading
//!    `0` in E.164 (`06 1234 5678` in Italy is `+390612345678`). A national number written
//!    without its trunk zero (the national significant number, as Libredesk stores it beside
//!    its calling-code field) takes the calling code as it is. (CAAC dropped every trunk
//!    zero and kept a number without one as stored; Libredesk did what is written here.)
//! 4. **Valid or kept**: the result must be `+` and 7 to 15 digits, the first not zero — the
//!    same grammar as an E.164 key inside an ID ([`KeyGrammar::E164`]). Anything else (an
//!    extension, letters, too few or too many digits, a national number in an unknown
//!    country) is not E.164: [`e164`] answers `None`, and [`normalize`] keeps the number as
//!    the vendor stored it (trimmed), so nothing is lost. (Only LlamadaPro checked the digit
//!    count before; Libredesk passed any `+…` through with its punctuation stripped.)
//!
//! A **WhatsApp id** is the full international number without `+` (WhatsApp's `wa_id`), so
//! [`whatsapp_e164`] also reads bare digits as international, under rule 4. (ChatCaptain took
//! any number of digits before, and no `00`.)
//!
//! The country is a calling code (`"+44"`, `"44"`), an ISO 3166-1 alpha-2 code (`"GB"`), or
//! the English name of one of the markets a vendor stores by name (CAAC's `"Taiwan"`). (CAAC
//! knew only its six markets before; Libredesk the calling codes and ISO codes.)

use crate::api::ids::KeyGrammar;

/// A number as E.164 (`+` and 7 to 15 digits), or `None` when it cannot be known: see the
/// module documentation for the rules. `country` is where a national number is dialled.
pub(crate) fn e164(number: &str, country: Option<&str>) -> Option<String> {
    let number = number.trim();
    // Fast path: a number already in E.164 (how most vendors store it) is its own answer.
    if is_e164(number) {
        return Some(number.to_owned());
    }
    let compact = compact(number);
    let candidate = match international(&compact) {
        Some(digits) if has_bracketed_zero(number) && !keeps_trunk_zero(digits) => {
            // "+44 (0)20 …": the bracketed trunk zero is not part of the number.
            return e164(&number.replacen("(0)", "", 1), country);
        }
        // "+…": the compact number is the candidate as it is.
        Some(_) if compact.starts_with('+') => compact,
        Some(digits) => plus(&[digits]),
        None => {
            let code = country.and_then(calling_code)?;
            let national = match compact.strip_prefix('0') {
                Some(rest) if !keeps_trunk_zero(code) => rest,
                _ => compact.as_str(),
            };
            plus(&[code, national])
        }
    };
    is_e164(&candidate).then_some(candidate)
}

/// Whether the number has `(0)` (a short number: a byte scan, no substring searcher).
fn has_bracketed_zero(number: &str) -> bool {
    number.as_bytes().windows(3).any(|w| w == b"(0)")
}

/// `+` and 7 to 15 digits, the first not zero: the grammar of an E.164 key inside an ID.
fn is_e164(number: &str) -> bool {
    KeyGrammar::E164.accepts(number)
}

/// `+` and `parts`, in one allocation of the right size.
fn plus(parts: &[&str]) -> String {
    let mut out = String::with_capacity(1 + parts.iter().map(|p| p.len()).sum::<usize>());
    out.push('+');
    for part in parts {
        out.push_str(part);
    }
    out
}

/// A stored number as E.164 where that can be known ([`e164`]), else as the vendor stored it
/// (trimmed): what a contact's `phones` carry.
pub(crate) fn normalize(number: &str, country: Option<&str>) -> String {
    e164(number, country).unwrap_or_else(|| number.trim().to_owned())
}

/// A WhatsApp id (the international number's digits, no `+`) or a number in any form
/// [`e164`] reads, as E.164.
pub(crate) fn whatsapp_e164(id: &str) -> Option<String> {
    let trimmed = id.trim();
    // Fast path: bare digits (a `wa_id`) without the `00` prefix are not E.164 as they stand
    // and not national without a country, so they are the international number's digits.
    if !trimmed.is_empty()
        && !trimmed.starts_with("00")
        && trimmed.bytes().all(|b| b.is_ascii_digit())
    {
        let candidate = plus(&[trimmed]);
        return is_e164(&candidate).then_some(candidate);
    }
    e164(id, None).or_else(|| e164(&plus(&[&compact(id)]), None))
}

/// [`whatsapp_e164`], else the id as stored (trimmed).
pub(crate) fn normalize_whatsapp(id: &str) -> String {
    whatsapp_e164(id).unwrap_or_else(|| id.trim().to_owned())
}

/// The number without the separators people type (rule 1).
pub(crate) fn compact(number: &str) -> String {
    let number = number.trim();
    let mut out = String::with_capacity(number.len());
    out.extend(
        number
            .chars()
            .filter(|c| !matches!(c, '-' | '(' | ')' | '.' | '/') && !c.is_whitespace()),
    );
    out
}

/// The digits after the international prefix (`+` or `00`), if the number has one.
fn international(compact: &str) -> Option<&str> {
    compact
        .strip_prefix('+')
        .or_else(|| compact.strip_prefix("00"))
}

/// Calling codes whose E.164 numbers keep the national trunk `0`; `digits` may be a calling
/// code or a whole international number (calling codes are prefix-free).
fn keeps_trunk_zero(digits: &str) -> bool {
    ["39", "378", "225", "242"]
        .iter()
        .any(|code| digits.starts_with(code))
}

/// The calling code of a country given as a calling code (`"+44"`, `"44"`), an ISO 3166-1
/// alpha-2 code (`"GB"`, any case) or an English market name (`"Taiwan"`).
pub(crate) fn calling_code(country: &str) -> Option<&str> {
    let country = country.trim();
    let digits = country.strip_prefix('+').unwrap_or(country);
    if !digits.is_empty() && digits.len() <= 4 && digits.bytes().all(|b| b.is_ascii_digit()) {
        return Some(digits);
    }
    let iso = COUNTRY_NAMES
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(country))
        .map_or(country, |(_, iso)| *iso);
    // Every ISO code of the table is two letters: anything else is no country.
    let [a, b] = <[u8; 2]>::try_from(iso.as_bytes()).ok()?;
    let iso = iso_key(&[a.to_ascii_uppercase(), b.to_ascii_uppercase()]);
    COUNTRY_CALLING_CODES
        .binary_search_by_key(&iso, |(code, _)| iso_key(code.as_bytes()))
        .ok()
        .map(|at| COUNTRY_CALLING_CODES[at].1)
}

/// A two-letter ISO code as one integer that sorts as the code does: the table is searched
/// by integer comparisons, not by a `memcmp` call per probe (a contact's phones are
/// normalized on every translation). Anything but two bytes sorts first (no table entry).
fn iso_key(code: &[u8]) -> u16 {
    match code {
        [a, b] => u16::from_be_bytes([*a, *b]),
        _ => 0,
    }
}

/// English country names vendors store instead of a code (CAAC's markets), by ISO code.
const COUNTRY_NAMES: &[(&str, &str)] = &[
    ("taiwan", "TW"),
    ("thailand", "TH"),
    ("japan", "JP"),
    ("hong kong", "HK"),
    ("singapore", "SG"),
    ("malaysia", "MY"),
];

/// ISO 3166-1 alpha-2 → ITU-T E.164 country calling code (NANP countries share `1`). Sorted
/// by ISO code, each once, in upper case: [`calling_code`] searches it by halves.
#[rustfmt::skip]
static COUNTRY_CALLING_CODES: &[(&str, &str)] = &[
    ("AD", "376"), ("AE", "971"), ("AF", "93"), ("AG", "1"), ("AI", "1"), ("AL", "355"),
    ("AM", "374"), ("AO", "244"), ("AR", "54"), ("AS", "1"), ("AT", "43"), ("AU", "61"),
    ("AW", "297"), ("AX", "358"), ("AZ", "994"), ("BA", "387"), ("BB", "1"), ("BD", "880"),
    ("BE", "32"), ("BF", "226"), ("BG", "359"), ("BH", "973"), ("BI", "257"), ("BJ", "229"),
    ("BL", "590"), ("BM", "1"), ("BN", "673"), ("BO", "591"), ("BQ", "599"), ("BR", "55"),
    ("BS", "1"), ("BT", "975"), ("BW", "267"), ("BY", "375"), ("BZ", "501"), ("CA", "1"),
    ("CC", "61"), ("CD", "243"), ("CF", "236"), ("CG", "242"), ("CH", "41"), ("CI", "225"),
    ("CK", "682"), ("CL", "56"), ("CM", "237"), ("CN", "86"), ("CO", "57"), ("CR", "506"),
    ("CU", "53"), ("CV", "238"), ("CW", "599"), ("CX", "61"), ("CY", "357"), ("CZ", "420"),
    ("DE", "49"), ("DJ", "253"), ("DK", "45"), ("DM", "1"), ("DO", "1"), ("DZ", "213"),
    ("EC", "593"), ("EE", "372"), ("EG", "20"), ("EH", "212"), ("ER", "291"), ("ES", "34"),
    ("ET", "251"), ("FI", "358"), ("FJ", "679"), ("FK", "500"), ("FM", "691"), ("FO", "298"),
    ("FR", "33"), ("GA", "241"), ("GB", "44"), ("GD", "1"), ("GE", "995"), ("GF", "594"),
    ("GG", "44"), ("GH", "233"), ("GI", "350"), ("GL", "299"), ("GM", "220"), ("GN", "224"),
    ("GP", "590"), ("GQ", "240"), ("GR", "30"), ("GT", "502"), ("GU", "1"), ("GW", "245"),
    ("GY", "592"), ("HK", "852"), ("HN", "504"), ("HR", "385"), ("HT", "509"), ("HU", "36"),
    ("ID", "62"), ("IE", "353"), ("IL", "972"), ("IM", "44"), ("IN", "91"), ("IO", "246"),
    ("IQ", "964"), ("IR", "98"), ("IS", "354"), ("IT", "39"), ("JE", "44"), ("JM", "1"),
    ("JO", "962"), ("JP", "81"), ("KE", "254"), ("KG", "996"), ("KH", "855"), ("KI", "686"),
    ("KM", "269"), ("KN", "1"), ("KP", "850"), ("KR", "82"), ("KW", "965"), ("KY", "1"),
    ("KZ", "7"), ("LA", "856"), ("LB", "961"), ("LC", "1"), ("LI", "423"), ("LK", "94"),
    ("LR", "231"), ("LS", "266"), ("LT", "370"), ("LU", "352"), ("LV", "371"), ("LY", "218"),
    ("MA", "212"), ("MC", "377"), ("MD", "373"), ("ME", "382"), ("MF", "590"), ("MG", "261"),
    ("MH", "692"), ("MK", "389"), ("ML", "223"), ("MM", "95"), ("MN", "976"), ("MO", "853"),
    ("MP", "1"), ("MQ", "596"), ("MR", "222"), ("MS", "1"), ("MT", "356"), ("MU", "230"),
    ("MV", "960"), ("MW", "265"), ("MX", "52"), ("MY", "60"), ("MZ", "258"), ("NA", "264"),
    ("NC", "687"), ("NE", "227"), ("NF", "672"), ("NG", "234"), ("NI", "505"), ("NL", "31"),
    ("NO", "47"), ("NP", "977"), ("NR", "674"), ("NU", "683"), ("NZ", "64"), ("OM", "968"),
    ("PA", "507"), ("PE", "51"), ("PF", "689"), ("PG", "675"), ("PH", "63"), ("PK", "92"),
    ("PL", "48"), ("PM", "508"), ("PR", "1"), ("PS", "970"), ("PT", "351"), ("PW", "680"),
    ("PY", "595"), ("QA", "974"), ("RE", "262"), ("RO", "40"), ("RS", "381"), ("RU", "7"),
    ("RW", "250"), ("SA", "966"), ("SB", "677"), ("SC", "248"), ("SD", "249"), ("SE", "46"),
    ("SG", "65"), ("SH", "290"), ("SI", "386"), ("SJ", "47"), ("SK", "421"), ("SL", "232"),
    ("SM", "378"), ("SN", "221"), ("SO", "252"), ("SR", "597"), ("SS", "211"), ("ST", "239"),
    ("SV", "503"), ("SX", "1"), ("SY", "963"), ("SZ", "268"), ("TC", "1"), ("TD", "235"),
    ("TG", "228"), ("TH", "66"), ("TJ", "992"), ("TK", "690"), ("TL", "670"), ("TM", "993"),
    ("TN", "216"), ("TO", "676"), ("TR", "90"), ("TT", "1"), ("TV", "688"), ("TW", "886"),
    ("TZ", "255"), ("UA", "380"), ("UG", "256"), ("US", "1"), ("UY", "598"), ("UZ", "998"),
    ("VA", "39"), ("VC", "1"), ("VE", "58"), ("VG", "1"), ("VI", "1"), ("VN", "84"),
    ("VU", "678"), ("WF", "681"), ("WS", "685"), ("XK", "383"), ("YE", "967"), ("YT", "262"),
    ("ZA", "27"), ("ZM", "260"), ("ZW", "263"),
];

#[cfg(test)]
mod tests {
    use super::*;

    /// Every rule of the module documentation, one row each: (number, country, E.164).
    const TABLE: &[(&str, Option<&str>, Option<&str>)] = &[
        // Already E.164: the number as it is (the fast path).
        ("+447700900123", None, Some("+447700900123")),
        (" +447700900123 ", Some("DE"), Some("+447700900123")),
        ("+4477009", None, Some("+4477009")),
        ("+447700900", Some("GB"), Some("+447700900")),
        // Rule 1: separators.
        ("+44 7700 900123", None, Some("+447700900123")),
        ("+1 (415) 555.0100", None, Some("+14155550100")),
        ("(+56) 9-1234-5671", None, Some("+56912345671")),
        ("+49 30/1234567", None, Some("+49301234567")),
        ("+44\u{a0}7700\u{a0}900123", None, Some("+447700900123")),
        ("  +886 912-345-678 ", None, Some("+886912345678")),
        ("+49 176 1234-5678", None, Some("+4917612345678")),
        ("+56 9 1234 5671", None, Some("+56912345671")),
        // Rule 2: international prefixes; the bracketed trunk zero.
        ("0044 7700 900123", None, Some("+447700900123")),
        ("0056912345671", None, Some("+56912345671")),
        ("0049 (30) 123.456", None, Some("+4930123456")),
        ("0039/06/12345678", None, Some("+390612345678")),
        ("+44 (0)20 7946 0101", None, Some("+442079460101")),
        ("+49 (0) 30 1234567", None, Some("+49301234567")),
        ("+39 (0)6 1234 5678", None, Some("+390612345678")),
        ("+39 06 1234 5678", None, Some("+390612345678")),
        // An international number wins over the country.
        ("+33 6 12 34 56 78", Some("+44"), Some("+33612345678")),
        ("0044 7700 900123", Some("IT"), Some("+447700900123")),
        // Rule 3: national numbers in a known country.
        ("07700 900123", Some("GB"), Some("+447700900123")),
        ("07700 900123", Some("gb"), Some("+447700900123")),
        ("7700 900-123", Some("44"), Some("+447700900123")),
        ("7700900123", Some("+44"), Some("+447700900123")),
        ("07700900123", Some("+44"), Some("+447700900123")),
        ("(415) 555.0100", Some("+1"), Some("+14155550100")),
        ("2079460101", Some("GB"), Some("+442079460101")),
        ("030/1234567", Some("DE"), Some("+49301234567")),
        ("(030) 123-4567", Some("49"), Some("+49301234567")),
        ("0912-345-678", Some("TW"), Some("+886912345678")),
        ("0912-345-678", Some("Taiwan"), Some("+886912345678")),
        (" 912345678 ", Some("TW"), Some("+886912345678")),
        ("081 234 5678", Some("thailand"), Some("+66812345678")),
        ("090-1234-5678", Some("jp"), Some("+819012345678")),
        ("0912-345-678", Some("FR"), Some("+33912345678")),
        // Italy (and the other trunk-zero countries) keep the zero.
        ("06 1234 5678", Some("IT"), Some("+390612345678")),
        ("06 1234 5678", Some("+39"), Some("+390612345678")),
        ("347 123 4567", Some("IT"), Some("+393471234567")),
        ("0549 882555", Some("SM"), Some("+3780549882555")),
        ("07 07 12 34 56", Some("CI"), Some("+2250707123456")),
        // Rule 4: not E.164.
        ("07700 900123", None, None),
        ("0912-345-678", None, None),
        ("030 1234567", None, None),
        (" 09 1234 ", None, None),
        ("56912345671", None, None),
        ("0912-345-678", Some("XX"), None),
        ("0123", Some("XX"), None),
        ("0", Some("+44"), None),
        ("+44 ext 5", None, None),
        ("+886 ext 5", None, None),
        ("+56 9 ABC", None, None),
        ("+12345", None, None),
        ("+1234567890123456", None, None),
        ("+0912345678", None, None),
        ("00", None, None),
        ("", Some("GB"), None),
        ("+49 abc", None, None),
    ];

    #[test]
    fn one_table_of_rules_for_every_vendor() {
        for (number, country, expected) in TABLE {
            assert_eq!(
                e164(number, *country).as_deref(),
                *expected,
                "{number:?} in {country:?}"
            );
            let kept = expected.map_or(number.trim(), |e| e);
            assert_eq!(
                normalize(number, *country),
                kept,
                "{number:?} in {country:?}"
            );
        }
    }

    #[test]
    fn whatsapp_ids_are_international_digits() {
        for (id, expected) in [
            ("4917612345678", Some("+4917612345678")),
            ("56912345671", Some("+56912345671")),
            ("+49 176 1234-5678", Some("+4917612345678")),
            ("0049 176 12345678", Some("+4917612345678")),
            ("0176 1234567", None),
            ("49123456789", Some("+49123456789")),
            (" 4917612345678 ", Some("+4917612345678")),
            ("004917612345678", Some("+4917612345678")),
            ("00", None),
            ("0176123456", None),
            ("1234567890123456", None),
            ("123456", None),
            ("491", None),
            ("+49 123", None),
            ("abc", None),
            ("not a number", None),
        ] {
            assert_eq!(whatsapp_e164(id).as_deref(), expected, "{id:?}");
        }
        assert_eq!(normalize_whatsapp(" abc "), "abc");
    }

    #[test]
    fn the_calling_code_table_is_sorted_upper_case_and_unique() {
        for pair in COUNTRY_CALLING_CODES.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{:?} before {:?}", pair[0], pair[1]);
        }
        for (iso, code) in COUNTRY_CALLING_CODES {
            assert!(
                iso.len() == 2 && iso.bytes().all(|b| b.is_ascii_uppercase()),
                "{iso}"
            );
            assert_eq!(calling_code(iso), Some(*code), "{iso}");
            assert_eq!(
                calling_code(&iso.to_ascii_lowercase()),
                Some(*code),
                "{iso}"
            );
        }
        for (_, iso) in COUNTRY_NAMES {
            assert!(calling_code(iso).is_some(), "{iso}");
        }
    }

    #[test]
    fn countries_are_codes_iso_codes_or_market_names() {
        assert_eq!(calling_code("Thailand"), Some("66"));
        assert_eq!(calling_code("T"), None);
        assert_eq!(calling_code("GBR"), None);
        assert_eq!(calling_code("G\u{e9}"), None);
        assert_eq!(calling_code("+44"), Some("44"));
        assert_eq!(calling_code(" 886 "), Some("886"));
        assert_eq!(calling_code("it"), Some("39"));
        assert_eq!(calling_code("Hong Kong"), Some("852"));
        assert_eq!(calling_code("XX"), None);
        assert_eq!(calling_code(""), None);
        assert_eq!(calling_code("+12345"), None);
    }
}
