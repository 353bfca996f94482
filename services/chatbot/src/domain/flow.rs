//! Flow files: one YAML (or JSON) file per tenant, parsed and validated into [`TenantFlows`].
//!
//! ```yaml
//! tenant: demo                 # optional, defaults to the file name without extension
//! idle_expiry: 30m             # a session untouched this long starts over (default 30m)
//! fallback: "Sorry, I did not get that. Type menu to see what I can do."
//! flows:
//!   - id: main
//!     triggers:                # any one starts the flow
//!       - first_message: true  # the first message of a session
//!       - keyword: [hi, hello, menu]   # the whole message, case-insensitive
//!       - regex: "(?i)^order\\b"
//!       - button: main_menu    # a button, list row or RCS suggestion id
//!       - keyword: menu
//!         anytime: true        # also interrupts a flow that waits for an answer
//!     steps:
//!       - id: menu
//!         type: menu           # send a menu and wait for a choice
//!         text: "Hi {{customer.name}}! How can we help?"
//!         options:
//!           - { id: track, title: Track my order, next: ask_order }
//!           - { id: human, title: Talk to a person, next: handoff }
//!       - id: ask_order
//!         type: ask            # ask, validate, store the answer in a variable
//!         text: Your order number, please (6 digits).
//!         variable: order_number
//!         validate: { regex: "^[0-9]{6}$", error: An order number has 6 digits. }
//!       - id: route
//!         type: branch         # jump by a variable
//!         on: order_number
//!         cases: [ { regex: "^9", next: delayed } ]
//!         default: on_time
//!       - { id: on_time, type: send, text: "Order {{order_number}} arrives tomorrow.", next: more }
//!       - { id: delayed, type: send, text: "Order {{order_number}} is delayed.", next: more }
//!       - id: more
//!         type: wait           # wait for any reply, or time out
//!         text: Anything else? Just write.
//!         timeout: 10m
//!         on_timeout: bye
//!         next: menu
//!       - { id: bye, type: end, text: Thanks, goodbye! }
//!       - { id: handoff, type: handoff, text: A colleague will answer shortly., reason: asked for a human }
//! ```
//!
//! Step types: `send` (text, then on), `menu` (text and up to 10 options; waits), `ask`
//! (text, `variable`, optional `validate`; waits), `branch` (`on` a variable, `cases` with
//! `equals`, `one_of` or `regex`, `default`), `wait` (optional text, `timeout`, `on_timeout`;
//! waits), `handoff` (optional text, `reason`; hands the conversation to a human), `end`
//! (optional text). `next` names a step or `end`; without it the following step runs.
//! `menu` and `ask` may also have `timeout` and `on_timeout`. Texts may use `{{variable}}`,
//! `{{customer.name}}`, `{{customer.id}}` and `{{message.text}}`.
//!
//! Validation refuses, naming file, flow and step: unknown fields and step types, duplicate
//! ids, `next` targets that do not exist, menus without options or with more than 10, titles
//! over 24 characters, invalid regular expressions, unparsable durations, variables used in a
//! text that no step sets, and loops that never wait for the customer.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use regex::Regex;
use serde::Deserialize;

/// Variables every text may use.
pub const BUILTIN_VARIABLES: [&str; 3] = ["customer.name", "customer.id", "message.text"];

/// The default idle expiry: 30 minutes.
pub const DEFAULT_IDLE_EXPIRY_MS: i64 = 30 * 60 * 1000;

/// A flow file that cannot be used; the message names the file and, when it can, the flow
/// and step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {message}")]
pub struct FlowError {
    /// The file, as given to [`parse`].
    pub file: String,
    /// What is wrong, e.g. `flow "main", step "ask": next "nowhere" is not a step of this flow`.
    pub message: String,
}

/// Where a step goes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The step at this index of the flow.
    Step(usize),
    /// The flow ends.
    End,
}

/// How a menu is presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MenuStyle {
    /// Buttons for up to 3 short options, else a list (WhatsApp); suggestions on RCS.
    Auto,
    /// Reply buttons (at most 3 options, titles up to 20 characters).
    Buttons,
    /// A list menu.
    List,
}

/// One choice of a menu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuOption {
    /// Its id (comes back as the reply id).
    pub id: String,
    /// Visible text.
    pub title: String,
    /// Secondary text (list rows).
    pub description: Option<String>,
    /// Where the choice leads (`None`: the step after the menu).
    pub next: Option<Next>,
}

/// A timeout of a waiting step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeout {
    /// After how long, in milliseconds.
    pub after_ms: i64,
    /// Where the flow goes when it fires.
    pub next: Next,
}

/// A branch condition.
#[derive(Debug, Clone)]
pub enum Condition {
    /// The value equals this (case-insensitive, trimmed).
    Equals(String),
    /// The value is one of these (case-insensitive, trimmed).
    OneOf(Vec<String>),
    /// The value matches.
    Regex(Regex),
}

/// What a step does.
#[derive(Debug, Clone)]
pub enum Action {
    /// Send a text.
    Send {
        /// The text, with variables.
        text: String,
    },
    /// Send a menu and wait for a choice.
    Menu {
        /// The text above the options.
        text: String,
        /// Header text.
        header: Option<String>,
        /// Footer text.
        footer: Option<String>,
        /// Label of the button opening a list.
        button_label: Option<String>,
        /// Presentation.
        style: MenuStyle,
        /// The options.
        options: Vec<MenuOption>,
        /// Stores the chosen option's id.
        variable: Option<String>,
        /// Gives up waiting.
        timeout: Option<Timeout>,
    },
    /// Ask a question and store the answer.
    Ask {
        /// The question.
        text: String,
        /// Where the answer goes.
        variable: String,
        /// The answer must match, else `error` is sent and the question stays open.
        validate: Option<(Regex, String)>,
        /// Gives up waiting.
        timeout: Option<Timeout>,
    },
    /// Jump by the value of a variable.
    Branch {
        /// The variable.
        on: String,
        /// The first matching case wins.
        cases: Vec<(Condition, Next)>,
        /// When no case matches.
        default: Next,
    },
    /// Wait for any reply or a timeout.
    Wait {
        /// A prompt, if any.
        text: Option<String>,
        /// Stores the reply.
        variable: Option<String>,
        /// When waiting ends without a reply.
        timeout: Timeout,
    },
    /// Hand the conversation to a human.
    Handoff {
        /// A message to the customer.
        text: Option<String>,
        /// Why, for the operator.
        reason: String,
    },
    /// End the flow.
    End {
        /// A last message.
        text: Option<String>,
    },
}

impl Action {
    /// Whether the flow stops at this step until the customer answers.
    pub fn waits(&self) -> bool {
        matches!(
            self,
            Action::Menu { .. } | Action::Ask { .. } | Action::Wait { .. }
        )
    }

    /// The timeout of a waiting step.
    pub fn timeout(&self) -> Option<Timeout> {
        match self {
            Action::Menu { timeout, .. } | Action::Ask { timeout, .. } => *timeout,
            Action::Wait { timeout, .. } => Some(*timeout),
            _ => None,
        }
    }
}

/// One step.
#[derive(Debug, Clone)]
pub struct Step {
    /// Its id, unique in the flow.
    pub id: String,
    /// What it does.
    pub action: Action,
    /// Where the flow goes after it (for waiting steps: after a valid answer).
    pub next: Next,
}

/// What starts a flow.
#[derive(Debug, Clone)]
pub enum Trigger {
    /// The whole message is one of these words (lower-cased, trimmed).
    Keyword {
        /// The words.
        words: Vec<String>,
        /// Also interrupts a waiting flow.
        anytime: bool,
    },
    /// The message matches.
    Regex {
        /// The expression.
        regex: Regex,
        /// Also interrupts a waiting flow.
        anytime: bool,
    },
    /// A button, list row or suggestion with this id was chosen.
    Button {
        /// The id.
        id: String,
        /// Also interrupts a waiting flow.
        anytime: bool,
    },
    /// The first message of a session.
    FirstMessage,
}

impl Trigger {
    /// Whether the trigger interrupts a waiting flow.
    pub fn anytime(&self) -> bool {
        match self {
            Trigger::Keyword { anytime, .. }
            | Trigger::Regex { anytime, .. }
            | Trigger::Button { anytime, .. } => *anytime,
            Trigger::FirstMessage => false,
        }
    }
}

/// One flow.
#[derive(Debug, Clone)]
pub struct Flow {
    /// Its id, unique in the file.
    pub id: String,
    /// What starts it.
    pub triggers: Vec<Trigger>,
    /// Its steps, in order.
    pub steps: Vec<Step>,
}

impl Flow {
    /// The index of step `id`.
    pub fn step_index(&self, id: &str) -> Option<usize> {
        self.steps.iter().position(|step| step.id == id)
    }
}

/// Everything a tenant's bot does.
#[derive(Debug, Clone)]
pub struct TenantFlows {
    /// The tenant.
    pub tenant: String,
    /// A session untouched this long starts over, in milliseconds.
    pub idle_expiry_ms: i64,
    /// Sent when nothing matches.
    pub fallback: Option<String>,
    /// The flows, in file order (the first matching trigger wins).
    pub flows: Vec<Flow>,
}

impl TenantFlows {
    /// The flow `id`.
    pub fn flow(&self, id: &str) -> Option<&Flow> {
        self.flows.iter().find(|flow| flow.id == id)
    }
}

// ------------------------------------------------------------------ raw file format ----------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    tenant: Option<String>,
    idle_expiry: Option<String>,
    fallback: Option<String>,
    flows: Vec<RawFlow>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFlow {
    id: String,
    #[serde(default)]
    triggers: Vec<RawTrigger>,
    steps: Vec<RawStep>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrigger {
    keyword: Option<OneOrMany>,
    regex: Option<String>,
    button: Option<String>,
    first_message: Option<bool>,
    #[serde(default)]
    anytime: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOption {
    id: String,
    title: String,
    description: Option<String>,
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawValidate {
    regex: String,
    error: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    equals: Option<String>,
    one_of: Option<Vec<String>>,
    regex: Option<String>,
    next: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    text: Option<String>,
    header: Option<String>,
    footer: Option<String>,
    button_label: Option<String>,
    style: Option<String>,
    options: Option<Vec<RawOption>>,
    variable: Option<String>,
    validate: Option<RawValidate>,
    on: Option<String>,
    cases: Option<Vec<RawCase>>,
    default: Option<String>,
    timeout: Option<String>,
    on_timeout: Option<String>,
    reason: Option<String>,
    next: Option<String>,
}

/// A duration such as `500ms`, `30s`, `5m`, `2h`, `1d`, or a plain number of seconds, in ms.
pub fn parse_duration(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text
        .find(|character: char| !character.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().ok()?;
    let factor = match unit.trim() {
        "" | "s" => 1_000,
        "ms" => 1,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    number.checked_mul(factor).filter(|millis| *millis > 0)
}

/// The `{{name}}` variables a text uses.
pub fn variables_in(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        found.push(after[..end].trim().to_string());
        rest = &after[end + 2..];
    }
    found
}

struct Checker<'a> {
    file: &'a str,
}

impl Checker<'_> {
    fn error(&self, message: impl Into<String>) -> FlowError {
        FlowError {
            file: self.file.to_string(),
            message: message.into(),
        }
    }

    fn at(&self, flow: &str, step: &str, message: impl std::fmt::Display) -> FlowError {
        self.error(format!("flow {flow:?}, step {step:?}: {message}"))
    }
}

fn compile_regex(text: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(text)
        .size_limit(1 << 20)
        .build()
        .map_err(|error| format!("{text:?} is not a valid regular expression: {error}"))
}

/// Parse and validate the flow file `file` (its name, for messages and the default tenant).
pub fn parse(file: &str, text: &str) -> Result<TenantFlows, FlowError> {
    let checker = Checker { file };
    let raw: RawFile = serde_yaml::from_str(text)
        .map_err(|error| checker.error(format!("not a valid flow file: {error}")))?;
    let default_tenant = std::path::Path::new(file)
        .file_stem()
        .map(|stem| stem.to_string_lossy().to_string())
        .unwrap_or_default();
    let tenant = raw.tenant.clone().unwrap_or(default_tenant);
    if tenant.is_empty() || tenant.contains(':') {
        return Err(checker.error(format!(
            "tenant {tenant:?} must be non-empty and without ':'"
        )));
    }
    let idle_expiry_ms = match &raw.idle_expiry {
        None => DEFAULT_IDLE_EXPIRY_MS,
        Some(text) => parse_duration(text).ok_or_else(|| {
            checker.error(format!(
                "idle_expiry {text:?} is not a duration like 30m, 2h or 90s"
            ))
        })?,
    };
    if raw.flows.is_empty() {
        return Err(checker.error("flows is empty; define at least one flow"));
    }
    // Variables any step sets; texts may only use these and the built-ins.
    let mut settable: BTreeSet<String> = BUILTIN_VARIABLES
        .iter()
        .map(|name| name.to_string())
        .collect();
    for flow in &raw.flows {
        for step in &flow.steps {
            if let Some(variable) = &step.variable {
                settable.insert(variable.clone());
            }
        }
    }
    let mut flow_ids = BTreeSet::new();
    let mut flows = Vec::new();
    for raw_flow in &raw.flows {
        if raw_flow.id.trim().is_empty() {
            return Err(checker.error("a flow has an empty id"));
        }
        if !flow_ids.insert(raw_flow.id.clone()) {
            return Err(checker.error(format!("flow {:?} is defined twice", raw_flow.id)));
        }
        flows.push(compile_flow(&checker, raw_flow, &settable)?);
    }
    if let Some(fallback) = &raw.fallback {
        check_variables(&settable, fallback)
            .map_err(|message| checker.error(format!("fallback: {message}")))?;
    }
    Ok(TenantFlows {
        tenant,
        idle_expiry_ms,
        fallback: raw.fallback.filter(|text| !text.trim().is_empty()),
        flows,
    })
}

fn check_variables(settable: &BTreeSet<String>, text: &str) -> Result<(), String> {
    for variable in variables_in(text) {
        if !settable.contains(&variable) {
            return Err(format!(
                "the text uses {{{{{variable}}}}}, which no step sets (built-ins: {})",
                BUILTIN_VARIABLES.join(", ")
            ));
        }
    }
    Ok(())
}

fn compile_flow(
    checker: &Checker<'_>,
    raw: &RawFlow,
    settable: &BTreeSet<String>,
) -> Result<Flow, FlowError> {
    let flow_id = raw.id.as_str();
    if raw.steps.is_empty() {
        return Err(checker.error(format!("flow {flow_id:?} has no steps")));
    }
    let mut indexes: HashMap<&str, usize> = HashMap::new();
    for (index, step) in raw.steps.iter().enumerate() {
        if step.id.trim().is_empty() || step.id == "end" {
            return Err(checker.error(format!(
                "flow {flow_id:?}, step {}: a step needs an id other than \"end\"",
                index + 1
            )));
        }
        if indexes.insert(step.id.as_str(), index).is_some() {
            return Err(checker.at(flow_id, &step.id, "this step id is used twice in the flow"));
        }
    }
    let resolve = |step: &str, field: &str, target: &str| -> Result<Next, FlowError> {
        if target == "end" {
            return Ok(Next::End);
        }
        indexes
            .get(target)
            .map(|index| Next::Step(*index))
            .ok_or_else(|| {
                checker.at(
                    flow_id,
                    step,
                    format!("{field} {target:?} is not a step of this flow (or \"end\")"),
                )
            })
    };
    let mut triggers = Vec::new();
    for (index, trigger) in raw.triggers.iter().enumerate() {
        let place = format!("flow {flow_id:?}, trigger {}", index + 1);
        let given = [
            trigger.keyword.is_some(),
            trigger.regex.is_some(),
            trigger.button.is_some(),
            trigger.first_message.is_some(),
        ]
        .iter()
        .filter(|given| **given)
        .count();
        if given != 1 {
            return Err(checker.error(format!(
                "{place}: give exactly one of keyword, regex, button, first_message"
            )));
        }
        let compiled = if let Some(keyword) = &trigger.keyword {
            let words: Vec<String> = match keyword {
                OneOrMany::One(word) => vec![word.clone()],
                OneOrMany::Many(words) => words.clone(),
            }
            .iter()
            .map(|word| normalise(word))
            .filter(|word| !word.is_empty())
            .collect();
            if words.is_empty() {
                return Err(checker.error(format!("{place}: keyword needs at least one word")));
            }
            Trigger::Keyword {
                words,
                anytime: trigger.anytime,
            }
        } else if let Some(regex) = &trigger.regex {
            Trigger::Regex {
                regex: compile_regex(regex)
                    .map_err(|message| checker.error(format!("{place}: {message}")))?,
                anytime: trigger.anytime,
            }
        } else if let Some(button) = &trigger.button {
            Trigger::Button {
                id: button.clone(),
                anytime: trigger.anytime,
            }
        } else if trigger.first_message == Some(true) {
            if trigger.anytime {
                return Err(checker.error(format!("{place}: first_message cannot be anytime")));
            }
            Trigger::FirstMessage
        } else {
            return Err(checker.error(format!(
                "{place}: first_message: false triggers nothing; remove it"
            )));
        };
        triggers.push(compiled);
    }
    let mut steps = Vec::new();
    for (index, raw_step) in raw.steps.iter().enumerate() {
        let id = raw_step.id.as_str();
        let at = |message: String| checker.at(flow_id, id, message);
        let default_next = if index + 1 < raw.steps.len() {
            Next::Step(index + 1)
        } else {
            Next::End
        };
        let next = match &raw_step.next {
            Some(target) => resolve(id, "next", target)?,
            None => default_next,
        };
        let kind = raw_step.kind.as_str();
        // Fields that only some step types take: refuse them elsewhere, so typos show.
        let allowed: &[&str] = match kind {
            "send" => &["text"],
            "menu" => &[
                "text",
                "header",
                "footer",
                "button_label",
                "style",
                "options",
                "variable",
                "timeout",
                "on_timeout",
            ],
            "ask" => &["text", "variable", "validate", "timeout", "on_timeout"],
            "branch" => &["on", "cases", "default"],
            "wait" => &["text", "variable", "timeout", "on_timeout"],
            "handoff" => &["text", "reason"],
            "end" => &["text"],
            other => {
                return Err(at(format!(
                    "type {other:?} is not one of send, menu, ask, branch, wait, handoff, end"
                )))
            }
        };
        let present: [(&str, bool); 14] = [
            ("text", raw_step.text.is_some()),
            ("header", raw_step.header.is_some()),
            ("footer", raw_step.footer.is_some()),
            ("button_label", raw_step.button_label.is_some()),
            ("style", raw_step.style.is_some()),
            ("options", raw_step.options.is_some()),
            ("variable", raw_step.variable.is_some()),
            ("validate", raw_step.validate.is_some()),
            ("on", raw_step.on.is_some()),
            ("cases", raw_step.cases.is_some()),
            ("default", raw_step.default.is_some()),
            ("timeout", raw_step.timeout.is_some()),
            ("on_timeout", raw_step.on_timeout.is_some()),
            ("reason", raw_step.reason.is_some()),
        ];
        for (field, is_present) in present {
            if is_present && !allowed.contains(&field) {
                return Err(at(format!(
                    "a {kind} step takes no {field} (it takes: {})",
                    allowed.join(", ")
                )));
            }
        }
        if kind == "branch" && raw_step.next.is_some() {
            return Err(at(
                "a branch step takes no next; use cases and default".to_string()
            ));
        }
        for text in [&raw_step.text, &raw_step.header, &raw_step.footer]
            .into_iter()
            .flatten()
        {
            check_variables(settable, text).map_err(at)?;
        }
        let required_text = || {
            raw_step
                .text
                .clone()
                .filter(|text| !text.trim().is_empty())
                .ok_or_else(|| at(format!("a {kind} step needs a text")))
        };
        let timeout = match (&raw_step.timeout, &raw_step.on_timeout) {
            (None, None) => None,
            (Some(text), on_timeout) => {
                let after_ms = parse_duration(text).ok_or_else(|| {
                    at(format!(
                        "timeout {text:?} is not a duration like 30s, 5m or 2h"
                    ))
                })?;
                let target = on_timeout.as_deref().ok_or_else(|| {
                    at("timeout needs on_timeout (a step id or \"end\")".to_string())
                })?;
                Some(Timeout {
                    after_ms,
                    next: resolve(id, "on_timeout", target)?,
                })
            }
            (None, Some(_)) => return Err(at("on_timeout needs a timeout".to_string())),
        };
        let action = match kind {
            "send" => Action::Send {
                text: required_text()?,
            },
            "menu" => {
                let raw_options = raw_step
                    .options
                    .as_ref()
                    .filter(|options| !options.is_empty())
                    .ok_or_else(|| at("a menu needs options".to_string()))?;
                if raw_options.len() > 10 {
                    return Err(at(format!(
                        "a menu has at most 10 options, this one has {}",
                        raw_options.len()
                    )));
                }
                let style = match raw_step.style.as_deref().unwrap_or("auto") {
                    "auto" => MenuStyle::Auto,
                    "buttons" => MenuStyle::Buttons,
                    "list" => MenuStyle::List,
                    other => {
                        return Err(at(format!("style {other:?} is not auto, buttons or list")))
                    }
                };
                let mut option_ids = BTreeSet::new();
                let mut options = Vec::new();
                for option in raw_options {
                    if option.id.trim().is_empty() || !option_ids.insert(option.id.clone()) {
                        return Err(at(format!(
                            "option id {:?} is empty or used twice",
                            option.id
                        )));
                    }
                    let title_length = option.title.chars().count();
                    let limit = if style == MenuStyle::Buttons { 20 } else { 24 };
                    if title_length == 0 || title_length > limit {
                        return Err(at(format!(
                            "option {:?}: a title needs 1 to {limit} characters, {:?} has {title_length}",
                            option.id, option.title
                        )));
                    }
                    if option
                        .description
                        .as_ref()
                        .is_some_and(|description| description.chars().count() > 72)
                    {
                        return Err(at(format!(
                            "option {:?}: a description has at most 72 characters",
                            option.id
                        )));
                    }
                    let option_next = option
                        .next
                        .as_deref()
                        .map(|target| resolve(id, &format!("option {:?} next", option.id), target))
                        .transpose()?;
                    options.push(MenuOption {
                        id: option.id.clone(),
                        title: option.title.clone(),
                        description: option.description.clone(),
                        next: option_next,
                    });
                }
                if style == MenuStyle::Buttons && options.len() > 3 {
                    return Err(at(format!(
                        "style buttons allows at most 3 options, this menu has {}",
                        options.len()
                    )));
                }
                Action::Menu {
                    text: required_text()?,
                    header: raw_step.header.clone(),
                    footer: raw_step.footer.clone(),
                    button_label: raw_step.button_label.clone(),
                    style,
                    options,
                    variable: raw_step.variable.clone(),
                    timeout,
                }
            }
            "ask" => {
                let variable = raw_step
                    .variable
                    .clone()
                    .filter(|name| !name.trim().is_empty())
                    .ok_or_else(|| at("an ask step needs a variable".to_string()))?;
                let validate = match &raw_step.validate {
                    None => None,
                    Some(validate) => Some((
                        compile_regex(&validate.regex)
                            .map_err(|message| at(format!("validate.regex {message}")))?,
                        validate.error.clone(),
                    )),
                };
                Action::Ask {
                    text: required_text()?,
                    variable,
                    validate,
                    timeout,
                }
            }
            "branch" => {
                let on = raw_step
                    .on
                    .clone()
                    .ok_or_else(|| at("a branch needs on (a variable)".to_string()))?;
                if !settable.contains(&on) {
                    return Err(at(format!("on {on:?} is a variable no step sets")));
                }
                let default = resolve(
                    id,
                    "default",
                    raw_step
                        .default
                        .as_deref()
                        .ok_or_else(|| at("a branch needs a default".to_string()))?,
                )?;
                let mut cases = Vec::new();
                for (case_index, case) in raw_step.cases.iter().flatten().enumerate() {
                    let given = [
                        case.equals.is_some(),
                        case.one_of.is_some(),
                        case.regex.is_some(),
                    ]
                    .iter()
                    .filter(|given| **given)
                    .count();
                    if given != 1 {
                        return Err(at(format!(
                            "case {}: give exactly one of equals, one_of, regex",
                            case_index + 1
                        )));
                    }
                    let condition =
                        if let Some(value) = &case.equals {
                            Condition::Equals(normalise(value))
                        } else if let Some(values) = &case.one_of {
                            Condition::OneOf(values.iter().map(|value| normalise(value)).collect())
                        } else {
                            let text = case.regex.as_deref().unwrap_or_default();
                            Condition::Regex(compile_regex(text).map_err(|message| {
                                at(format!("case {}: {message}", case_index + 1))
                            })?)
                        };
                    cases.push((
                        condition,
                        resolve(id, &format!("case {} next", case_index + 1), &case.next)?,
                    ));
                }
                Action::Branch { on, cases, default }
            }
            "wait" => Action::Wait {
                text: raw_step.text.clone(),
                variable: raw_step.variable.clone(),
                timeout: timeout
                    .ok_or_else(|| at("a wait step needs timeout and on_timeout".to_string()))?,
            },
            "handoff" => Action::Handoff {
                text: raw_step.text.clone(),
                reason: raw_step
                    .reason
                    .clone()
                    .unwrap_or_else(|| "the bot handed the conversation over".to_string()),
            },
            _ => Action::End {
                text: raw_step.text.clone(),
            },
        };
        steps.push(Step {
            id: id.to_string(),
            action,
            next,
        });
    }
    let flow = Flow {
        id: flow_id.to_string(),
        triggers,
        steps,
    };
    check_no_busy_loops(checker, &flow)?;
    Ok(flow)
}

/// Refuse cycles of steps that never wait: they would send forever.
fn check_no_busy_loops(checker: &Checker<'_>, flow: &Flow) -> Result<(), FlowError> {
    let edges = |step: &Step| -> Vec<usize> {
        if step.action.waits() {
            return Vec::new();
        }
        let mut targets = vec![step.next];
        if let Action::Branch { cases, default, .. } = &step.action {
            targets = cases.iter().map(|(_, next)| *next).collect();
            targets.push(*default);
        }
        targets
            .into_iter()
            .filter_map(|next| match next {
                Next::Step(index) => Some(index),
                Next::End => None,
            })
            .collect()
    };
    // Depth-first search for a cycle; 0 = new, 1 = on the path, 2 = done.
    let mut marks = vec![0u8; flow.steps.len()];
    fn visit(
        index: usize,
        flow: &Flow,
        marks: &mut [u8],
        edges: &dyn Fn(&Step) -> Vec<usize>,
    ) -> Option<usize> {
        marks[index] = 1;
        for target in edges(&flow.steps[index]) {
            match marks[target] {
                1 => return Some(target),
                0 => {
                    if let Some(found) = visit(target, flow, marks, edges) {
                        return Some(found);
                    }
                }
                _ => {}
            }
        }
        marks[index] = 2;
        None
    }
    for start in 0..flow.steps.len() {
        if marks[start] == 0 {
            if let Some(index) = visit(start, flow, &mut marks, &edges) {
                return Err(checker.at(
                    &flow.id,
                    &flow.steps[index].id,
                    "this step is on a loop that never waits for the customer; add a menu, ask or wait step to the loop",
                ));
            }
        }
    }
    Ok(())
}

/// Lower-case, trimmed, trailing punctuation removed: how keywords and answers compare.
pub fn normalise(text: &str) -> String {
    text.trim()
        .trim_end_matches(['!', '?', '.', ','])
        .trim()
        .to_lowercase()
}

/// Keeps the per-file summary the `/flows` endpoint shows.
pub fn summary(flows: &TenantFlows) -> BTreeMap<String, Vec<String>> {
    flows
        .flows
        .iter()
        .map(|flow| {
            (
                flow.id.clone(),
                flow.steps.iter().map(|step| step.id.clone()).collect(),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../flows/demo.yaml");

    #[test]
    fn the_shipped_demo_flow_is_valid() {
        let flows = parse("flows/demo.yaml", SHIPPED).unwrap();
        assert_eq!(flows.tenant, "demo");
        assert!(!flows.flows.is_empty());
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30m"), Some(1_800_000));
        assert_eq!(parse_duration("90"), Some(90_000));
        assert_eq!(parse_duration("250ms"), Some(250));
        assert_eq!(parse_duration("1d"), Some(86_400_000));
        assert_eq!(parse_duration("0s"), None);
        assert_eq!(parse_duration("soon"), None);
        assert_eq!(parse_duration("5 weeks"), None);
    }

    #[test]
    fn variables_are_found() {
        assert_eq!(
            variables_in("Hi {{ customer.name }}, order {{order}}!"),
            ["customer.name", "order"]
        );
        assert!(variables_in("no {{ end").is_empty());
    }

    fn error_of(text: &str) -> String {
        parse("flows/acme.yaml", text).unwrap_err().to_string()
    }

    #[test]
    fn errors_name_the_file_flow_and_step() {
        let cases = [
            (
                "flows:\n  - id: main\n    steps:\n      - { id: ask_order, type: ask, text: Number?, variable: n, next: nowhere }\n",
                "step \"ask_order\": next \"nowhere\" is not a step",
            ),
            ("flows:\n  - id: main\n    steps:\n      - { id: a, type: dance }\n", "step \"a\": type \"dance\""),
            ("flows:\n  - id: main\n    steps:\n      - { id: a, type: send }\n", "step \"a\": a send step needs a text"),
            ("flows:\n  - id: main\n    steps:\n      - { id: a, type: send, text: x, options: [] }\n", "step \"a\": a send step takes no options"),
            ("flows:\n  - id: main\n    steps:\n      - { id: a, type: send, text: \"Hi {{nme}}\" }\n", "step \"a\": the text uses {{nme}}"),
            ("flows:\n  - id: main\n    steps:\n      - { id: a, type: ask, text: x, variable: v, validate: { regex: \"(\", error: e } }\n", "step \"a\": validate.regex"),
            ("flows:\n  - id: main\n    steps:\n      - { id: a, type: menu, text: x, options: [] }\n", "step \"a\": a menu needs options"),
            ("flows:\n  - id: main\n    steps:\n      - { id: a, type: menu, text: x, options: [{ id: o, title: \"This title is far too long\" }] }\n", "title needs 1 to 24"),
            ("flows:\n  - id: main\n    steps:\n      - { id: a, type: wait, timeout: 5m }\n", "timeout needs on_timeout"),
            ("flows:\n  - id: main\n    steps:\n      - { id: a, type: send, text: x }\n      - { id: a, type: end }\n", "step \"a\": this step id is used twice"),
            ("flows:\n  - id: main\n    steps:\n      - { id: a, type: send, text: x, next: b }\n      - { id: b, type: send, text: y, next: a }\n", "never waits"),
            ("flows:\n  - id: main\n    steps:\n      - { id: a, type: send, txt: x }\n", "unknown field `txt`"),
            ("flows:\n  - id: main\n    triggers: [ { keyword: hi, regex: x } ]\n    steps:\n      - { id: a, type: end }\n", "trigger 1: give exactly one"),
            ("idle_expiry: soon\nflows:\n  - id: main\n    steps:\n      - { id: a, type: end }\n", "idle_expiry"),
            ("flows: []\n", "flows is empty"),
        ];
        for (text, needle) in cases {
            let message = error_of(text);
            assert!(message.starts_with("flows/acme.yaml: "), "{message}");
            assert!(
                message.contains(needle),
                "expected {needle:?} in: {message}"
            );
        }
    }

    #[test]
    fn json_files_parse_too_and_the_tenant_defaults_to_the_file_name() {
        let flows = parse(
            "flows/acme.json",
            r#"{"flows":[{"id":"main","triggers":[{"keyword":"hi"}],"steps":[{"id":"a","type":"send","text":"Hello"}]}]}"#,
        )
        .unwrap();
        assert_eq!(flows.tenant, "acme");
        assert_eq!(flows.idle_expiry_ms, DEFAULT_IDLE_EXPIRY_MS);
    }
}
