//! A campaign's states and which command may move it where.
//!
//! ```text
//! scheduled ─▶ running ─▶ completed
//!     │  ▲        │ ▲
//!     │  └─ resume│ │resume
//!     └──▶ paused ◀─┘
//! any of scheduled, running, paused ─cancel─▶ cancelled
//! ```
//!
//! `scheduled`: accepted, waiting for its start (or its audience); `running`: sending whenever
//! its sending hours allow; `completed`, `cancelled` and `failed` are final.

use caas_events::model::{CampaignAction, CreateCampaign};
use serde::{Deserialize, Serialize};

use super::window;

/// A campaign's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CampaignState {
    /// Accepted; sending has not started.
    Scheduled,
    /// Sending (within its hours).
    Running,
    /// Paused by an operator.
    Paused,
    /// Every recipient was handled.
    Completed,
    /// Cancelled; the recipients not sent to were marked cancelled.
    Cancelled,
    /// Stopped by an error (for example its audience vanished).
    Failed,
}

impl CampaignState {
    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            CampaignState::Scheduled => "scheduled",
            CampaignState::Running => "running",
            CampaignState::Paused => "paused",
            CampaignState::Completed => "completed",
            CampaignState::Cancelled => "cancelled",
            CampaignState::Failed => "failed",
        }
    }

    /// Whether the campaign can still send.
    pub const fn is_active(self) -> bool {
        matches!(
            self,
            CampaignState::Scheduled | CampaignState::Running | CampaignState::Paused
        )
    }
}

/// What a pause, resume or cancel does to a campaign in `state`: the new state, or why the
/// command is refused.
pub fn transition(state: CampaignState, action: &CampaignAction) -> Result<CampaignState, String> {
    use CampaignState::*;
    match (action, state) {
        (CampaignAction::Create(_), _) => Err("the campaign already exists".to_string()),
        (CampaignAction::Pause(_), Scheduled | Running) => Ok(Paused),
        (CampaignAction::Pause(_), Paused) => Err("the campaign is already paused".to_string()),
        (CampaignAction::Resume(_), Paused) => Ok(Running),
        (CampaignAction::Resume(_), Scheduled | Running) => {
            Err("the campaign is not paused".to_string())
        }
        (CampaignAction::Cancel(_), Scheduled | Running | Paused) => Ok(Cancelled),
        (_, Completed | Cancelled | Failed) => Err(format!(
            "the campaign is {} and cannot change any more",
            state.as_str()
        )),
    }
}

/// The longest campaign id accepted.
pub const MAX_CAMPAIGN_ID: usize = 64;

/// Campaign ids are `[A-Za-z0-9._-]{1,64}`: they appear in Kafka keys and callback data.
pub fn validate_campaign_id(campaign_id: &str) -> Result<(), String> {
    if campaign_id.is_empty()
        || campaign_id.len() > MAX_CAMPAIGN_ID
        || !campaign_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(format!(
            "campaign id {campaign_id:?} must be 1 to {MAX_CAMPAIGN_ID} letters, digits, '.', '_' or '-'"
        ));
    }
    Ok(())
}

/// Check a create command's content; the message says what is wrong.
pub fn validate_create(create: &CreateCampaign) -> Result<(), String> {
    if create.template.name.trim().is_empty() {
        return Err("the template needs a name".to_string());
    }
    if create.template.language.trim().is_empty() {
        return Err("the template needs a language code, e.g. en_US".to_string());
    }
    if create.rate_per_minute <= 0 {
        return Err(format!(
            "rate_per_minute must be positive, got {}",
            create.rate_per_minute
        ));
    }
    window::parse_timezone(&create.timezone)?;
    if let Some(sending_window) = &create.sending_window {
        window::validate_window(sending_window)?;
    }
    if let (Some(start), Some(end)) = (create.start_at, create.end_at) {
        if end <= start {
            return Err("end_at must be after start_at".to_string());
        }
    }
    if create.audience_id.is_none() && create.recipients.is_empty() {
        return Err("the campaign has no audience: give audience_id or recipients".to_string());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use caas_events::model::{
        CancelCampaign, PauseCampaign, ResumeCampaign, SendingWindow, Template,
    };

    fn pause() -> CampaignAction {
        CampaignAction::Pause(PauseCampaign { reason: None })
    }
    fn resume() -> CampaignAction {
        CampaignAction::Resume(ResumeCampaign { reason: None })
    }
    fn cancel() -> CampaignAction {
        CampaignAction::Cancel(CancelCampaign { reason: None })
    }

    #[test]
    fn commands_move_campaigns_only_where_they_may() {
        use CampaignState::*;
        assert_eq!(transition(Running, &pause()), Ok(Paused));
        assert_eq!(transition(Scheduled, &pause()), Ok(Paused));
        assert_eq!(transition(Paused, &resume()), Ok(Running));
        assert_eq!(transition(Paused, &cancel()), Ok(Cancelled));
        assert!(transition(Running, &resume())
            .unwrap_err()
            .contains("not paused"));
        assert!(transition(Completed, &cancel())
            .unwrap_err()
            .contains("completed"));
        assert!(transition(Cancelled, &resume()).is_err());
        assert!(!Cancelled.is_active() && Paused.is_active());
    }

    #[test]
    fn create_commands_are_checked() {
        let mut create = CreateCampaign {
            name: "n".into(),
            template: Template {
                name: "promo".into(),
                language: "en".into(),
                parameters: vec![],
                header_media: None,
            },
            business_id: None,
            audience_id: None,
            recipients: vec!["+4915112345678".into()],
            rate_per_minute: 60,
            start_at: None,
            end_at: None,
            sending_window: Some(SendingWindow {
                start_minute: 540,
                end_minute: 1200,
                days: vec![],
            }),
            timezone: "Europe/Berlin".into(),
        };
        assert_eq!(validate_create(&create), Ok(()));
        create.timezone = "Nowhere/Special".into();
        assert!(validate_create(&create).unwrap_err().contains("timezone"));
        create.timezone = "UTC".into();
        create.rate_per_minute = 0;
        assert!(validate_create(&create)
            .unwrap_err()
            .contains("rate_per_minute"));
        create.rate_per_minute = 1;
        create.recipients.clear();
        assert!(validate_create(&create)
            .unwrap_err()
            .contains("no audience"));
        assert!(validate_campaign_id("black-friday_2026.v2").is_ok());
        assert!(validate_campaign_id("a:b").is_err());
        assert!(validate_campaign_id("").is_err());
    }
}
