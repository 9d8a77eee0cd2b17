//! What is wrong with what someone typed, in the pages' own words. The domain's errors say it
//! for logs and the command line ("invalid email address \"\": it is empty"); people filling in
//! a form get a sentence that tells them what to do.

use crate::texts;
use stackspin_domain::{
    brand::BrandError,
    email::{EmailError, EmailProblem},
    password::{PasswordError, Weakness},
    user::{NameProblem, UserNameError},
};

pub fn email(e: &EmailError) -> &'static str {
    match e.problem() {
        EmailProblem::Empty => texts::t("problems.email_empty"),
        EmailProblem::NoAt => texts::t("problems.email_no_at"),
        EmailProblem::TooLong | EmailProblem::LocalLength => texts::t("problems.email_too_long"),
        EmailProblem::LocalCharacters | EmailProblem::LocalDot => texts::t("problems.email_local"),
        EmailProblem::DomainNoDot | EmailProblem::DomainInvalid => {
            texts::t("problems.email_domain")
        }
    }
}

pub fn name(e: &UserNameError) -> &'static str {
    match e.problem() {
        NameProblem::Empty => texts::t("problems.name_empty"),
        NameProblem::TooLong => texts::t("problems.name_too_long"),
        NameProblem::ControlCharacters => texts::t("problems.name_characters"),
    }
}

pub fn password(e: &PasswordError) -> String {
    match e {
        PasswordError::TooShort { min } => texts::tf("problems.password_short", [("min", min)]),
        PasswordError::TooLong { max } => texts::tf("problems.password_long", [("max", max)]),
        PasswordError::TooWeak(w) => match w {
            Weakness::Common => texts::t("problems.password_common"),
            Weakness::Repeats => texts::t("problems.password_repeats"),
            Weakness::Sequence => texts::t("problems.password_sequence"),
            Weakness::Dates => texts::t("problems.password_dates"),
            Weakness::SingleWord => texts::t("problems.password_single_word"),
            Weakness::PersonalInfo => texts::t("problems.password_personal"),
            Weakness::TooPredictable => texts::t("problems.password_predictable"),
        }
        .to_owned(),
        PasswordError::BadHash | PasswordError::Hashing => {
            texts::t("problems.password_not_stored").to_owned()
        }
    }
}

pub fn brand(e: &BrandError) -> String {
    match e {
        BrandError::NameTooLong => texts::t("problems.org_name_too_long"),
        BrandError::NameControl => texts::t("problems.org_name_characters"),
        BrandError::LogoTooLarge => texts::t("problems.logo_too_large"),
        BrandError::LogoFormat => texts::t("problems.logo_format"),
        BrandError::LogoActive => texts::t("problems.logo_active"),
    }
    .to_owned()
}

/// What an attacker knows of a person, which a password of theirs must not lean on.
pub fn personal<'a>(email: &'a str, name: &'a str) -> [&'a str; 3] {
    [email, name, "stackspin"]
}
