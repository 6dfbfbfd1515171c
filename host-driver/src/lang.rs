//! The languages users read: Simplified Chinese (the user manual's) and English, chosen by
//! Accept-Language. Shared by the portal and the agent.

/// The languages ukey speaks to users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Lang {
    #[serde(rename = "zh-CN")]
    Zh,
    #[serde(rename = "en")]
    En,
}

impl Lang {
    /// Pick from an Accept-Language header: the highest-weighted language we speak; Chinese
    /// when the header is missing or names nothing we speak (the system's home language).
    pub fn from_accept_language(header: Option<&str>) -> Lang {
        let Some(h) = header else { return Lang::Zh };
        let mut best: Option<(f32, usize, Lang)> = None;
        for (i, part) in h.split(',').enumerate() {
            let mut it = part.trim().split(';');
            let tag = it.next().unwrap_or("").trim().to_ascii_lowercase();
            let q =
                it.find_map(|p| p.trim().strip_prefix("q=").and_then(|v| v.trim().parse::<f32>().ok())).unwrap_or(1.0);
            let lang = if tag == "zh" || tag.starts_with("zh-") {
                Lang::Zh
            } else if tag == "en" || tag.starts_with("en-") {
                Lang::En
            } else {
                continue;
            };
            // Highest q wins; on a tie, the one listed first.
            if q > 0.0 && best.is_none_or(|(bq, bi, _)| q > bq || (q == bq && i < bi)) {
                best = Some((q, i, lang));
            }
        }
        best.map(|(_, _, l)| l).unwrap_or(Lang::Zh)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_best_language_we_speak() {
        assert_eq!(Lang::from_accept_language(None), Lang::Zh);
        assert_eq!(Lang::from_accept_language(Some("en-US,en;q=0.9")), Lang::En);
        assert_eq!(Lang::from_accept_language(Some("zh-CN,zh;q=0.9,en;q=0.8")), Lang::Zh);
        assert_eq!(Lang::from_accept_language(Some("fr-FR, en;q=0.5, zh;q=0.4")), Lang::En);
        assert_eq!(Lang::from_accept_language(Some("de")), Lang::Zh, "nothing we speak: home language");
        assert_eq!(Lang::from_accept_language(Some("en;q=0, zh-TW;q=0.1")), Lang::Zh, "q=0 means not wanted");
        assert_eq!(Lang::from_accept_language(Some("EN-gb")), Lang::En);
    }
}
