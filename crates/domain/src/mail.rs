//! The texts of the mails Stackspin sends people, kept in one place so they can be
//! translated later.

/// Subject and body of an invitation to set a first password.
pub fn invitation(name: &str, link: &str, valid_days: i64) -> (String, String) {
    (
        "You are invited to Stackspin".to_owned(),
        format!(
            "Hello {name},\n\n\
             An administrator created a Stackspin account for you. Choose your password here:\n\n\
             {link}\n\n\
             The link works once and expires in {valid_days} days. After that, ask your \
             administrator for a new invitation or use \"Forgot password?\" on the login page.\n"
        ),
    )
}

/// Subject and body of a password reset link.
pub fn password_reset(name: &str, link: &str, valid_minutes: i64) -> (String, String) {
    (
        "Reset your Stackspin password".to_owned(),
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
pub fn test_message() -> (String, String) {
    (
        "Stackspin test email".to_owned(),
        "This is a test message: Stackspin can send mail.\n".to_owned(),
    )
}
