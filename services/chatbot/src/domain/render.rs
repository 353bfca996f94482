//! Texts with `{{variables}}`, and menus as message content for a channel.

use std::collections::BTreeMap;

use caas_events::model::{Channel, Content, Interactive, InteractiveKind, InteractiveOption, Text};

use crate::domain::flow::MenuStyle;

/// Values of the built-in variables.
#[derive(Debug, Clone, Default)]
pub struct Builtins<'a> {
    /// `customer.name`.
    pub customer_name: Option<&'a str>,
    /// `customer.id`.
    pub customer_id: &'a str,
    /// `message.text`: the customer's latest message.
    pub message_text: Option<&'a str>,
}

/// `text` with every `{{name}}` replaced; unknown names become empty.
pub fn fill(text: &str, vars: &BTreeMap<String, String>, builtins: &Builtins<'_>) -> String {
    let mut output = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        output.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            output.push_str(&rest[start..]);
            return output;
        };
        let name = after[..end].trim();
        let value = match name {
            "customer.name" => builtins.customer_name.unwrap_or("there"),
            "customer.id" => builtins.customer_id,
            "message.text" => builtins.message_text.unwrap_or_default(),
            other => vars.get(other).map(String::as_str).unwrap_or_default(),
        };
        output.push_str(value);
        rest = &after[end + 2..];
    }
    output.push_str(rest);
    output
}

/// A reply of the bot, before it becomes a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A text.
    Text(String),
    /// A menu.
    Menu {
        /// The text above the options.
        body: String,
        /// Header.
        header: Option<String>,
        /// Footer.
        footer: Option<String>,
        /// List button label.
        button_label: Option<String>,
        /// Presentation.
        style: MenuStyle,
        /// `(id, title, description)` per option.
        options: Vec<(String, String, Option<String>)>,
    },
}

/// The message content of a reply on `channel`: on WhatsApp a menu of up to three options with
/// short titles becomes reply buttons, a longer one a list; on RCS suggested replies.
pub fn content(reply: &Reply, channel: Channel) -> Content {
    match reply {
        Reply::Text(body) => Content::Text(Text {
            body: body.clone(),
            preview_url: false,
        }),
        Reply::Menu {
            body,
            header,
            footer,
            button_label,
            style,
            options,
        } => {
            let kind = match (channel, style) {
                (Channel::Rcs, _) => InteractiveKind::Suggestions,
                (Channel::Whatsapp, MenuStyle::Buttons) => InteractiveKind::Buttons,
                (Channel::Whatsapp, MenuStyle::List) => InteractiveKind::List,
                (Channel::Whatsapp, MenuStyle::Auto) => {
                    if options.len() <= 3
                        && options
                            .iter()
                            .all(|(_, title, _)| title.chars().count() <= 20)
                    {
                        InteractiveKind::Buttons
                    } else {
                        InteractiveKind::List
                    }
                }
            };
            Content::Interactive(Interactive {
                kind,
                body: body.clone(),
                header: header.clone(),
                footer: footer.clone(),
                button_label: button_label
                    .clone()
                    .or_else(|| (kind == InteractiveKind::List).then(|| "Options".to_string())),
                options: options
                    .iter()
                    .map(|(id, title, description)| InteractiveOption {
                        id: id.clone(),
                        title: title.clone(),
                        description: description.clone(),
                    })
                    .collect(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_filled_and_unknown_ones_vanish() {
        let vars = BTreeMap::from([("order".to_string(), "123456".to_string())]);
        let builtins = Builtins {
            customer_name: Some("Kim"),
            customer_id: "49151",
            message_text: Some("hi"),
        };
        assert_eq!(
            fill(
                "Hi {{customer.name}}, order {{ order }} ({{x}}) {{message.text}}",
                &vars,
                &builtins
            ),
            "Hi Kim, order 123456 () hi"
        );
        assert_eq!(fill("open {{ brace", &vars, &builtins), "open {{ brace");
        assert_eq!(
            fill("Hi {{customer.name}}", &vars, &Builtins::default()),
            "Hi there"
        );
    }

    #[test]
    fn menus_pick_buttons_lists_or_suggestions() {
        let options = |count: usize| {
            (0..count)
                .map(|index| (format!("o{index}"), format!("Option {index}"), None))
                .collect::<Vec<_>>()
        };
        let menu = |count: usize| Reply::Menu {
            body: "Pick".into(),
            header: None,
            footer: None,
            button_label: None,
            style: MenuStyle::Auto,
            options: options(count),
        };
        let kind_of = |content: Content| match content {
            Content::Interactive(interactive) => interactive.kind,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            kind_of(content(&menu(3), Channel::Whatsapp)),
            InteractiveKind::Buttons
        );
        assert_eq!(
            kind_of(content(&menu(4), Channel::Whatsapp)),
            InteractiveKind::List
        );
        assert_eq!(
            kind_of(content(&menu(2), Channel::Rcs)),
            InteractiveKind::Suggestions
        );
    }
}
