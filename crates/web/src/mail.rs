//! Sending queued mail over SMTP.
//!
//! Everything that sends mail queues it in the database first (in the transaction of the
//! action that causes it), so an SMTP outage delays mail but never loses it. This worker sends
//! the queue, retrying failures with exponential backoff (5 s doubling to an hour) and giving
//! up, with an error in the log, after 30 attempts (more than a day).

use std::time::Duration;

use chrono::Utc;
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor, message::header::ContentType,
    transport::smtp::authentication::Credentials,
};
use stackspin_domain::{
    retry::Backoff,
    settings::{MailSettings, SmtpSecurity},
};
use stackspin_storage::DueMail;

use crate::AppState;

const MAX_ATTEMPTS: u32 = 30;

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: lettre::message::Mailbox,
}

impl Mailer {
    pub fn new(s: &MailSettings) -> Result<Mailer, String> {
        let builder = match s.security {
            SmtpSecurity::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&s.host)
                .map_err(|e| e.to_string())?,
            SmtpSecurity::Tls => {
                AsyncSmtpTransport::<Tokio1Executor>::relay(&s.host).map_err(|e| e.to_string())?
            }
            SmtpSecurity::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host),
        };
        let mut builder = builder.port(s.port).timeout(Some(Duration::from_secs(15)));
        if let Some(user) = &s.user {
            builder = builder.credentials(Credentials::new(
                user.clone(),
                s.password.clone().unwrap_or_default(),
            ));
        }
        let from = s
            .from
            .as_str()
            .parse()
            .map_err(|e: lettre::address::AddressError| e.to_string())?;
        Ok(Mailer {
            transport: builder.build(),
            from,
        })
    }

    /// Sends one message now. `org` names the sender when the configured From address has
    /// no display name of its own, so the mail shows as coming from the organisation.
    pub async fn send(
        &self,
        org: Option<&str>,
        to: &str,
        subject: &str,
        body: &str,
    ) -> Result<(), String> {
        let to = to
            .parse()
            .map_err(|e: lettre::address::AddressError| format!("bad recipient: {e}"))?;
        let from = match (&self.from.name, org) {
            (None, Some(name)) => {
                lettre::message::Mailbox::new(Some(name.to_owned()), self.from.email.clone())
            }
            _ => self.from.clone(),
        };
        let message = Message::builder()
            .from(from)
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(body.to_owned())
            .map_err(|e| e.to_string())?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Runs until the process stops, sending due mail whenever woken or every poll interval.
pub async fn run(state: AppState) {
    let Some(mailer) = state.mailer.clone() else {
        tracing::warn!(
            "outgoing mail is not enabled: invitations and password reset links stay queued \
             until outgoing_mail_* is configured"
        );
        return;
    };
    loop {
        match state.store.claim_due_mail(16).await {
            Ok(due) => {
                for m in due {
                    deliver(&state, &mailer, m).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "mail queue unavailable"),
        }
        tokio::select! {
            _ = state.mail_wake.notified() => {},
            _ = tokio::time::sleep(state.options.mail_poll_interval) => {},
        }
    }
}

async fn deliver(state: &AppState, mailer: &Mailer, m: DueMail) {
    let org = state.org_name().await;
    let result = match mailer
        .send(org.as_deref(), &m.to_address, &m.subject, &m.body)
        .await
    {
        Ok(()) => {
            tracing::info!(subject = %m.subject, "mail sent");
            state.store.mail_sent(m.id).await
        }
        Err(reason) => {
            let attempt = u32::try_from(m.attempts + 1).unwrap_or(u32::MAX);
            let backoff = Backoff {
                base: state.options.mail_retry_base,
                cap: Duration::from_secs(3600),
                max_attempts: MAX_ATTEMPTS,
            };
            match backoff.after(attempt) {
                Some(wait) => {
                    tracing::warn!(%reason, attempt, retry_in_ms = wait.as_millis() as u64, "mail could not be sent; will retry");
                    state
                        .store
                        .mail_failed(m.id, &reason, Some(Utc::now() + wait))
                        .await
                }
                None => {
                    tracing::error!(%reason, attempt, "mail could not be sent; giving up");
                    state.store.mail_failed(m.id, &reason, None).await
                }
            }
        }
    };
    if let Err(e) = result {
        tracing::warn!(error = %e, "cannot record mail delivery result");
    }
}
