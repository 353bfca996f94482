//! The flow engine: `decide(flows, session, event)` → replies, a handoff, the new session.
//! Pure: the time is the event's, nothing is read or written, so the same event on the same
//! session always gives the same answer (which is what makes redelivery safe: the service
//! derives command ids from the event and the reply's position).
//!
//! A customer's message is handled in this order:
//! 1. already applied (its id is in the session) → nothing;
//! 2. a human has the conversation → nothing (the bot is silent until released);
//! 3. the session was idle longer than the tenant's `idle_expiry` → it starts over (the
//!    message counts as a first message, variables are forgotten);
//! 4. an `anytime` trigger matches → its flow starts;
//! 5. a flow waits for an answer → the waiting step takes it (a menu choice, an answer that
//!    passes validation, any reply to a wait); an answer it cannot use is given to the other
//!    triggers, and failing those the step asks again;
//! 6. a trigger matches (`first_message` only on a first message) → its flow starts;
//! 7. otherwise the tenant's fallback text, if any.

use crate::domain::flow::{normalise, Action, Flow, Next, Step, TenantFlows, Trigger};
use crate::domain::render::{fill, Builtins, Reply};
use crate::domain::session::Session;

/// Steps one event may run at most (validation already refuses loops that never wait).
const MAX_STEPS_PER_EVENT: usize = 100;

/// A customer's message, as far as the bot cares.
#[derive(Debug, Clone, Copy, Default)]
pub struct Message<'a> {
    /// The event id (for idempotency).
    pub event_id: &'a str,
    /// When the customer sent it, epoch ms.
    pub at: i64,
    /// The text, for text messages.
    pub text: Option<&'a str>,
    /// `(id, title)` of a chosen button, list row or suggestion.
    pub choice: Option<(&'a str, &'a str)>,
    /// The customer's profile name.
    pub customer_name: Option<&'a str>,
    /// The business endpoint written to.
    pub business_id: Option<&'a str>,
    /// The message's trace.
    pub trace_parent: Option<&'a str>,
}

/// How the handling of a conversation changed (`conversation.events.v1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    /// Handed to a human, or an operator was assigned: the bot goes silent.
    ToHuman,
    /// Released to the bot.
    ToBot,
    /// Closed: the next message starts afresh.
    Closed,
    /// Nothing the bot acts on.
    Other,
}

/// What happened.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// The customer wrote.
    Message(Message<'a>),
    /// The session's deadline may have passed.
    Timeout {
        /// Now, epoch ms.
        at: i64,
    },
    /// The conversation's handling changed.
    Handling {
        /// The event id.
        event_id: &'a str,
        /// When, epoch ms.
        at: i64,
        /// How.
        change: Handling,
    },
}

/// The engine's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Messages to send, in order.
    pub replies: Vec<Reply>,
    /// `Some(reason)` when the bot hands the conversation to a human.
    pub handoff: Option<String>,
    /// The session after the event.
    pub session: Session,
    /// Whether the session must be stored (`false`: nothing happened).
    pub changed: bool,
}

struct Run<'f> {
    flows: &'f TenantFlows,
    session: Session,
    replies: Vec<Reply>,
    handoff: Option<String>,
    at: i64,
    customer_id: &'f str,
    message_text: Option<String>,
}

/// What a waiting step made of a message.
enum Answer {
    /// Go on here.
    Next(Next),
    /// Not an answer this step can use.
    NotUnderstood,
}

impl<'f> Run<'f> {
    fn builtins(&self) -> Builtins<'_> {
        Builtins {
            customer_name: self.session.customer_name.as_deref(),
            customer_id: self.customer_id,
            message_text: self.message_text.as_deref(),
        }
    }

    fn say(&mut self, text: &str) {
        let filled = fill(text, &self.session.vars, &self.builtins());
        if !filled.trim().is_empty() {
            self.replies.push(Reply::Text(filled));
        }
    }

    fn show_menu(&mut self, step: &Step) {
        if let Action::Menu {
            text,
            header,
            footer,
            button_label,
            style,
            options,
            ..
        } = &step.action
        {
            let builtins = self.builtins();
            let render = |text: &String| fill(text, &self.session.vars, &builtins);
            let menu = Reply::Menu {
                body: render(text),
                header: header.as_ref().map(render),
                footer: footer.as_ref().map(render),
                button_label: button_label.clone(),
                style: *style,
                options: options
                    .iter()
                    .map(|option| {
                        (
                            option.id.clone(),
                            option.title.clone(),
                            option.description.clone(),
                        )
                    })
                    .collect(),
            };
            self.replies.push(menu);
        }
    }

    fn start(&mut self, flow: &'f Flow) {
        self.session.flow = Some(flow.id.clone());
        self.session.step = None;
        self.session.deadline = None;
        self.go(flow, Next::Step(0));
    }

    fn wait_at(&mut self, step: &Step) {
        self.session.step = Some(step.id.clone());
        self.session.deadline = step
            .action
            .timeout()
            .map(|timeout| self.at + timeout.after_ms);
    }

    fn go(&mut self, flow: &'f Flow, first: Next) {
        let mut next = first;
        for _ in 0..MAX_STEPS_PER_EVENT {
            let Next::Step(index) = next else {
                self.session.end_flow();
                return;
            };
            let step = &flow.steps[index];
            match &step.action {
                Action::Send { text } => {
                    self.say(text);
                    next = step.next;
                }
                Action::Menu { .. } => {
                    self.show_menu(step);
                    self.wait_at(step);
                    return;
                }
                Action::Ask { text, .. } => {
                    self.say(text);
                    self.wait_at(step);
                    return;
                }
                Action::Wait { text, .. } => {
                    if let Some(text) = text {
                        self.say(text);
                    }
                    self.wait_at(step);
                    return;
                }
                Action::Branch { on, cases, default } => {
                    let value = self.session.vars.get(on).cloned().unwrap_or_default();
                    let normalised = normalise(&value);
                    next = cases
                        .iter()
                        .find(|(condition, _)| match condition {
                            crate::domain::flow::Condition::Equals(expected) => {
                                normalised == *expected
                            }
                            crate::domain::flow::Condition::OneOf(values) => {
                                values.contains(&normalised)
                            }
                            crate::domain::flow::Condition::Regex(regex) => {
                                regex.is_match(value.trim())
                            }
                        })
                        .map_or(*default, |(_, target)| *target);
                }
                Action::Handoff { text, reason } => {
                    if let Some(text) = text {
                        self.say(text);
                    }
                    self.handoff = Some(reason.clone());
                    self.session.human = true;
                    self.session.end_flow();
                    return;
                }
                Action::End { text } => {
                    if let Some(text) = text {
                        self.say(text);
                    }
                    self.session.end_flow();
                    return;
                }
            }
        }
        self.session.end_flow();
    }

    /// The flow and step the session waits at, if they still exist.
    fn waiting(&self) -> Option<(&'f Flow, &'f Step)> {
        let flow = self.flows.flow(self.session.flow.as_deref()?)?;
        let step = &flow.steps[flow.step_index(self.session.step.as_deref()?)?];
        step.action.waits().then_some((flow, step))
    }

    fn answer(&mut self, step: &Step, message: &Message<'_>) -> Answer {
        let text = message.text.map(str::trim).filter(|text| !text.is_empty());
        match &step.action {
            Action::Menu {
                options, variable, ..
            } => {
                let chosen = options.iter().enumerate().find(|(index, option)| {
                    message.choice.is_some_and(|(id, _)| id == option.id)
                        || text.is_some_and(|text| {
                            let said = normalise(text);
                            said == normalise(&option.title)
                                || said == normalise(&option.id)
                                || said == (index + 1).to_string()
                        })
                });
                match chosen {
                    Some((_, option)) => {
                        if let Some(variable) = variable {
                            self.session
                                .vars
                                .insert(variable.clone(), option.id.clone());
                        }
                        Answer::Next(option.next.unwrap_or(step.next))
                    }
                    None => Answer::NotUnderstood,
                }
            }
            Action::Ask {
                variable, validate, ..
            } => {
                let value = text.or(message.choice.map(|(_, title)| title));
                match value {
                    Some(value)
                        if validate
                            .as_ref()
                            .is_none_or(|(regex, _)| regex.is_match(value)) =>
                    {
                        self.session
                            .vars
                            .insert(variable.clone(), value.to_string());
                        Answer::Next(step.next)
                    }
                    _ => Answer::NotUnderstood,
                }
            }
            Action::Wait { variable, .. } => {
                if let (Some(variable), Some(value)) =
                    (variable, text.or(message.choice.map(|(id, _)| id)))
                {
                    self.session
                        .vars
                        .insert(variable.clone(), value.to_string());
                }
                Answer::Next(step.next)
            }
            _ => Answer::NotUnderstood,
        }
    }

    fn trigger(&self, message: &Message<'_>, first: bool, anytime_only: bool) -> Option<&'f Flow> {
        let text = message.text.map(str::trim).filter(|text| !text.is_empty());
        let flows: &'f TenantFlows = self.flows;
        flows.flows.iter().find(|flow| {
            flow.triggers.iter().any(|trigger| {
                if anytime_only && !trigger.anytime() {
                    return false;
                }
                match trigger {
                    Trigger::Keyword { words, .. } => {
                        text.is_some_and(|text| words.contains(&normalise(text)))
                    }
                    Trigger::Regex { regex, .. } => text.is_some_and(|text| regex.is_match(text)),
                    Trigger::Button { id, .. } => {
                        message.choice.is_some_and(|(chosen, _)| chosen == id)
                    }
                    Trigger::FirstMessage => first,
                }
            })
        })
    }

    fn not_understood(&mut self, step: &'f Step) {
        match &step.action {
            Action::Menu { .. } => {
                let hint = self
                    .flows
                    .fallback
                    .clone()
                    .unwrap_or_else(|| "Please choose one of the options.".to_string());
                self.say(&hint);
                self.show_menu(step);
            }
            Action::Ask { validate, text, .. } => match validate {
                Some((_, error)) => self.say(error),
                None => self.say(text),
            },
            _ => {}
        }
    }

    fn on_message(&mut self, message: &Message<'_>, first: bool) {
        if let Some(flow) = self.trigger(message, first, true) {
            self.start(flow);
            return;
        }
        if self.session.flow.is_some() {
            match self.waiting() {
                Some((flow, step)) => {
                    match self.answer(step, message) {
                        Answer::Next(next) => self.go(flow, next),
                        Answer::NotUnderstood => match self.trigger(message, false, false) {
                            Some(other) => self.start(other),
                            None => self.not_understood(step),
                        },
                    }
                    return;
                }
                // The flow or step is gone (the file changed): start over.
                None => self.session.end_flow(),
            }
        }
        if let Some(flow) = self.trigger(message, first, false) {
            self.start(flow);
            return;
        }
        if let Some(fallback) = self.flows.fallback.clone() {
            self.say(&fallback);
        }
    }
}

/// Apply `event` to `session` (`None`: the conversation has none yet) under `flows`.
/// `customer_id` is the customer's address (for `{{customer.id}}`).
pub fn decide(
    flows: &TenantFlows,
    session: Option<&Session>,
    event: &Event<'_>,
    customer_id: &str,
) -> Decision {
    let unchanged = |session: Session| Decision {
        replies: Vec::new(),
        handoff: None,
        session,
        changed: false,
    };
    let is_new = session.is_none();
    let current = session.cloned().unwrap_or_default();
    let mut run = Run {
        flows,
        session: current.clone(),
        replies: Vec::new(),
        handoff: None,
        at: 0,
        customer_id,
        message_text: None,
    };
    match event {
        Event::Message(message) => {
            if current.has_seen(message.event_id) {
                return unchanged(current);
            }
            run.at = message.at;
            run.session.remember(message.event_id);
            if message.customer_name.is_some() {
                run.session.customer_name = message.customer_name.map(str::to_string);
            }
            if message.business_id.is_some() {
                run.session.business_id = message.business_id.map(str::to_string);
            }
            run.session.trace_parent = message.trace_parent.map(str::to_string);
            run.message_text = message.text.map(str::to_string);
            let idle = !is_new && message.at - current.last_activity > flows.idle_expiry_ms;
            if idle {
                run.session.end_flow();
                run.session.vars.clear();
            }
            run.session.last_activity = run.session.last_activity.max(message.at);
            if !run.session.human {
                run.on_message(message, is_new || idle);
            }
        }
        Event::Timeout { at } => {
            let Some(deadline) = current.deadline else {
                return unchanged(current);
            };
            if deadline > *at || current.human {
                return unchanged(current);
            }
            run.at = *at;
            run.session.deadline = None;
            if let Some((flow, step)) = run.waiting() {
                if let Some(timeout) = step.action.timeout() {
                    run.go(flow, timeout.next);
                }
            } else {
                run.session.end_flow();
            }
        }
        Event::Handling {
            event_id,
            at,
            change,
        } => {
            if current.has_seen(event_id) || *change == Handling::Other {
                return unchanged(current);
            }
            run.at = *at;
            run.session.remember(event_id);
            match change {
                Handling::ToHuman => {
                    run.session.human = true;
                    run.session.end_flow();
                }
                Handling::ToBot => {
                    run.session.human = false;
                    run.session.end_flow();
                }
                Handling::Closed => {
                    run.session.human = false;
                    run.session.end_flow();
                    run.session.vars.clear();
                }
                Handling::Other => {}
            }
        }
    }
    let mut session = run.session;
    session.revision = current.revision + 1;
    Decision {
        replies: run.replies,
        handoff: run.handoff,
        session,
        changed: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::flow::parse;

    const DEMO: &str = include_str!("../../flows/demo.yaml");
    const MINUTE: i64 = 60_000;

    fn demo() -> TenantFlows {
        parse("flows/demo.yaml", DEMO).unwrap()
    }

    struct Chat {
        flows: TenantFlows,
        session: Option<Session>,
        counter: usize,
        now: i64,
    }

    impl Chat {
        fn new(flows: TenantFlows) -> Self {
            Self {
                flows,
                session: None,
                counter: 0,
                now: 1_800_000_000_000,
            }
        }

        fn apply(&mut self, event: Event<'_>) -> Decision {
            let decision = decide(&self.flows, self.session.as_ref(), &event, "4915112345678");
            if decision.changed {
                self.session = Some(decision.session.clone());
            }
            decision
        }

        fn say(&mut self, text: &str) -> Decision {
            self.counter += 1;
            self.now += 1000;
            let id = format!("e{}", self.counter);
            self.apply(Event::Message(Message {
                event_id: &id,
                at: self.now,
                text: Some(text),
                customer_name: Some("Kim"),
                ..Message::default()
            }))
        }

        fn choose(&mut self, id: &str, title: &str) -> Decision {
            self.counter += 1;
            self.now += 1000;
            let event_id = format!("e{}", self.counter);
            self.apply(Event::Message(Message {
                event_id: &event_id,
                at: self.now,
                choice: Some((id, title)),
                ..Message::default()
            }))
        }

        fn step(&self) -> Option<&str> {
            self.session
                .as_ref()
                .and_then(|session| session.step.as_deref())
        }
    }

    fn texts(decision: &Decision) -> Vec<String> {
        decision
            .replies
            .iter()
            .map(|reply| match reply {
                Reply::Text(text) => text.clone(),
                Reply::Menu { body, options, .. } => format!(
                    "{body} [{}]",
                    options
                        .iter()
                        .map(|(id, _, _)| id.as_str())
                        .collect::<Vec<_>>()
                        .join("|")
                ),
            })
            .collect()
    }

    #[test]
    fn hi_gets_the_menu_with_the_customers_name() {
        let mut chat = Chat::new(demo());
        let decision = chat.say("hi");
        assert_eq!(
            texts(&decision),
            ["Hi Kim! I'm the demo assistant. What can I do for you? [track|hours|human]"]
        );
        assert_eq!(chat.step(), Some("menu"));
        assert!(decision.session.deadline.is_some());
    }

    #[test]
    fn a_button_walks_the_flow_ask_validates_and_branch_routes() {
        let mut chat = Chat::new(demo());
        chat.say("hello");
        assert_eq!(
            texts(&chat.choose("track", "Track my order")),
            ["Please type your order number (6 digits)."]
        );
        assert_eq!(chat.step(), Some("ask_order"));
        let invalid = chat.say("12");
        assert_eq!(
            texts(&invalid),
            ["An order number has 6 digits, for example 123456. Please try again."]
        );
        assert_eq!(chat.step(), Some("ask_order"));
        let delayed = chat.say("912345");
        assert_eq!(
            texts(&delayed)[0],
            "Order 912345 is delayed by two days. We are sorry!"
        );
        assert!(texts(&delayed)[1].starts_with("Anything else?"));
        assert_eq!(chat.step(), Some("anything_else"));
        let again = chat.choose("main_menu", "Main menu");
        assert!(texts(&again)[0].starts_with("Hi Kim!"));
        chat.choose("track", "Track my order");
        let on_time = chat.say("123456");
        assert_eq!(
            texts(&on_time)[0],
            "Order 123456 is on its way and arrives tomorrow."
        );
        assert_eq!(
            chat.session.as_ref().unwrap().vars["order_number"],
            "123456"
        );
    }

    #[test]
    fn menu_options_also_match_typed_titles_and_numbers() {
        let mut chat = Chat::new(demo());
        chat.say("hi");
        assert_eq!(
            texts(&chat.say("opening HOURS!"))[0],
            "We are open Monday to Friday, 9:00 to 18:00."
        );
        chat.say("menu");
        assert_eq!(
            texts(&chat.say("1")),
            ["Please type your order number (6 digits)."]
        );
    }

    #[test]
    fn an_unknown_answer_to_a_menu_repeats_it_after_the_fallback() {
        let mut chat = Chat::new(demo());
        chat.say("hi");
        let decision = chat.say("what?");
        let replies = texts(&decision);
        assert_eq!(
            replies[0],
            "Sorry, I did not get that. Type *menu* to see what I can do."
        );
        assert!(replies[1].ends_with("[track|hours|human]"));
        assert_eq!(chat.step(), Some("menu"));
    }

    #[test]
    fn handoff_makes_the_bot_silent_until_released() {
        let mut chat = Chat::new(demo());
        chat.say("hi");
        let decision = chat.choose("human", "Talk to a person");
        assert_eq!(
            decision.handoff.as_deref(),
            Some("the customer asked for a person")
        );
        assert_eq!(
            texts(&decision),
            ["I'm handing you over to a colleague, who will answer here shortly."]
        );
        assert!(chat.session.as_ref().unwrap().human);
        let silent = chat.say("hello?");
        assert!(silent.replies.is_empty());
        assert!(silent.changed, "the message is remembered");
        chat.apply(Event::Handling {
            event_id: "released",
            at: chat.now,
            change: Handling::ToBot,
        });
        assert!(!chat.session.as_ref().unwrap().human);
        assert!(texts(&chat.say("hi"))[0].starts_with("Hi Kim!"));
    }

    #[test]
    fn an_operator_taking_over_silences_the_bot_mid_flow() {
        let mut chat = Chat::new(demo());
        chat.say("hi");
        chat.choose("track", "Track my order");
        chat.apply(Event::Handling {
            event_id: "assigned",
            at: chat.now,
            change: Handling::ToHuman,
        });
        assert_eq!(chat.step(), None);
        assert!(chat.say("123456").replies.is_empty());
        let closed = chat.apply(Event::Handling {
            event_id: "closed",
            at: chat.now,
            change: Handling::Closed,
        });
        assert!(!closed.session.human);
    }

    #[test]
    fn a_redelivered_event_changes_nothing() {
        let mut chat = Chat::new(demo());
        let first = chat.say("hi");
        let again = decide(
            &chat.flows,
            chat.session.as_ref(),
            &Event::Message(Message {
                event_id: "e1",
                at: chat.now,
                text: Some("hi"),
                ..Message::default()
            }),
            "4915112345678",
        );
        assert!(!again.changed);
        assert!(again.replies.is_empty());
        assert_eq!(again.session, first.session);
        let handling = Event::Handling {
            event_id: "h1",
            at: chat.now,
            change: Handling::ToHuman,
        };
        chat.apply(handling);
        assert!(!chat.apply(handling).changed);
    }

    #[test]
    fn the_same_event_on_the_same_session_decides_the_same() {
        let flows = demo();
        let event = Event::Message(Message {
            event_id: "x",
            at: 5,
            text: Some("hi"),
            ..Message::default()
        });
        assert_eq!(
            decide(&flows, None, &event, "1"),
            decide(&flows, None, &event, "1")
        );
    }

    #[test]
    fn timeouts_fire_only_when_due() {
        let mut chat = Chat::new(demo());
        chat.say("hi");
        chat.choose("hours", "Opening hours");
        assert_eq!(chat.step(), Some("anything_else"));
        let deadline = chat.session.as_ref().unwrap().deadline.unwrap();
        assert!(!chat.apply(Event::Timeout { at: deadline - 1 }).changed);
        let fired = chat.apply(Event::Timeout { at: deadline });
        assert_eq!(texts(&fired), ["Thanks for chatting with us. Goodbye!"]);
        assert_eq!(chat.step(), None);
        assert!(!chat.apply(Event::Timeout { at: deadline + 1 }).changed);
    }

    #[test]
    fn idle_sessions_start_over_and_count_as_first_messages() {
        let mut chat = Chat::new(demo());
        chat.say("hi");
        chat.choose("track", "Track my order");
        chat.now += 31 * MINUTE;
        let decision = chat.say("123456");
        assert!(
            texts(&decision)[0].starts_with("Hi Kim!"),
            "{:?}",
            texts(&decision)
        );
        assert!(!chat
            .session
            .as_ref()
            .unwrap()
            .vars
            .contains_key("order_number"));
    }

    #[test]
    fn without_a_matching_trigger_the_fallback_answers() {
        let flows = parse(
            "flows/t.yaml",
            "fallback: Type hi\nflows:\n  - id: main\n    triggers: [ { keyword: hi } ]\n    steps:\n      - { id: a, type: send, text: Hello }\n",
        )
        .unwrap();
        let mut chat = Chat::new(flows);
        assert_eq!(texts(&chat.say("good morning")), ["Type hi"]);
        assert_eq!(texts(&chat.say("HI!")), ["Hello"]);
        assert_eq!(
            chat.step(),
            None,
            "a flow without waiting steps ends at once"
        );
    }

    #[test]
    fn a_session_on_a_step_that_no_longer_exists_starts_over() {
        let mut chat = Chat::new(demo());
        chat.say("hi");
        let mut session = chat.session.clone().unwrap();
        session.step = Some("removed_step".to_string());
        chat.session = Some(session);
        let decision = chat.say("hello");
        assert!(texts(&decision)[0].starts_with("Hi Kim!"));
    }

    #[test]
    fn wait_steps_store_the_reply_and_go_on() {
        let flows = parse(
            "flows/t.yaml",
            "flows:\n  - id: main\n    triggers: [ { first_message: true } ]\n    steps:\n      - { id: w, type: wait, text: Say something, variable: said, timeout: 1m, on_timeout: end }\n      - { id: echo, type: send, text: \"You said {{said}}\" }\n",
        )
        .unwrap();
        let mut chat = Chat::new(flows);
        assert_eq!(texts(&chat.say("start")), ["Say something"]);
        assert_eq!(texts(&chat.say("banana")), ["You said banana"]);
    }
}
