//! STOP / START keywords and the confirmations, per tenant and language.
//!
//! A customer's whole message (a text, or the id or title of a button they tapped) is
//! compared with each language's keywords after [`normalize`]: upper case, accents folded,
//! punctuation and emoji dropped, spaces collapsed. So `Stop!`, ` stop ` and `STÖP` all
//! match `STOP`, but "please stop calling me at work" does not (a whole-message match avoids
//! opting out someone who merely used the word). Languages are tried in the tenant's order;
//! the first that knows the keyword gives the confirmation's language.
//!
//! Defaults exist for `en`, `de`, `es`, `fr` and `pt`. `CAAS_CAMPAIGN_CONSENT_RULES` (JSON)
//! overrides them per tenant (`"*"` for every tenant):
//!
//! ```json
//! {"acme": {"languages": ["de", "en"],
//!           "keywords": {"de": {"stop": ["STOPP", "ABMELDEN"], "start": ["START"],
//!                               "stop_reply": "Abgemeldet.", "start_reply": "Angemeldet."}},
//!           "confirm": true}}
//! ```
//!
//! A language's lists replace the defaults of that language; a reply left out keeps the
//! default; `languages` sets the order (languages not listed are not used).

use std::collections::BTreeMap;

use serde::Deserialize;

/// What a keyword asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsentAction {
    /// Stop marketing messages.
    OptOut,
    /// Receive them again.
    OptIn,
}

impl ConsentAction {
    /// `opted_out` or `opted_in`, as stored in the ledger.
    pub const fn status(self) -> &'static str {
        match self {
            ConsentAction::OptOut => "opted_out",
            ConsentAction::OptIn => "opted_in",
        }
    }
}

/// A recognised keyword.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeywordMatch {
    /// Opt out or in.
    pub action: ConsentAction,
    /// The language whose keyword matched.
    pub language: String,
    /// The normalised keyword.
    pub keyword: String,
}

/// Keywords and replies of one language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Language {
    /// Normalised opt-out keywords.
    pub stop: Vec<String>,
    /// Normalised opt-in keywords.
    pub start: Vec<String>,
    /// The confirmation of an opt-out.
    pub stop_reply: String,
    /// The confirmation of an opt-in.
    pub start_reply: String,
}

/// The rules of one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRules {
    /// Languages in the order they are tried.
    pub languages: Vec<(String, Language)>,
    /// Whether the customer gets a confirmation.
    pub confirm: bool,
}

/// Rules for every tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentRules {
    default: TenantRules,
    tenants: BTreeMap<String, TenantRules>,
}

fn language(stop: &[&str], start: &[&str], stop_reply: &str, start_reply: &str) -> Language {
    Language {
        stop: stop.iter().map(|word| normalize(word)).collect(),
        start: start.iter().map(|word| normalize(word)).collect(),
        stop_reply: stop_reply.to_string(),
        start_reply: start_reply.to_string(),
    }
}

/// The built-in languages, in their default order.
pub fn default_languages() -> Vec<(String, Language)> {
    vec![
        (
            "en".to_string(),
            language(
                &["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPT OUT", "OPTOUT", "STOP PROMOTIONS"],
                &["START", "UNSTOP", "SUBSCRIBE", "OPT IN", "OPTIN"],
                "You have been unsubscribed and will get no more marketing messages from us. Reply START to subscribe again.",
                "You are subscribed again. Reply STOP to unsubscribe at any time.",
            ),
        ),
        (
            "de".to_string(),
            language(
                &["STOPP", "ABMELDEN", "ABBESTELLEN", "ABMELDUNG", "KEINE WERBUNG"],
                &["ANMELDEN", "WIEDER ANMELDEN"],
                "Sie wurden abgemeldet und erhalten keine Werbenachrichten mehr von uns. Antworten Sie START, um sich wieder anzumelden.",
                "Sie sind wieder angemeldet. Antworten Sie STOPP, um sich jederzeit abzumelden.",
            ),
        ),
        (
            "es".to_string(),
            language(
                &["BAJA", "PARAR", "ALTO", "DETENER", "CANCELAR SUSCRIPCION", "DARSE DE BAJA"],
                &["ALTA", "SUSCRIBIR", "COMENZAR"],
                "Te has dado de baja y ya no recibirás mensajes promocionales. Responde ALTA para suscribirte de nuevo.",
                "Te has suscrito de nuevo. Responde BAJA para darte de baja cuando quieras.",
            ),
        ),
        (
            "fr".to_string(),
            language(
                &["ARRET", "DESABONNER", "DESINSCRIRE", "DESINSCRIPTION", "STOP PUB"],
                &["COMMENCER", "ABONNER", "REABONNER"],
                "Vous êtes désinscrit et ne recevrez plus de messages promotionnels. Répondez START pour vous réinscrire.",
                "Vous êtes de nouveau inscrit. Répondez STOP pour vous désinscrire à tout moment.",
            ),
        ),
        (
            "pt".to_string(),
            language(
                &["PARE", "SAIR", "CANCELAR", "DESCADASTRAR", "DESINSCREVER"],
                &["VOLTAR", "INSCREVER", "CADASTRAR"],
                "Você foi descadastrado e não receberá mais mensagens promocionais. Responda VOLTAR para se inscrever novamente.",
                "Você está inscrito novamente. Responda SAIR para cancelar quando quiser.",
            ),
        ),
    ]
}

impl Default for ConsentRules {
    fn default() -> Self {
        Self {
            default: TenantRules {
                languages: default_languages(),
                confirm: true,
            },
            tenants: BTreeMap::new(),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenant {
    languages: Option<Vec<String>>,
    #[serde(default)]
    keywords: BTreeMap<String, RawLanguage>,
    confirm: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLanguage {
    stop: Option<Vec<String>>,
    start: Option<Vec<String>>,
    stop_reply: Option<String>,
    start_reply: Option<String>,
}

fn apply(base: &TenantRules, raw: RawTenant) -> Result<TenantRules, String> {
    let mut languages: BTreeMap<String, Language> = base.languages.iter().cloned().collect();
    let mut order: Vec<String> = match &raw.languages {
        Some(order) => order.clone(),
        None => base
            .languages
            .iter()
            .map(|(code, _)| code.clone())
            .collect(),
    };
    for (code, raw_language) in raw.keywords {
        let entry = languages.entry(code.clone()).or_insert_with(|| Language {
            stop: Vec::new(),
            start: Vec::new(),
            stop_reply: String::new(),
            start_reply: String::new(),
        });
        if let Some(stop) = raw_language.stop {
            entry.stop = stop.iter().map(|word| normalize(word)).collect();
        }
        if let Some(start) = raw_language.start {
            entry.start = start.iter().map(|word| normalize(word)).collect();
        }
        if let Some(reply) = raw_language.stop_reply {
            entry.stop_reply = reply;
        }
        if let Some(reply) = raw_language.start_reply {
            entry.start_reply = reply;
        }
        if raw.languages.is_none() && !order.contains(&code) {
            order.push(code);
        }
    }
    let mut ordered = Vec::new();
    for code in order {
        let language = languages
            .get(&code)
            .ok_or_else(|| format!("language {code:?} is listed but has no keywords"))?;
        if language
            .stop
            .iter()
            .chain(&language.start)
            .any(String::is_empty)
        {
            return Err(format!("language {code:?} has an empty keyword"));
        }
        ordered.push((code, language.clone()));
    }
    Ok(TenantRules {
        languages: ordered,
        confirm: raw.confirm.unwrap_or(base.confirm),
    })
}

impl ConsentRules {
    /// Parse the JSON form (see the module docs); an empty text gives the defaults.
    pub fn parse(json: &str) -> Result<Self, String> {
        let mut rules = Self::default();
        if json.trim().is_empty() {
            return Ok(rules);
        }
        let mut raw: BTreeMap<String, RawTenant> =
            serde_json::from_str(json).map_err(|error| format!("not valid rules JSON: {error}"))?;
        if let Some(all) = raw.remove("*") {
            rules.default =
                apply(&rules.default, all).map_err(|error| format!("\"*\": {error}"))?;
        }
        for (tenant, tenant_raw) in raw {
            let tenant_rules = apply(&rules.default, tenant_raw)
                .map_err(|error| format!("tenant {tenant:?}: {error}"))?;
            rules.tenants.insert(tenant, tenant_rules);
        }
        Ok(rules)
    }

    /// The rules of `tenant`.
    pub fn tenant(&self, tenant: &str) -> &TenantRules {
        self.tenants.get(tenant).unwrap_or(&self.default)
    }

    /// The keyword a customer's message is, if it is one.
    pub fn match_text(&self, tenant: &str, text: &str) -> Option<KeywordMatch> {
        let normalized = normalize(text);
        if normalized.is_empty() {
            return None;
        }
        let rules = self.tenant(tenant);
        // Opt-out keywords first, language by language: when in doubt, STOP wins.
        for (code, language) in &rules.languages {
            if language.stop.contains(&normalized) {
                return Some(KeywordMatch {
                    action: ConsentAction::OptOut,
                    language: code.clone(),
                    keyword: normalized,
                });
            }
        }
        // Then the opt-in keywords, again language by language.
        for (code, language) in &rules.languages {
            if language.start.contains(&normalized) {
                return Some(KeywordMatch {
                    action: ConsentAction::OptIn,
                    language: code.clone(),
                    keyword: normalized,
                });
            }
        }
        None
    }

    /// The confirmation for `action` in `language`, when the tenant confirms.
    pub fn reply(&self, tenant: &str, language: &str, action: ConsentAction) -> Option<&str> {
        let rules = self.tenant(tenant);
        if !rules.confirm {
            return None;
        }
        let (_, found) = rules.languages.iter().find(|(code, _)| code == language)?;
        let reply = match action {
            ConsentAction::OptOut => &found.stop_reply,
            ConsentAction::OptIn => &found.start_reply,
        };
        (!reply.is_empty()).then_some(reply.as_str())
    }
}

/// Upper case, common accents folded (`Ä` → `A`, `ß` → `SS`), everything but letters, digits
/// and single spaces dropped.
pub fn normalize(text: &str) -> String {
    let mut output = String::with_capacity(text.len());
    let mut pending_space = false;
    for character in text.chars().flat_map(char::to_uppercase) {
        let folded: &str = match character {
            'À' | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' => "A",
            'Ç' => "C",
            'È' | 'É' | 'Ê' | 'Ë' => "E",
            'Ì' | 'Í' | 'Î' | 'Ï' => "I",
            'Ñ' => "N",
            'Ò' | 'Ó' | 'Ô' | 'Õ' | 'Ö' | 'Ø' => "O",
            'Ù' | 'Ú' | 'Û' | 'Ü' => "U",
            'Ý' | 'Ÿ' => "Y",
            'ß' | 'ẞ' => "SS",
            _ => "",
        };
        if !folded.is_empty() {
            if pending_space && !output.is_empty() {
                output.push(' ');
            }
            pending_space = false;
            output.push_str(folded);
        } else if character.is_alphanumeric() {
            if pending_space && !output.is_empty() {
                output.push(' ');
            }
            pending_space = false;
            output.push(character);
        } else if character.is_whitespace() || character == '-' || character == '_' {
            pending_space = true;
        }
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_messages_match_in_any_spelling() {
        let rules = ConsentRules::default();
        for text in [
            "STOP",
            "stop",
            " Stop! ",
            "🛑 stop 🛑",
            "Opt-out",
            "stop promotions",
        ] {
            let found = rules
                .match_text("acme", text)
                .unwrap_or_else(|| panic!("{text}"));
            assert_eq!(found.action, ConsentAction::OptOut, "{text}");
            assert_eq!(found.language, "en", "{text}");
        }
        assert_eq!(rules.match_text("acme", "please stop calling me"), None);
        assert_eq!(rules.match_text("acme", ""), None);
        let german = rules.match_text("acme", "Abmelden").unwrap();
        assert_eq!(
            (german.action, german.language.as_str()),
            (ConsentAction::OptOut, "de")
        );
        let french = rules.match_text("acme", "arrêt").unwrap();
        assert_eq!(french.language, "fr");
        let spanish = rules.match_text("acme", "Alta").unwrap();
        assert_eq!(
            (spanish.action, spanish.language.as_str()),
            (ConsentAction::OptIn, "es")
        );
        let start = rules.match_text("acme", "start").unwrap();
        assert_eq!(
            (start.action, start.language.as_str()),
            (ConsentAction::OptIn, "en")
        );
        assert!(rules
            .reply("acme", "de", ConsentAction::OptOut)
            .unwrap()
            .contains("abgemeldet"));
    }

    #[test]
    fn tenants_override_languages_order_and_replies() {
        let rules = ConsentRules::parse(
            r#"{"acme": {"languages": ["de", "en"],
                         "keywords": {"de": {"stop": ["Stopp", "Tschüss"], "stop_reply": "Tschüss!"}},
                         "confirm": true},
                "quiet": {"confirm": false},
                "*": {"keywords": {"it": {"stop": ["BASTA"], "start": ["INIZIA"],
                                          "stop_reply": "Ciao", "start_reply": "Benvenuto"}}}}"#,
        )
        .unwrap();
        let found = rules.match_text("acme", "tschuss").unwrap();
        assert_eq!(found.language, "de");
        assert_eq!(
            rules.reply("acme", "de", ConsentAction::OptOut),
            Some("Tschüss!")
        );
        assert!(
            rules.match_text("acme", "abmelden").is_none(),
            "the list was replaced"
        );
        assert!(
            rules.match_text("acme", "baja").is_none(),
            "spanish is not in acme's order"
        );
        assert_eq!(rules.match_text("other", "basta").unwrap().language, "it");
        assert!(rules.match_text("quiet", "stop").is_some());
        assert_eq!(rules.reply("quiet", "en", ConsentAction::OptOut), None);
        let error = ConsentRules::parse(r#"{"acme": {"languages": ["xx"]}}"#).unwrap_err();
        assert!(error.contains("xx"), "{error}");
        let error = ConsentRules::parse(r#"{"acme": {"bogus": 1}}"#).unwrap_err();
        assert!(error.contains("bogus"), "{error}");
    }

    #[test]
    fn normalisation_folds_accents_and_drops_symbols() {
        assert_eq!(normalize("  Désinscrire!! "), "DESINSCRIRE");
        assert_eq!(normalize("opt---out"), "OPT OUT");
        assert_eq!(normalize("Straße"), "STRASSE");
    }
}
