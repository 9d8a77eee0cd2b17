//! The texts of the mails Stackspin sends people, kept in one place so they can be
//! translated later. `org` is the organisation's name when an admin set one: people open
//! a mail from their organisation more readily than one from a product they never heard of.

/// "Greenfield Union" or "Stackspin", for subjects.
fn label(org: Option<&str>) -> &str {
    org.unwrap_or("Stackspin")
}

/// Subject and body of an invitation to set a first password.
pub fn invitation(org: Option<&str>, name: &str, link: &str, valid_days: i64) -> (String, String) {
    let who = match org {
        Some(o) => format!("An administrator of {o} created an account for you on its Stackspin."),
        None => "An administrator created a Stackspin account for you.".to_owned(),
    };
    (
        format!("You are invited to {}", label(org)),
        format!(
            "Hello {name},\n\n\
             {who} Choose your password here:\n\n\
             {link}\n\n\
             The link works once and expires in {valid_days} days. After that, ask your \
             administrator for a new invitation or use \"Forgot password?\" on the login page.\n"
        ),
    )
}

/// Subject and body of a password reset link.
pub fn password_reset(
    org: Option<&str>,
    name: &str,
    link: &str,
    valid_minutes: i64,
) -> (String, String) {
    (
        format!("Reset your {} password", label(org)),
        format!(
            "Hello {name},\n\n\
             Someone (hopefully you) asked to reset the password of your Stackspin account. \
             Choose a new password here:\n\n\
             {link}\n\n\
             The link works once and expires in {valid_minutes} minutes. If you did not ask \
             for this, ignore this message: your password stays as it is.\n"
        ),
    )
}

/// A test message for checking the mail settings.
pub fn test_message(org: Option<&str>) -> (String, String) {
    (
        format!("{} test email", label(org)),
        "This is a test message: Stackspin can send mail.\n".to_owned(),
    )
}

/// What an alert says, for its mails: written by the alerting rules in plain words.
pub struct AlertText<'a> {
    pub summary: &'a str,
    pub description: &'a str,
    pub action: &'a str,
    /// The Dashboard page that helps; may be empty.
    pub link: &'a str,
    /// When it started, already formatted for people.
    pub since: &'a str,
}

/// Subject and body of the mail when an alert starts.
pub fn alert_firing(org: Option<&str>, a: &AlertText<'_>) -> (String, String) {
    let mut body = format!(
        "{}\n\n{}\n\nWhat to do: {}\n",
        a.summary, a.description, a.action
    );
    if !a.link.is_empty() {
        body.push_str(&format!("\nOpen: {}\n", a.link));
    }
    body.push_str(&format!(
        "\nThis started at {}. You get one more mail when it is over; the Status page in \
         the Dashboard lists everything that needs attention now.\n",
        a.since
    ));
    (
        format!("{} needs attention: {}", label(org), a.summary),
        body,
    )
}

/// Subject and body of the mail when an alert the admin was told about is over.
pub fn alert_resolved(a: &AlertText<'_>) -> (String, String) {
    (
        format!("Resolved: {}", a.summary),
        format!(
            "This is over now: {}\n\nIt started at {}. Nothing more needs to be done about it.\n",
            a.summary, a.since
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mails_name_the_organisation_when_it_has_a_name() {
        let (subject, body) = invitation(Some("Vrije Radio"), "Ana", "https://x/r", 7);
        assert_eq!(subject, "You are invited to Vrije Radio");
        assert!(body.contains("An administrator of Vrije Radio created an account"));
        let (subject, body) = invitation(None, "Ana", "https://x/r", 7);
        assert_eq!(subject, "You are invited to Stackspin");
        assert!(body.contains("created a Stackspin account for you. Choose"));
        assert_eq!(
            password_reset(Some("Vrije Radio"), "Ana", "l", 30).0,
            "Reset your Vrije Radio password"
        );
        assert_eq!(test_message(None).0, "Stackspin test email");
    }
}
