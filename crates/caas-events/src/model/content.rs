//! Message content: the union shared by inbound messages and outbound commands.

use serde::{Deserialize, Serialize};

/// The content of a message (Avro union, in this order): what the customer sent, or what we
/// send. `Template` and `Interactive` are outbound only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Content {
    /// Plain text.
    Text(Text),
    /// Image, audio, video, document or sticker.
    Media(Media),
    /// A shared location.
    Location(Location),
    /// Shared contact cards.
    Contacts(Contacts),
    /// The customer's answer to a button, list row or RCS suggestion.
    InteractiveReply(InteractiveReply),
    /// An emoji reaction to an earlier message.
    Reaction(Reaction),
    /// A pre-approved template (outbound only).
    Template(Template),
    /// Choices offered to the customer (outbound only).
    Interactive(Interactive),
    /// Anything not modelled, with the provider's JSON kept verbatim.
    Unsupported(Unsupported),
}

/// A plain text message (`caas.v1.Text`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Text {
    /// The text as the sender wrote it.
    pub body: String,
    /// Outbound only: ask for a link preview of the first URL. Always false inbound.
    pub preview_url: bool,
}

/// What kind of media a message carries (`caas.v1.MediaKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    /// A picture.
    Image,
    /// An audio clip or voice note.
    Audio,
    /// A video.
    Video,
    /// A document (PDF and the like).
    Document,
    /// A sticker.
    Sticker,
}

/// An image, audio clip, video, document or sticker (`caas.v1.Media`); exactly one of `id` and
/// `link` locates the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Media {
    /// What kind of media this is.
    pub kind: MediaKind,
    /// Provider media id (WhatsApp); `None` when `link` is used.
    pub id: Option<String>,
    /// URL of the file (RCS `fileUri`, or a public URL on outbound sends).
    pub link: Option<String>,
    /// MIME type, e.g. `image/jpeg`.
    pub mime_type: Option<String>,
    /// Caption shown with the media.
    pub caption: Option<String>,
    /// File name of a document.
    pub filename: Option<String>,
    /// SHA-256 of the file as reported by the provider.
    pub sha256: Option<String>,
    /// True for a recorded voice note.
    pub voice: bool,
    /// File size in bytes, when reported.
    pub size_bytes: Option<i64>,
}

/// A shared location (`caas.v1.Location`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    /// Latitude in decimal degrees.
    pub latitude: f64,
    /// Longitude in decimal degrees.
    pub longitude: f64,
    /// Name of the place.
    pub name: Option<String>,
    /// Postal address of the place.
    pub address: Option<String>,
}

/// A phone number on a contact card (`caas.v1.ContactPhone`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactPhone {
    /// The number as written on the card.
    pub number: String,
    /// Its WhatsApp id, when known.
    pub wa_id: Option<String>,
    /// Label such as `CELL`, `HOME`, `WORK`.
    pub label: Option<String>,
}

/// An e-mail address on a contact card (`caas.v1.ContactEmail`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactEmail {
    /// The e-mail address.
    pub address: String,
    /// Label such as `HOME`, `WORK`.
    pub label: Option<String>,
}

/// One shared contact card (`caas.v1.ContactCard`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactCard {
    /// The full name as displayed.
    pub formatted_name: String,
    /// Given name.
    pub given_name: Option<String>,
    /// Family name.
    pub family_name: Option<String>,
    /// Company or organisation.
    pub organization: Option<String>,
    /// Phone numbers.
    pub phones: Vec<ContactPhone>,
    /// E-mail addresses.
    pub emails: Vec<ContactEmail>,
}

/// Contact cards shared in one message (`caas.v1.Contacts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contacts {
    /// The cards, in the order they were sent.
    pub cards: Vec<ContactCard>,
}

/// Which interactive element was answered (`caas.v1.InteractiveReplyKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InteractiveReplyKind {
    /// A reply button (or a template's quick-reply button).
    Button,
    /// A list row.
    List,
    /// An RCS suggested reply or action.
    Suggestion,
}

/// The customer's answer to a button, list row or RCS suggestion (`caas.v1.InteractiveReply`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InteractiveReply {
    /// Which kind of element was answered.
    pub kind: InteractiveReplyKind,
    /// Our id of the element: button/row id, template button payload or RCS postback data.
    pub id: String,
    /// The visible text of the chosen element.
    pub title: String,
    /// Description of the chosen list row.
    pub description: Option<String>,
}

/// An emoji reaction (`caas.v1.Reaction`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reaction {
    /// Provider message id of the message reacted to.
    pub message_id: String,
    /// The emoji; `None` when the reaction was removed.
    pub emoji: Option<String>,
}

/// The template part a parameter fills (`caas.v1.TemplateComponent`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplateComponent {
    /// The header.
    Header,
    /// The body.
    Body,
    /// A button (see `button_index`).
    Button,
}

/// One positional template parameter (`caas.v1.TemplateParameter`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateParameter {
    /// The component this parameter belongs to.
    pub component: TemplateComponent,
    /// For button parameters: the zero-based button index.
    pub button_index: Option<i32>,
    /// The value (text, or a button payload / URL suffix).
    pub text: String,
}

/// A pre-approved template, outbound only (`caas.v1.Template`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    /// Template name as approved by the provider.
    pub name: String,
    /// Language code, e.g. `en_US`.
    pub language: String,
    /// Parameters in order, per component.
    pub parameters: Vec<TemplateParameter>,
    /// Media of a media header.
    pub header_media: Option<Media>,
}

/// How choices are offered (`caas.v1.InteractiveKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InteractiveKind {
    /// Reply buttons (WhatsApp, up to 3).
    Buttons,
    /// A list menu (WhatsApp, up to 10 rows).
    List,
    /// RCS suggested replies.
    Suggestions,
}

/// One offered choice (`caas.v1.InteractiveOption`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InteractiveOption {
    /// Our id of the choice; comes back as [`InteractiveReply::id`].
    pub id: String,
    /// Visible text.
    pub title: String,
    /// Secondary text of a list row.
    pub description: Option<String>,
}

/// An outbound message offering choices (`caas.v1.Interactive`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interactive {
    /// How the choices are presented.
    pub kind: InteractiveKind,
    /// The text above the choices.
    pub body: String,
    /// Header text.
    pub header: Option<String>,
    /// Footer text.
    pub footer: Option<String>,
    /// Label of the button that opens a list menu.
    pub button_label: Option<String>,
    /// The choices, in display order.
    pub options: Vec<InteractiveOption>,
}

/// A message CAAS does not model, kept verbatim (`caas.v1.Unsupported`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unsupported {
    /// The provider's message type, e.g. `order`, `system`.
    pub provider_type: String,
    /// The provider's JSON of the message, exactly as received.
    pub raw_json: String,
    /// Why it was not modelled.
    pub reason: Option<String>,
}
